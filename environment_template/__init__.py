"""mlflow-environment: the shared MLflow platform (the "MLflow VPC")."""
