"""Teams as attackers of each other's artifacts, through storage locations they choose.

Basic mode against the real server on the local platform. Alpha and beta are two team users;
each has its own experiment and run with a secret file. Beta knows alpha's experiment and run
ids (not secrets) and the bucket (any presigned URL shows it), and tries to read or plant
files under alpha's prefix through locations the server reads and writes with its own role.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
import sqlalchemy as sa
from helpers import create_mlflow_user

PLANTED = "flavors: {python_function: {loader_module: beta_payload}}"


@dataclass
class Team:
    name: str
    password: str
    url: str
    experiment_id: str = ""
    run_id: str = ""

    @property
    def secret(self) -> str:
        """What this team's secret.txt holds."""
        return f"secret of {self.name}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.url}{path}", auth=(self.name, self.password), timeout=30, **kwargs
        )

    def ok(self, method: str, path: str, **kwargs: Any) -> dict:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json() if response.content else {}

    def experiment(self, name: str, **body: Any) -> requests.Response:
        return self.call("POST", "/api/2.0/mlflow/experiments/create", json={"name": name, **body})

    def run(self, experiment_id: str) -> str:
        body = self.ok("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id})
        return body["run"]["info"]["run_id"]


def _unique(name: str) -> str:
    return f"{name}-{time.time_ns() % 10**12}"


def _refused(response: requests.Response, code: str, *words: str) -> None:
    """MLflow's JSON error, naming what was refused."""
    status = {"INVALID_PARAMETER_VALUE": 400, "PERMISSION_DENIED": 403}[code]
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error_code"] == code, body
    for word in words:
        assert word in body["message"], (word, body["message"])


@pytest.fixture(scope="module")
def teams(platform) -> tuple[Team, Team, dict]:
    """Alpha and beta, each with an experiment and a run; alpha's holds secret.txt."""
    _, details = platform
    alpha, beta = (
        Team(_unique(n), "p" * 16 + n, details["tracking_uri"]) for n in ("alpha", "beta")
    )
    for team in (alpha, beta):
        create_mlflow_user(details, team.name, team.password)
        response = team.experiment(_unique(team.name))
        assert response.status_code == 200, response.text
        team.experiment_id = response.json()["experiment_id"]
        team.run_id = team.run(team.experiment_id)
        _put(details, f"{team.experiment_id}/{team.run_id}/artifacts/secret.txt", team.secret)
    return alpha, beta, details


def _s3(details: dict) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=details["s3_endpoint"],
        region_name="us-east-1",
        **details["s3_credentials"],
    )


def _put(details: dict, path: str, text: str) -> None:
    """A file where a team's own (presigned) upload puts it: the destination's `path`."""
    _s3(details).put_object(Bucket=details["bucket"], Key=f"artifacts/{path}", Body=text.encode())


def _fetch(response: requests.Response) -> str:
    """The file a response serves, or the one its presigned URL points at."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    url = body.get("url") or body.get("presigned_url") if isinstance(body, dict) else None
    if response.status_code != 200 or not url:
        return response.text
    return requests.get(url, headers=body.get("headers") or {}, timeout=30).text


def _alpha_prefix(alpha: Team, details: dict) -> str:
    return f"s3://{details['bucket']}/artifacts/{alpha.experiment_id}/{alpha.run_id}/artifacts"


def _alpha_keys(alpha: Team, details: dict) -> list[str]:
    """Every object under alpha's run, read from the bucket itself."""
    prefix = f"artifacts/{alpha.experiment_id}/{alpha.run_id}/"
    listed = _s3(details).list_objects_v2(Bucket=details["bucket"], Prefix=prefix)
    return [item["Key"][len(prefix) :] for item in listed.get("Contents", [])]


def test_the_teams_own_their_runs(teams):
    """What every attack below works around: beta's direct read of alpha's file is refused."""
    alpha, beta, _ = teams
    path = f"/api/2.0/mlflow-artifacts/presigned/{_alpha_path(alpha)}/secret.txt"
    assert _fetch(alpha.call("GET", path)) == alpha.secret
    assert beta.call("GET", path).status_code == 403
    assert (
        beta.call(
            "GET", "/get-artifact", params={"run_id": alpha.run_id, "path": "secret.txt"}
        ).status_code
        == 403
    )


# Read: a model version whose source is alpha's run, read through the registry.


def _register(team: Team, source: str, **extra: Any) -> requests.Response:
    name = _unique(f"{team.name}-model")
    team.ok("POST", "/api/2.0/mlflow/registered-models/create", json={"name": name})
    return team.call(
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        json={"name": name, "source": source, **extra},
    )


