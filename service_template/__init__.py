"""mlflow-sagemaker-api: one per team, a SageMaker VPC and an HTTP API into the MLflow platform."""
