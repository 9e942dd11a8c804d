from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import boto3
import pytest
from aws_fake import FakeAws
from moto.server import ThreadedMotoServer
from publishing import BUCKET, ROLE, TEAM, World, bucket_exists, free_port

from mlflow_platform.building.synth import Synthesis, synthesize
from mlflow_platform.local.platform import LocalPlatform
from mlflow_platform.releasing import config as publish_config
from mlflow_platform.releasing.config import PublishConfig
from mlflow_platform.templates import TEMPLATES


@pytest.fixture(scope="session")
def synthesis() -> Synthesis:
    """Every template, synthesized once per test session with cdk-nag on."""
    return synthesize()


@pytest.fixture(scope="session")
def environment(synthesis: Synthesis) -> dict:
    return synthesis.templates["mlflow-environment"]


@pytest.fixture(scope="session")
def service(synthesis: Synthesis) -> dict:
    return synthesis.templates["mlflow-sagemaker-api"]


@pytest.fixture(scope="session")
def rendered(synthesis: Synthesis) -> dict:
    """Both templates rendered for both channels from the session's synthesis (no lint)."""
    from mlflow_platform.building import bundle
    from mlflow_platform.templates import all_templates

    rendered: dict = {}
    for d in all_templates():
        environments = bundle.compatible_environments(rendered)
        rendered[d.name] = bundle.render_template(
            d, bundle.render_channels(d, synthesis.templates[d.name]), environments
        )
    return rendered


def _state_dir() -> Path:
    """Under /tmp, searchable by the postgres user (pytest's own tmp dirs are not)."""
    path = Path(tempfile.mkdtemp(prefix="mlflow-local-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def platform():
    """`invoke local up` in a fresh state directory, once per session; down at the end."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
    state = _state_dir()
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        yield local, local.up()
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, s3_endpoint, tmp_path):
    """Only the standard SDK configuration: the S3 endpoint comes from AWS_ENDPOINT_URL_S3."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    s3 = boto3.client("s3")
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) if bucket_exists(s3) else []:
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    if not bucket_exists(s3):
        s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def config() -> PublishConfig:
    return publish_config.parse(
        {
            "bucket": BUCKET,
            "prefix": "mlflow-platform/",
            "servicecatalog": {
                "launch_role_arn": ROLE,
                "principals": [TEAM],
                "provider": "Platform",
            },
        },
        source="publish.yaml",
    )


@pytest.fixture
def world(aws_env) -> World:
    return World(FakeAws(s3=aws_env))


@pytest.fixture(scope="module")
def sources(tmp_path_factory, synthesis):
    """The synthesized templates, to derive changed versions from."""
    return {name: synthesis.templates[name] for name, _ in TEMPLATES}
