"""The tracking-server image: its content tag, how an engine builds and runs it, the push to ECR."""
