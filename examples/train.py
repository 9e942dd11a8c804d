"""Train a small model and track it in the platform's MLflow: parameters, a metric per epoch, an
artifact, and a registered model version, which it then loads back from the registry and uses.
With `--weights-mib N` the model carries a weights file of N MiB, as real models do (the bytes
go straight to and from S3: API Gateway caps a team API's requests at 10 MB).

It runs unchanged in a SageMaker notebook, in a SageMaker training job, and against
`invoke local`. Where the tracking server is and how to authenticate, first match wins:

- the settings in the SSM parameter named by MLFLOW_CLIENT_ENVIRONMENT_PARAMETER (the service
  stack's ClientEnvironmentParameterName output: tracking URI, auth provider, artifact
  settings), each unless already set;
- MLFLOW_TRACKING_URI, else the SSM parameter named by MLFLOW_TRACKING_URI_PARAMETER (the
  service stack's TrackingUriParameterName output);
- basic auth: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, else the secret named by
  MLFLOW_CREDENTIALS_SECRET (the TeamCredentialsSecretArn output), read with the team role;
- iam auth: MLFLOW_TRACKING_AUTH=mlflow-platform-sigv4, and every request is signed with the role's
  credentials by the mlflow-platform-client package (client/).

Artifacts need no setting with an MLflow 3.18 client; an older one needs the artifact settings
the team stack publishes (ClientEnvironment).

    python examples/train.py --experiment churn --model-name churn-model
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path

import mlflow
import numpy as np


class LinearModel(mlflow.pyfunc.PythonModel):
    def __init__(self, weights: list[float], bias: float, weights_sha256: str = "") -> None:
        self.weights = np.asarray(weights)
        self.bias = bias
        self.weights_sha256 = weights_sha256

    def load_context(self, context):
        """A model with a weights file checks, on load, that it got every byte of it."""
        if "weights" in context.artifacts:
            digest = _sha256(Path(context.artifacts["weights"]))
            if digest != self.weights_sha256:
                raise ValueError(f"weights file damaged: sha256 {digest}")

    def predict(self, context, model_input, params=None):
        return np.asarray(model_input, dtype=float) @ self.weights + self.bias


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_weights(path: Path, mebibytes: int, seed: int) -> str:
    """A weights file of `mebibytes` MiB (float32, as a network's would be); its sha256."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as file:
        for _ in range(mebibytes):
            file.write(rng.standard_normal(1 << 18, dtype=np.float32).tobytes())
    return _sha256(path)


def configure() -> None:
    """Tracking URI and credentials from the environment, or from SSM and Secrets Manager."""
    name = os.environ.get("MLFLOW_CLIENT_ENVIRONMENT_PARAMETER")
    if name:  # the team stack's ClientEnvironment: every setting, none already set replaced
        import boto3

        value = boto3.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        for key, setting in json.loads(value).items():
            os.environ.setdefault(key, setting)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        name = os.environ.get("MLFLOW_TRACKING_URI_PARAMETER")
        if not name:
            raise SystemExit("set MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI_PARAMETER")
        import boto3

        parameter = boto3.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        os.environ["MLFLOW_TRACKING_URI"] = parameter
    secret = os.environ.get("MLFLOW_CREDENTIALS_SECRET")
    if secret and not os.environ.get("MLFLOW_TRACKING_USERNAME"):
        import boto3

        value = boto3.client("secretsmanager").get_secret_value(SecretId=secret)
        credentials = json.loads(value["SecretString"])
        os.environ["MLFLOW_TRACKING_USERNAME"] = credentials["username"]
        os.environ["MLFLOW_TRACKING_PASSWORD"] = credentials["password"]


def train(*, epochs: int, learning_rate: float, seed: int) -> tuple[LinearModel, list[float]]:
    """Gradient descent on a noisy linear target; returns the model and the loss per epoch."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(256, 3))
    target = features @ np.array([2.0, -1.0, 0.5]) + 0.3 + rng.normal(scale=0.05, size=256)
    weights, bias, losses = np.zeros(3), 0.0, []
    for _ in range(epochs):
        error = features @ weights + bias - target
        losses.append(float(np.mean(error**2)))
        weights -= learning_rate * 2 * features.T @ error / len(target)
        bias -= learning_rate * 2 * float(np.mean(error))
    return LinearModel(weights.tolist(), bias), losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mlflow-platform-example")
    parser.add_argument("--model-name", default="mlflow-platform-example-model")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weights-mib", type=int, default=0,
                        help="size of the model's weights file in MiB (0: none)")  # fmt: skip
    args = parser.parse_args()
    configure()

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"epochs": args.epochs, "learning_rate": args.learning_rate,
                           "seed": args.seed})  # fmt: skip
        model, losses = train(epochs=args.epochs, learning_rate=args.learning_rate,
                              seed=args.seed)  # fmt: skip
        for epoch, loss in enumerate(losses):
            mlflow.log_metric("mse", loss, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            report.write_text(json.dumps({"final_mse": losses[-1], "weights": list(model.weights)}))
            mlflow.log_artifact(str(report))
        with tempfile.TemporaryDirectory() as tmp:
            artifacts = {}
            if args.weights_mib:
                weights = Path(tmp) / "weights.bin"
                model.weights_sha256 = write_weights(weights, args.weights_mib, args.seed)
                artifacts["weights"] = str(weights)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                artifacts=artifacts or None,
                registered_model_name=args.model_name,
                pip_requirements=["numpy"],
                input_example=np.zeros((1, 3)),
            )
    # What a deployment does: load the registered version (every byte of the weights
    # checked) and predict.
    loaded = mlflow.pyfunc.load_model(f"models:/{args.model_name}/{info.registered_model_version}")
    prediction = loaded.predict(np.array([[1.0, 0.0, 0.0]]))
    print(json.dumps({"run_id": run.info.run_id, "model_uri": info.model_uri,
                      "registered_model_version": info.registered_model_version,
                      "final_mse": losses[-1], "prediction": float(np.ravel(prediction)[0]),
                      "weights_sha256": model.weights_sha256}))  # fmt: skip


if __name__ == "__main__":
    main()