def _read_version(team: Team, response: requests.Response, path: str) -> str:
    """The file as the registry serves it, presigned (the server is presigned-only on S3)."""
    version = response.json()["model_version"]
    params = {"name": version["name"], "version": version["version"], "path": path}
    return _fetch(
        team.call("GET", "/model-versions/get-artifact", params={**params, "presigned": "true"})
    )


def test_a_model_version_cannot_take_another_teams_bucket_prefix_as_source(teams):
    alpha, beta, details = teams
    source = _alpha_prefix(alpha, details)
    response = _register(beta, source)
    if response.status_code == 200:
        stolen = _read_version(beta, response, "secret.txt")
        assert alpha.secret not in stolen, "beta read alpha's secret through the registry"
    _refused(response, "INVALID_PARAMETER_VALUE", "source", source, "runs:", "models:")


@pytest.mark.parametrize(
    "source",
    ["s3://{bucket}/elsewhere", "file:///etc", "/proc/self", "http://169.254.169.254/latest"],
)
def test_a_model_version_source_is_a_runs_models_or_mlflow_artifacts_uri(teams, source):
    _, beta, details = teams
    response = _register(beta, source.format(bucket=details["bucket"]))
    _refused(response, "INVALID_PARAMETER_VALUE", "source")


@pytest.mark.parametrize("with_run", [False, True])
def test_an_mlflow_artifacts_source_in_another_teams_run_is_refused(teams, with_run):
    """MLflow 3.18's own rule: such a source lies within the run given beside it, which the
    caller must be able to read."""
    alpha, beta, _ = teams
    source = f"mlflow-artifacts:/{alpha.experiment_id}/{alpha.run_id}/artifacts"
    response = _register(beta, source, **({"run_id": beta.run_id} if with_run else {}))
    if response.status_code == 200:
        assert alpha.secret not in _read_version(beta, response, "secret.txt")
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # Naming alpha's run beside it asks for alpha's run: MLflow's permission check.
    response = _register(beta, source, run_id=alpha.run_id)
    assert response.status_code == 403, response.text


def test_a_runs_or_models_source_of_another_team_is_refused(teams):
    alpha, beta, _ = teams
    assert (
        _register(beta, f"runs:/{alpha.run_id}/secret.txt", run_id=alpha.run_id).status_code == 403
    )
    assert _register(beta, f"runs:/{alpha.run_id}/secret.txt").status_code in (400, 403)


# Write: an experiment whose artifact location lies inside alpha's run.


def _plant(beta: Team, location: str, prefix: str = "api") -> requests.Response:
    """Beta's experiment at `location`, a run in it, and MLmodel uploaded to that run by the
    server's own hand (proxied) or by a URL it signs (presigned-only). Returns the experiment's
    creation."""
    response = beta.call(
        "POST",
        f"/{prefix}/2.0/mlflow/experiments/create",
        json={"name": _unique("beta-plant"), "artifact_location": location},
    )
    if response.status_code == 200:
        run_id = beta.run(response.json()["experiment_id"])
        beta.call(
            "POST",
            "/ajax-api/2.0/mlflow/upload-artifact",
            params={"run_id": run_id, "path": "MLmodel"},
            data=PLANTED,
        )
        signed = beta.call(
            "POST",
            "/api/2.0/mlflow/artifacts/presigned-upload-url",
            json={"run_id": run_id, "path": "MLmodel"},
        )
        if signed.status_code == 200:
            requests.put(signed.json()["presigned_url"], data=PLANTED, timeout=30)
    return response


@pytest.mark.parametrize("prefix", ["api", "ajax-api"])
def test_an_experiment_cannot_be_placed_inside_another_teams_run(teams, prefix):
    alpha, beta, details = teams
    location = _alpha_prefix(alpha, details)
    response = _plant(beta, location, prefix)
    planted = [key for key in _alpha_keys(alpha, details) if key.endswith("MLmodel")]
    listed = alpha.ok("GET", "/api/2.0/mlflow/artifacts/list", params={"run_id": alpha.run_id})
    assert [f["path"] for f in listed["files"]] == ["secret.txt"], listed
    assert planted == [], f"beta planted {planted} in alpha's run"
    _refused(response, "INVALID_PARAMETER_VALUE", "artifact_location", location, "default")


def test_an_mlflow_artifacts_location_inside_another_teams_run_is_refused(teams):
    alpha, beta, details = teams
    location = f"mlflow-artifacts:/{alpha.experiment_id}/{alpha.run_id}/artifacts"
    response = _plant(beta, location)
    assert not [key for key in _alpha_keys(alpha, details) if key.endswith("MLmodel")]
    _refused(response, "INVALID_PARAMETER_VALUE", "artifact_location", location)


# Presigned upload: a URL for beta's own run that points into alpha's prefix.


