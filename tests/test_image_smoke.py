"""The tracking-server image, built and run as its ECS task runs it, in basic and iam mode.

The image is built from src/tracking_server with podman or docker and started against the local
platform's real PostgreSQL (a database of its own per mode) and its S3 endpoint, with:
- the settings the synthesized task definition passes, by name: its Environment and its Secrets
  (ECS hands secrets to the container as environment variables: Amazon ECS Developer Guide,
  "Pass Secrets Manager secrets through Amazon ECS environment variables"); a name added to or
  dropped from the task definition without a value here fails the test;
- a read-only root filesystem with a writable /tmp only, and the image's user 10001:10001 (task
  definition ReadonlyRootFilesystem, a scratch volume at /tmp and User; Amazon ECS Developer
  Guide, "Task definition parameters", Container definitions: Security and Storage);
- the health check ECS runs (the task definition's healthCheck), which must be the image's
  HEALTHCHECK too;
- a stop as ECS stops a task: SIGTERM, then SIGKILL after 30 s (stopTimeout's default).

Skipped, saying why, where neither engine runs; MLFLOW_PLATFORM_REQUIRE_IMAGE_TEST=1 (.ci/run)
turns that skip into a failure. MLFLOW_PLATFORM_IMAGE_ENGINE picks the engine and
MLFLOW_PLATFORM_IMAGE_BASE the base image (default: the one .ci/container-base.sh made on this
machine, else the official python:3.11-slim).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import boto3
import helpers
import pytest
import requests
import sqlalchemy

from environment_template.tracking_service import (
    CONTAINER_NAME,
    SCRATCH_PATH,
    SETUP_CONTAINER_NAME,
)
from mlflow_platform.image import engine as image_engine
from mlflow_platform.local.platform import ADMIN, BUCKET, LOAD_BALANCER_DNS_NAME, REGION
from tracking_server import settings as names

REQUIRE = "MLFLOW_PLATFORM_REQUIRE_IMAGE_TEST"
ENGINE = "MLFLOW_PLATFORM_IMAGE_ENGINE"
BASE = "MLFLOW_PLATFORM_IMAGE_BASE"
LOCAL_BASE = "localhost/mlflow-platform-base"
ACCOUNT = "123456789012"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform/MlflowAdmins"
ARTIFACT_MIB = 6


def _engine() -> str | None:
    chosen = os.environ.get(ENGINE)
    for engine in [chosen] if chosen else ["podman", "docker"]:
        if shutil.which(engine) is None:
            continue
        if subprocess.run([engine, "info"], capture_output=True).returncode == 0:
            return engine
    return None


def _base(engine: str) -> str | None:
    if os.environ.get(BASE):
        return os.environ[BASE]
    listed = subprocess.run(
        [engine, "images", "--format", "{{.Repository}}:{{.Tag}}", LOCAL_BASE],
        capture_output=True,
        text=True,
    ).stdout.split()
    return next((ref for ref in listed if ref.startswith(LOCAL_BASE + ":")), None)


@pytest.fixture(scope="module")
def engine() -> str:
    found = _engine()
    if found is None:
        message = (
            "no container engine runs here (podman or docker, `info` must succeed): the image "
            "is not built or run; .ci/container-base.sh installs podman on Debian"
        )
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1: {message}")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def built(engine) -> str:
    options = image_engine.build_options(engine=engine, base_image=_base(engine))
    started = time.monotonic()
    reference = image_engine.build(options, image_engine.local_reference())
    print(f"\nimage build ({engine}, base {options.base_image or 'official'}): "
          f"{time.monotonic() - started:.0f}s")  # fmt: skip
    return reference


@pytest.fixture(scope="module")
def task_container(environment) -> dict:
    return helpers.task_container(environment, CONTAINER_NAME)


@pytest.fixture(scope="module")
def setup_container(environment) -> dict:
    """The init container: run first, to exit 0, before the server starts (its dependsOn)."""
    return helpers.task_container(environment, SETUP_CONTAINER_NAME)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """One container of the image, as a task of the given mode."""

    def __init__(self, engine: str, name: str, url: str, admin_password: str, mode: str):
        self.engine, self.name, self.url = engine, name, url
        self.admin = (ADMIN, admin_password)
        self.mode = mode
        self.healthy_after = 0.0

    def exec(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.engine, "exec", self.name, *argv], capture_output=True, text=True
        )


def _database(platform_details, name: str) -> sqlalchemy.engine.URL:
    """A fresh database of the master user's, as RDS's cluster holds the platform's."""
    local, _ = platform_details
    url = sqlalchemy.engine.make_url(local.database().uri(master=True))
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for database in (name, f"{name}_auth"):
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}"'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url


# The local PostgreSQL's certificate is from the local platform's CA, not AWS's: mounted and
# named in place of the image's RDS bundle (the task definition passes no CA setting).
LOCAL_CA = "/etc/ssl/certs/mlflow-platform-local-ca.pem"


