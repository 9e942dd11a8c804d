"""Tooling that renders the MLflow platform's CDK templates into Proton bundles and
Service Catalog products, verifies them, versions them and publishes them."""