def test_a_presigned_upload_url_cannot_point_into_another_teams_prefix(teams):
    alpha, beta, details = teams
    location = _alpha_prefix(alpha, details)
    response = beta.experiment(_unique("beta-presign"), artifact_location=location)
    if response.status_code == 200:
        run_id = beta.run(response.json()["experiment_id"])
        signed = beta.call(
            "POST",
            "/api/2.0/mlflow/artifacts/presigned-upload-url",
            json={"run_id": run_id, "path": "MLmodel"},
        )
        if signed.status_code == 200:
            requests.put(signed.json()["presigned_url"], data=PLANTED, timeout=30)
    assert not [key for key in _alpha_keys(alpha, details) if key.endswith("MLmodel")]
    _refused(response, "INVALID_PARAMETER_VALUE", "artifact_location", location)


# Local paths: the server's own disk.


@pytest.mark.parametrize("kind", ["file-uri", "absolute-path", "proc"])
def test_an_experiment_cannot_be_placed_on_the_servers_disk(teams, tmp_path, kind):
    _, beta, _ = teams
    target = tmp_path / "server-disk"
    location = {"file-uri": f"file://{target}", "absolute-path": str(target), "proc": "/proc/self"}[
        kind
    ]
    response = _plant(beta, location)
    written = (
        sorted(str(p.relative_to(target)) for p in target.rglob("*")) if target.exists() else []
    )
    assert written == [], f"the server wrote {written} under {target}"
    _refused(response, "INVALID_PARAMETER_VALUE", "artifact_location", location)


