"""`invoke image`: ECR through botocore's Stubber, the engine through a recording stand-in.

The real image is built and run by test_image_smoke.py.
"""

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

from mlflow_platform import aws
from mlflow_platform.image import engine as image_engine
from mlflow_platform.image import tag as image
from mlflow_platform.image.engine import BuildOptions, EngineError
from mlflow_platform.image.push import ImageError, build_and_push, build_only
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
    result = build_and_push(
        made, engine=str(script), build=BuildOptions(ca_bundle=None), progress=lines.append
    )
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


def test_podman_builds_keep_the_healthcheck_and_pull_nothing_a_local_base_cannot_give(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    options = BuildOptions(
        engine="/usr/bin/podman", base_image="localhost/base:1", ca_bundle=bundle
    )
    context = str(ROOT / "src" / "tracking_server")
    assert image_engine.build_command(options, "t:1") == [
        "/usr/bin/podman", "build", "--format", "docker", "--network", "host", "--tag", "t:1",
        "--build-arg", "BASE_IMAGE=localhost/base:1",
        "--secret", f"id=pip-ca,src={bundle}", context,
    ]  # fmt: skip
    # docker: the official base is pulled afresh, a local one is not (no registry holds it).
    assert image_engine.build_command(BuildOptions(engine="docker"), "t:1") == [
        "docker", "build", "--pull", "--tag", "t:1", context,
    ]  # fmt: skip
    local = image_engine.build_command(BuildOptions(engine="docker", base_image="b:1"), "t:1")
    assert "--pull" not in local and "BASE_IMAGE=b:1" in local


def test_the_ca_bundle_is_a_build_secret_never_an_argument_or_a_layer():
    dockerfile = (ROOT / "src" / "tracking_server" / "Dockerfile").read_text()
    assert dockerfile.count("pip install") == 2
    assert dockerfile.count("RUN --mount=type=secret,id=pip-ca \\\n") == 2
    lines = [line.strip() for line in dockerfile.splitlines() if "PIP_CERT" in line]
    assert lines and all(line.startswith("if [ -s /run/secrets/pip-ca ]") for line in lines)


def test_the_dockerfile_names_the_user_and_group_the_task_runs_as():
    dockerfile = (ROOT / "src" / "tracking_server" / "Dockerfile").read_text()
    assert "groupadd --gid 10001 mlflow" in dockerfile
    assert "useradd --uid 10001 --gid 10001" in dockerfile
    assert f"USER {image_engine.USER}\n" in dockerfile
    assert dockerfile.index("ARG BASE_IMAGE=python:3.11-slim") < dockerfile.index(
        "FROM ${BASE_IMAGE}"
    )


def test_bad_build_inputs_are_refused_by_name(tmp_path):
    with pytest.raises(EngineError, match=r"CA bundle '.*nothing': must be a readable file"):
        image_engine.build_command(BuildOptions(ca_bundle=tmp_path / "nothing"), "t:1")
    with pytest.raises(EngineError, match="base image '': must name an image"):
        image_engine.build_command(BuildOptions(base_image=" "), "t:1")


def test_pip_cert_is_the_default_ca_bundle_when_it_names_a_file(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    assert image_engine.default_ca_bundle({"PIP_CERT": str(bundle)}) == bundle
    assert image_engine.default_ca_bundle({"PIP_CERT": str(tmp_path / "gone")}) is None
    assert image_engine.default_ca_bundle({}) is None


def test_build_only_builds_under_the_local_name_and_touches_no_aws(engine):
    script, log = engine
    result = build_only(BuildOptions(engine=str(script)), progress=lambda _: None)
    assert result.uri == f"{image.REPOSITORY}:{image.image_tag()}" and not result.pushed
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    assert calls == [["info"], ["build", "--pull", "--tag", result.uri, str(image.IMAGE_SOURCE)]]


def test_the_task_builds_only_without_aws_and_names_a_missing_engine():
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "image", "--build-only", "--engine", "no-such-engine"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("invoke image: no container engine: 'no-such-engine'")


def test_the_task_definitions_settings_must_all_have_local_values():
    container = {
        "Environment": [{"Name": "A", "Value": "x"}],
        "Secrets": [{"Name": "S", "ValueFrom": "arn"}],
    }
    assert image_engine.task_environment(container, {"A": "1", "S": "2"}) == {"A": "1", "S": "2"}
    with pytest.raises(EngineError) as error:
        image_engine.task_environment(container, {"A": "1", "B": "3"})
    assert "S is passed by the task definition, no local value" in str(error.value)
    assert "B has a local value, not passed by the task definition" in str(error.value)


def test_the_container_runs_as_its_task_does_with_no_secret_on_the_command_line():
    options = image_engine.RunOptions(
        engine="podman", reference="r:1", name="n",
        environment={"MLFLOW_PLATFORM_DB_PASSWORD": "secret-value-123"}, user="10001:10001",
    )  # fmt: skip
    command = image_engine.run_command(options)
    assert "secret-value-123" not in " ".join(command)
    assert command[command.index("--env") + 1] == "MLFLOW_PLATFORM_DB_PASSWORD"
    assert "--read-only" in command and command[command.index("--tmpfs") + 1].startswith("/tmp:")
    # podman would add writable /run and /var/tmp to a read-only container; the task has none.
    assert "--read-only-tmpfs=false" in command
    assert command[command.index("--user") + 1] == "10001:10001"
    assert command[-1] == "r:1"
    docker = image_engine.run_command(
        image_engine.RunOptions(engine="docker", reference="r:1", name="n", environment={})
    )
    assert "--read-only-tmpfs=false" not in docker and "--user" not in docker


def test_an_init_container_runs_the_image_with_its_command_after_the_image():
    """The task definition's Command is passed to the image's ENTRYPOINT (Amazon ECS Developer
    Guide, "Task definition parameters": command), so it follows the image reference."""
    options = image_engine.RunOptions(
        engine="podman", reference="r:1", name="n", environment={},
        command=("setup-database",), read_only_files=(("/host/ca.pem", "/etc/ca.pem"),),
    )  # fmt: skip
    command = image_engine.run_command(options)
    assert command[-2:] == ["r:1", "setup-database"]
    assert command[command.index("--volume") + 1] == "/host/ca.pem:/etc/ca.pem:ro"
