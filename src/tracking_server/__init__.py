"""The MLflow tracking server as it runs in the cloud and on a developer's machine."""
