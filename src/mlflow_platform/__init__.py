"""Tooling that renders the MLflow platform's CDK templates into Proton bundles and
Service Catalog products, verifies them, versions them and publishes them."""

import os

# Both are read when the jsii process starts, at the first import of aws_cdk anywhere below.
# Node 20's end-of-life banner says nothing about these templates.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# CDK's built-in copy of cfn-lint's rules: the real cfn-lint runs on every rendered template, and
# the copy cannot read template Rules.
os.environ["CDK_VALIDATION"] = "false"
