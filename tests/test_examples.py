"""examples/train.py, run as a team would run it, against the local platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import numpy as np
from helpers import create_mlflow_user

from mlflow_platform.paths import ROOT


def _team_user(details: dict, name: str) -> str:
    """A team user as the environment's function creates it: not an admin, no grants."""
    password = f"{name}-password-{time.time_ns()}"
    create_mlflow_user(details, name, password)
    return password


def _run_example(env: dict, experiment: str, model: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train.py"),
         "--experiment", experiment, "--model-name", model, "--epochs", "30"],
        env={**clean, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **env},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))


def _check(details: dict, output: dict, experiment: str, model: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = details["username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = details["password"]
    client = MlflowClient(details["tracking_uri"])
    run = client.get_run(output["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == experiment
    assert run.data.params == {"epochs": "30", "learning_rate": "0.1", "seed": "7"}
    history = client.get_metric_history(output["run_id"], "mse")
    assert [m.step for m in history] == list(range(30))
    assert history[-1].value < history[0].value / 10
    assert [f.path for f in client.list_artifacts(output["run_id"])] == ["report.json"]
    version = client.get_model_version(model, output["registered_model_version"])
    assert version.run_id == output["run_id"]
    mlflow.set_tracking_uri(details["tracking_uri"])
    loaded = mlflow.pyfunc.load_model(f"models:/{model}/{version.version}")
    prediction = loaded.predict(np.array([[1.0, 0.0, 0.0]]))
    assert abs(float(prediction[0]) - 2.3) < 0.2  # the target's weight 2.0 plus bias 0.3


def test_example_logs_everything_as_a_team_user_with_basic_auth(platform):
    _, details = platform
    password = _team_user(details, "example-team")
    experiment, model = f"example-{time.time_ns()}", f"example-model-{time.time_ns()}"
    output = _run_example(
        {
            "MLFLOW_TRACKING_URI": details["tracking_uri"],
            "MLFLOW_TRACKING_USERNAME": "example-team",
            "MLFLOW_TRACKING_PASSWORD": password,
        },
        experiment,
        model,
    )
    _check(details, output, experiment, model)


def test_example_finds_uri_and_credentials_as_in_sagemaker(platform):
    """Tracking URI from SSM and credentials from Secrets Manager, as the service stack
    publishes them, served here by the local S3 endpoint's moto server."""
    _, details = platform
    endpoint = details["s3_endpoint"]
    key, secret = details["s3_credentials"].values()
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key,
           "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    session = boto3.session.Session(**details["s3_credentials"], region_name="us-east-1")
    password = _team_user(details, "sagemaker-team")
    # What the team stack writes: its client environment (no secret), through its team API.
    parameter = "/mlflow-platform/local/teams/sagemaker-team/client-environment"
    published = {
        k: v
        for k, v in details["client_environment"].items()
        if not k.startswith(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"))
    }
    session.client("ssm", endpoint_url=endpoint).put_parameter(
        Name=parameter, Value=json.dumps(published), Type="String", Overwrite=True
    )  # fmt: skip
    secret = session.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name=f"mlflow-platform/local/teams/sagemaker-team-{time.time_ns()}",
        SecretString=json.dumps({"username": "sagemaker-team", "password": password}),
    )["ARN"]
    experiment, model = f"sagemaker-{time.time_ns()}", f"sagemaker-model-{time.time_ns()}"
    output = _run_example(
        {
            **aws,
            "MLFLOW_CLIENT_ENVIRONMENT_PARAMETER": parameter,
            "MLFLOW_CREDENTIALS_SECRET": secret,
        },
        experiment,
        model,
    )
    _check(details, output, experiment, model)