def _run_setup(engine, built, setup_container, values: dict[str, str], stand_ins: dict,
               ca: tuple[tuple[str, str], ...], mode: str) -> None:  # fmt: skip
    """The init container as ECS runs it: its own settings and command, to exit 0."""
    environment = image_engine.task_environment(setup_container, values) | stand_ins
    name = f"mlflow-setup-{mode}-{time.time_ns() % 10**8}"
    options = image_engine.RunOptions(
        engine=engine, reference=built, name=name, environment=environment,
        user=setup_container.get("User"), command=tuple(setup_container["Command"]),
        read_only_files=ca,
    )  # fmt: skip
    image_engine.start(options)
    try:
        code = image_engine.wait(engine, name)
        log = image_engine.logs(engine, name)
    finally:
        image_engine.remove(engine, name)
    assert code == 0, log[-3000:]
    assert f"role {names.SERVER_DB_ROLE}" in log and "database set up" in log, log[-3000:]


@contextlib.contextmanager
def _container(engine, built, task_container, setup_container, platform, mode: str):
    local, details = platform
    database = f"image_{mode}"
    url = _database(platform, database)
    admin_password = secrets.token_urlsafe(18)
    credentials = local._credentials()
    values = {
        names.AUTH_MODE: mode,
        names.DB_HOST: "127.0.0.1",
        names.DB_PORT: str(url.port),
        names.DB_NAME: database,
        names.ARTIFACTS_DESTINATION: f"s3://{BUCKET}/image-{mode}",
        names.ALLOWED_HOSTS: names.cloud_hosts(
            load_balancer_dns_name=LOAD_BALANCER_DNS_NAME, region=REGION,
            url_suffix="amazonaws.com",
        ),
        names.ADMIN_PRINCIPALS: ADMIN_ROLE if mode == "iam" else "",
        # The local platform's server role: one per PostgreSQL cluster, as in the cloud.
        names.DB_USERNAME: names.SERVER_DB_ROLE,
        names.DB_PASSWORD: credentials.server_db_password,
        names.ADMIN_USERNAME: ADMIN,
        names.ADMIN_PASSWORD: admin_password,
        names.SECRET_KEY: secrets.token_urlsafe(48),
        names.AI_GATEWAY: "off",
        names.GATEWAY_KEK: secrets.token_urlsafe(48),
        "TMPDIR": SCRATCH_PATH,
        "HOME": SCRATCH_PATH,
        # The Region and S3 endpoint the task states; here the local endpoint, by path (a
        # virtual-hosted name under 127.0.0.1 does not resolve).
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "MLFLOW_S3_ENDPOINT_URL": details["s3_endpoint"],
        "MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE": "path",
    }  # fmt: skip
    master = {names.DB_MASTER_USERNAME: url.username, names.DB_MASTER_PASSWORD: url.password}
    ca = ((str(local.ca_file), LOCAL_CA),)
    setup_values = {k: v for k, v in (values | master).items()
                    if k in {e["Name"] for e in setup_container.get("Environment", [])}
                    | {e["Name"] for e in setup_container.get("Secrets", [])}}  # fmt: skip
    _run_setup(engine, built, setup_container, setup_values, {names.DB_SSL_ROOT_CERT: LOCAL_CA},
               ca, mode)  # fmt: skip
    # The server: every value above, and no master user (task_environment refuses a value
    # the task definition does not pass).
    environment = image_engine.task_environment(task_container, values)
    assert not set(master) & set(environment)
    port = _free_port()
    # Stand-ins for what differs on this machine: the host's network, so loopback and a free
    # port rather than all interfaces of the task's own network interface on 5000; the S3
    # endpoint and keys instead of the task role; the local CA.
    environment |= {
        names.BIND_ADDRESS: "127.0.0.1",
        names.SERVER_PORT: str(port),
        names.DB_SSL_ROOT_CERT: LOCAL_CA,
        "MLFLOW_S3_ENDPOINT_URL": details["s3_endpoint"],
        "AWS_ACCESS_KEY_ID": details["s3_credentials"]["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": details["s3_credentials"]["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }
    name = f"mlflow-smoke-{mode}-{time.time_ns() % 10**8}"
    options = image_engine.RunOptions(
        engine=engine, reference=built, name=name, environment=environment,
        user=task_container.get("User"), read_only_files=ca,
    )  # fmt: skip
    image_engine.start(options)
    try:
        running = Running(engine, name, f"http://127.0.0.1:{port}", admin_password, mode)
        test = image_engine.health_test(engine, built)
        running.healthy_after = image_engine.wait_healthy(engine, name, test)
        print(f"\n{mode}: healthy {running.healthy_after:.1f}s after start")
        yield running
    finally:
        image_engine.remove(engine, name)


@pytest.fixture(scope="module", params=["basic", "iam"])
def server(request, engine, built, task_container, setup_container, platform):
    with _container(
        engine, built, task_container, setup_container, platform, request.param
    ) as running:
        yield running


def test_the_image_keeps_the_health_check_the_task_definition_runs(engine, built, task_container):
    test = image_engine.health_test(engine, built)
    assert test == ["CMD", "python", "-m", "tracking_server.healthcheck"]
    assert task_container["HealthCheck"]["Command"] == test


def test_it_runs_as_10001_with_a_read_only_root_and_a_writable_tmp(server, task_container):
    # Healthy within the task definition's startPeriod, or ECS would count failed checks.
    assert server.healthy_after < task_container["HealthCheck"]["StartPeriod"]
    listing = server.exec(
        "python", "-c",
        "import os, json; print(json.dumps({p: open(f'/proc/{p}/status').read() "
        "for p in os.listdir('/proc') if p.isdigit()}))",
    )  # fmt: skip
    processes = json.loads(listing.stdout)
    assert len(processes) >= 2, processes  # the server and this listing at least
    for status in processes.values():
        ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
        assert ids["Uid"][0] == ids["Gid"][0] == "10001", status
    refused = server.exec("touch", "/app/written")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert server.exec("touch", "/tmp/written").returncode == 0
    root = image_engine.inspect(server.engine, "container", server.name,
                                "{{.HostConfig.ReadonlyRootfs}}")  # fmt: skip
    assert root.strip() == "true"


def test_without_credentials_the_api_answers_401(server):
    response = requests.get(
        f"{server.url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=30
    )
    assert response.status_code == 401, response.text
    assert requests.get(f"{server.url}{names.HEALTH_PATH}", timeout=30).status_code == 200


def test_mlflows_client_round_trip_through_the_server_to_s3(
    server, platform, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    _, details = platform
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin[1])
    client = MlflowClient(server.url)
    experiment = client.create_experiment(f"smoke-{server.mode}-{time.time_ns()}")
    run = client.create_run(experiment).info.run_id
    client.log_param(run, "alpha", "0.5")
    for step in range(5):
        client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
    payload = os.urandom(ARTIFACT_MIB * 1024 * 1024)
    (tmp_path / "weights.bin").write_bytes(payload)
    client.log_artifact(run, str(tmp_path / "weights.bin"), artifact_path="model")
    client.set_terminated(run)
    model = client.create_registered_model(f"smoke-model-{server.mode}-{time.time_ns()}").name
    version = client.create_model_version(model, f"runs:/{run}/model", run_id=run)

    fetched = client.get_run(run)
    assert fetched.data.params == {"alpha": "0.5"}
    assert [m.step for m in client.get_metric_history(run, "loss")] == list(range(5))
    assert client.get_model_version(model, version.version).run_id == run
    downloaded = client.download_artifacts(run, "model/weights.bin", str(tmp_path / "back"))
    with open(downloaded, "rb") as back:
        assert back.read() == payload
    # The bytes went through the server into the bucket, under this mode's destination.
    s3 = boto3.client("s3", endpoint_url=details["s3_endpoint"], region_name=REGION,
                      **details["s3_credentials"])  # fmt: skip
    stored = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"image-{server.mode}/")["Contents"]
    assert [o["Size"] for o in stored if o["Key"].endswith(f"{run}/artifacts/model/weights.bin")
            ] == [len(payload)]  # fmt: skip


def test_the_caller_header_counts_in_iam_mode_only(server):
    """iam: the caller API Gateway names is served (an admin principal) or refused (no MLflow
    user); basic: a request that carries one is refused outright (request_guard.py: a team API
    with IAM routes before a basic environment)."""
    search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    admin = f"arn:aws:sts::{ACCOUNT}:assumed-role/MlflowAdmins/someone"
    stranger = f"arn:aws:sts::{ACCOUNT}:assumed-role/Stranger/someone"
    as_admin = requests.get(search, headers={names.CALLER_HEADER: admin}, timeout=30)
    as_stranger = requests.get(search, headers={names.CALLER_HEADER: stranger}, timeout=30)
    if server.mode == "iam":
        assert as_admin.status_code == 200, as_admin.text
        assert as_stranger.status_code == 403 and "has no MLflow user" in as_stranger.text
    else:
        assert (as_admin.status_code, as_stranger.status_code) == (403, 403)
        assert "update the team stack" in as_admin.text, as_admin.text


def test_it_stops_cleanly_as_ecs_stops_a_task(
    engine, built, task_container, setup_container, platform
):
    with _container(engine, built, task_container, setup_container, platform, "basic") as running:
        started = time.monotonic()
        code = image_engine.stop(engine, running.name, timeout=30)
        took = time.monotonic() - started
        log = image_engine.logs(engine, running.name)
    assert code == 0, log[-2000:]
    assert took < 25, f"stopped after {took:.0f}s: SIGTERM was not acted on"
    assert "Traceback" not in log, log[-4000:]
    assert "starting mlflow server" in log


def test_the_image_runs_the_pinned_mlflow_and_says_so(server):
    """`/version` answers the MLflow version requirements.txt pins, which the image installs."""
    pins = (Path(__file__).parents[1] / "src" / "tracking_server" / "requirements.txt").read_text()
    [pin] = [line.split("==", 1)[1] for line in pins.splitlines() if line.startswith("mlflow[")]
    answer = requests.get(f"{server.url}/version", auth=server.admin, timeout=30)
    assert (answer.status_code, answer.text) == (200, pin) and pin == "3.18.0"
