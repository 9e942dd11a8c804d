"""`invoke image`: ECR through botocore's Stubber, the engine through a recording stand-in."""

from __future__ import annotations

import base64
import datetime
import json
import os
import stat
import subprocess
import sys

import pytest
from botocore.stub import Stubber

from mlflow_platform import aws, image
from mlflow_platform.image_push import ImageError, build_and_push
from mlflow_platform.paths import ROOT

ACCOUNT = "123456789012"
PASSWORD = "registry-password-not-for-logs"


@pytest.fixture
def clients(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    made = aws.Clients(aws.session())
    stubs = {name: Stubber(made(name)) for name in ("sts", "ecr")}
    stubs["sts"].add_response(
        "get_caller_identity",
        {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "UserId": "AIDA"},
    )
    for stub in stubs.values():
        stub.activate()
    yield made, stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def _uri() -> str:
    return f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/{image.REPOSITORY}:{image.image_tag()}"


def _missing(stubs, code: str) -> None:
    stubs["ecr"].add_client_error(
        "describe_images",
        service_error_code=code,
        expected_params={
            "repositoryName": image.REPOSITORY,
            "imageIds": [{"imageTag": image.image_tag()}],
        },
    )


@pytest.fixture
def engine(tmp_path):
    """An executable that records each command line and its standard input, like a CLI would
    receive them; `info` fails when the file `down` exists."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "engine"
    script.write_text(
        f"""#!{sys.executable}
import json, os, sys
if sys.argv[1] == "info" and os.path.exists({str(tmp_path / "down")!r}):
    print("Cannot connect to the Docker daemon", file=sys.stderr)
    sys.exit(1)
stdin = sys.stdin.read() if sys.argv[1] == "login" else ""
with open({str(log)!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_an_image_already_in_ecr_is_not_built_and_needs_no_engine(clients):
    made, stubs = clients
    stubs["ecr"].add_response(
        "describe_images",
        {
            "imageDetails": [
                {
                    "repositoryName": image.REPOSITORY,
                    "imageTags": [image.image_tag()],
                    "imagePushedAt": datetime.datetime(2026, 11, 1),
                }
            ]
        },
        {"repositoryName": image.REPOSITORY, "imageIds": [{"imageTag": image.image_tag()}]},
    )
    result = build_and_push(made, engine="no-such-engine")
    assert (result.uri, result.pushed) == (_uri(), False)
    assert made.log.writes == []


def test_without_an_engine_nothing_is_created(clients, tmp_path):
    made, stubs = clients
    _missing(stubs, "RepositoryNotFoundException")
    with pytest.raises(ImageError, match="no container engine: 'no-such-engine' is not on PATH"):
        build_and_push(made, engine="no-such-engine")
    assert made.log.writes == []


def test_an_engine_that_is_not_running_is_named(clients, engine, tmp_path):
    made, stubs = clients
    script, _ = engine
    (tmp_path / "down").touch()
    _missing(stubs, "ImageNotFoundException")
    with pytest.raises(ImageError) as error:
        build_and_push(made, engine=str(script))
    assert "`" + str(script) + " info` failed (Cannot connect to the Docker daemon)" in str(
        error.value
    )


def test_build_and_push_creates_the_repository_and_keeps_the_password_off_argv(clients, engine):
    made, stubs = clients
    script, log = engine
    _missing(stubs, "RepositoryNotFoundException")
    stubs["ecr"].add_response(
        "create_repository",
        {"repository": {"repositoryName": image.REPOSITORY}},
        {
            "repositoryName": image.REPOSITORY,
            "imageTagMutability": "IMMUTABLE",
            "imageScanningConfiguration": {"scanOnPush": True},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        },
    )
    token = base64.b64encode(f"AWS:{PASSWORD}".encode()).decode()
    stubs["ecr"].add_response(
        "get_authorization_token",
        {"authorizationData": [{"authorizationToken": token}]},
        {},
    )
    lines: list[str] = []
    result = build_and_push(made, engine=str(script), progress=lines.append)
    assert result.pushed and result.uri == _uri()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    host = _uri().split("/")[0]
    assert [c["argv"] for c in calls] == [
        ["info"],
        ["login", "--username", "AWS", "--password-stdin", host],
        ["build", "--pull", "--tag", _uri(), str(ROOT / "src" / "tracking_server")],
        ["push", _uri()],
    ]
    assert calls[1]["stdin"] == PASSWORD
    assert all(PASSWORD not in " ".join(c["argv"]) for c in calls)
    assert all(PASSWORD not in line for line in lines)


def test_the_task_fails_clearly_on_this_machine_without_a_running_engine(tmp_path):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: no AWS is reachable
        "AWS_MAX_ATTEMPTS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "image", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("invoke image: ecr: cannot reach the AWS endpoint")