def test_an_experiment_with_no_location_gets_the_default(teams):
    _, beta, _ = teams
    response = beta.experiment(_unique("beta-default"), artifact_location="")
    assert response.status_code == 200, response.text
    experiment_id = response.json()["experiment_id"]
    got = beta.ok("GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id})
    assert got["experiment"]["artifact_location"] == f"mlflow-artifacts:/{experiment_id}"


# Presigned URLs: every route that issues one, for alpha's run, model and files, asked by beta.


@pytest.fixture(scope="module")
def alpha_model(teams) -> tuple[str, str]:
    """Alpha's logged model (its id) and a registered version of it (its name)."""
    alpha, _, details = teams
    model = alpha.ok(
        "POST",
        "/api/2.0/mlflow/logged-models",
        json={"experiment_id": alpha.experiment_id, "name": "m"},
    )["model"]
    model_id = model["info"]["model_id"]
    root = model["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
    _put(details, f"{root}/MLmodel", "flavors: {}")
    registered = _register(alpha, f"models:/{model_id}", model_id=model_id)
    assert registered.status_code == 200, registered.text
    return model_id, registered.json()["model_version"]["name"]


def _alpha_path(alpha: Team) -> str:
    return f"{alpha.experiment_id}/{alpha.run_id}/artifacts"


@pytest.mark.parametrize(
    "request_",
    [
        ("POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", "run"),
        ("POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", "model"),
        ("POST", "/api/2.0/mlflow/artifacts/presigned-download-url", "run"),
        ("GET", "/api/2.0/mlflow-artifacts/presigned/{path}/secret.txt", None),
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/{path}", None),
        ("GET", "/model-versions/get-artifact", "version"),
    ],
    ids=[
        "upload-run",
        "upload-model",
        "download-run",
        "mlflow-artifacts-presigned",
        "mpu",
        "model-version",
    ],
)
def test_no_presigned_url_for_another_teams_run_or_model(teams, alpha_model, request_):
    alpha, beta, _ = teams
    method, path, target = request_
    model_id, model_name = alpha_model
    body = {
        "run": {"run_id": alpha.run_id, "path": "MLmodel"},
        "model": {"model_id": model_id, "path": "MLmodel"},
    }.get(target or "", {})
    params = {"name": model_name, "version": "1", "path": "MLmodel", "presigned": "true"}
    response = beta.call(
        method,
        path.format(path=_alpha_path(alpha)),
        json=body or ({"path": "MLmodel", "num_parts": 1} if "mpu" in path else None),
        params=params if target == "version" else None,
    )
    assert response.status_code == 403, response.text
    assert "presigned_url" not in response.text and "X-Amz" not in response.text


def test_a_team_gets_presigned_urls_for_its_own_files(teams):
    alpha, _, _ = teams
    signed = alpha.ok("GET", f"/api/2.0/mlflow-artifacts/presigned/{_alpha_path(alpha)}/secret.txt")
    url = signed.get("presigned_url") or signed.get("url")
    assert url and f"/artifacts/{_alpha_path(alpha)}/secret.txt" in url, signed
    assert requests.get(url, headers=signed.get("headers") or {}, timeout=30).text == alpha.secret


# Locations stored before this guard: the server refuses to resolve them.


def _tracking_db(platform) -> sa.engine.Engine:
    local, _ = platform
    database = local.database()
    assert database is not None
    return sa.create_engine(database.uri())


@pytest.fixture(scope="module")
def legacy(platform, teams) -> dict[str, str]:
    """Beta's experiment moved into alpha's run as an older server let it, with a run and a
    logged model in it, and a model version whose source is alpha's prefix."""
    alpha, beta, details = teams
    response = beta.experiment(_unique("beta-legacy"))
    experiment_id = response.json()["experiment_id"]
    registered = _register(beta, f"runs:/{beta.run_id}/secret.txt", run_id=beta.run_id)
    assert registered.status_code == 200, registered.text
    version = registered.json()["model_version"]
    engine = _tracking_db(platform)
    with engine.begin() as db:
        db.execute(
            sa.text("UPDATE experiments SET artifact_location = :l WHERE experiment_id = :e"),
            {"l": _alpha_prefix(alpha, details), "e": int(experiment_id)},
        )
        db.execute(
            sa.text("UPDATE model_versions SET source = :s, storage_location = :s WHERE name = :n"),
            {"s": _alpha_prefix(alpha, details), "n": version["name"]},
        )
    engine.dispose()
    run_id = beta.run(experiment_id)
    model = beta.ok(
        "POST", "/api/2.0/mlflow/logged-models", json={"experiment_id": experiment_id, "name": "m"}
    )["model"]
    assert model["info"]["artifact_uri"].startswith(_alpha_prefix(alpha, details))
    return {"run_id": run_id, "model_id": model["info"]["model_id"], "name": version["name"]}


@pytest.mark.parametrize(
    "request_",
    [
        ("POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", {"run_id": "{run_id}"}),
        ("POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", {"model_id": "{model_id}"}),
        ("POST", "/api/2.0/mlflow/artifacts/presigned-download-url", {"run_id": "{run_id}"}),
        ("POST", "/ajax-api/2.0/mlflow/upload-artifact", None),
        ("GET", "/get-artifact", None),
        ("GET", "/api/2.0/mlflow/artifacts/list", None),
        ("GET", "/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files", None),
        ("GET", "/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories", None),
        ("GET", "/model-versions/get-artifact", None),
    ],
    ids=[
        "presign-upload-run",
        "presign-upload-model",
        "presign-download-run",
        "upload",
        "get",
        "list",
        "model-files",
        "model-directories",
        "model-version",
    ],
)
def test_a_location_stored_before_the_guard_is_not_resolved(teams, legacy, request_):
    alpha, beta, details = teams
    method, path, body = request_
    params = {
        "run_id": legacy["run_id"],
        "path": "secret.txt",
        "artifact_file_path": "secret.txt",
        "name": legacy["name"],
        "version": "1",
    }
    if body:
        body = {**{k: v.format(**legacy) for k, v in body.items()}, "path": "MLmodel"}
    response = beta.call(
        method,
        path.format(**legacy),
        json=body,
        params=None if body else params,
        data=None if body or method == "GET" else PLANTED,
    )
    assert alpha.secret not in response.text and "X-Amz" not in response.text
    # The proxied upload is refused first by MLflow's presigned-only mode where it is on (S3).
    proxied_upload = path.endswith("upload-artifact") and "presigned" in response.text
    _refused(
        response, "PERMISSION_DENIED", *([] if proxied_upload else [_alpha_prefix(alpha, details)])
    )
    assert not [key for key in _alpha_keys(alpha, details) if key.endswith("MLmodel")]


# What teams do every day still works.


def test_a_team_logs_registers_and_loads_its_models(teams, monkeypatch, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    alpha, _, _ = teams
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", alpha.name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", alpha.password)
    mlflow.set_tracking_uri(alpha.url)
    client = MlflowClient(alpha.url)
    (tmp_path / "notes.txt").write_text("notes")

    class Double(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [2 * x for x in model_input]

    with mlflow.start_run(experiment_id=alpha.experiment_id) as run:
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        logged = mlflow.pyfunc.log_model(name="model", python_model=Double(), pip_requirements=[])
    assert client.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "d")).endswith(
        "notes.txt"
    )
    name = _unique("alpha-registered")
    by_run = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    by_model = mlflow.register_model(f"models:/{logged.model_id}", name)
    copied = mlflow.register_model(f"models:/{name}/{by_run.version}", _unique("alpha-copy"))
    for uri in (
        f"models:/{name}/{by_run.version}",
        f"models:/{name}/{by_model.version}",
        f"models:/{copied.name}/{copied.version}",
        logged.model_uri,
    ):
        assert list(mlflow.pyfunc.load_model(uri).predict([1, 2])) == [2, 4], uri
    version = {"model_version": {"name": name, "version": by_run.version}}
    response = requests.Response()
    response._content, response.status_code = json.dumps(version).encode(), 200
    assert "python_function" in _read_version(alpha, response, "MLmodel")
