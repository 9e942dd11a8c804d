"""Spellings where an auth check and a handler could read one request differently.

MLflow 3.18.0 closes a family of them: non-canonical experiment ids, lowerCamelCase body keys
(protobuf's JSON parser takes both names), double-encoded DELETE bodies, query and body that
disagree, dot segments and double encoding in artifact paths, case variants of names, and
renames onto names that hold grants. The platform relies on each of them being closed: a team
holds NO_PERMISSIONS on everything it did not create.

Every case runs in both auth modes, against the real server: `basic` (two MLflow users stand
for teams alpha and beta) and `iam` (two team roles, each request SigV4-signed through the
team API stand-in, which overwrites the caller header). Alpha owns an experiment with a run,
params, a metric, tags and an artifact, a registered model with a version, a tag and the alias
`champion`, and a prompt. Beta owns the same of its own, which is what a spelling would try to
pass off as alpha's. For each spelling beta is refused (or, for a search, shown nothing of
alpha's), and everything of alpha's reads back exactly as before, as alpha and as the admin,
with beta still holding NO_PERMISSIONS on it.

Requests go out byte for byte as written here (http.client, no URL normalisation), so
`..` and percent-encodings reach the server as a client could send them.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from helpers import create_mlflow_user
from iam_platform import iam_teams  # noqa: F401  (a fixture, started only for the iam cases)

M = "/api/2.0/mlflow/"
V3 = "/api/3.0/mlflow/"
ART = "/api/2.0/mlflow-artifacts/artifacts"
REFUSED = (400, 403, 404)
ARTIFACT = b"alpha's model weights"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """One caller: Basic credentials straight to the server, or SigV4 through the team API."""

    url: str
    username: str
    password: str | None = None
    key: tuple[str, str] | None = None

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        data: str | bytes | None = None,
    ) -> Answer:
        """`path` goes out as written; `params` are form-encoded onto it; `body` as JSON."""
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers: dict[str, str] = {}
        payload = data.encode() if isinstance(data, str) else data
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        split = urllib.parse.urlsplit(self.url)
        if self.key is None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        else:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            signed = AWSRequest(
                method=method,
                url=self.url + target,
                data=payload or b"",
                headers={**headers, "Host": split.netloc},
            )
            SigV4Auth(Credentials(*self.key), "execute-api", "us-east-1").add_auth(signed)
            headers = dict(signed.headers.items())
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.read(), response.getheader("Content-Type", ""))
        finally:
            connection.close()

    def ok(self, method: str, path: str, **kwargs: Any) -> dict:
        answer = self.call(method, path, **kwargs)
        assert answer.status == 200, (method, path, answer.status, answer.text)
        return answer.json() if answer.body.strip() else {}


@dataclass
class Holdings:
    """What one team owns."""

    experiment: str
    experiment_name: str
    run: str
    artifact_uri: str
    model: str
    prompt: str


def _s3(details: dict) -> Any:
    """The local platform's S3, where the server keeps artifacts under `artifacts/`."""
    return boto3.client(
        "s3",
        endpoint_url=details["s3_endpoint"],
        region_name="us-east-1",
        **details["s3_credentials"],
    )


def _holdings(team: Client, tag: str, s3: Any, bucket: str) -> Holdings:
    stamp = time.time_ns()
    name = f"{tag}-experiment-{stamp}"
    experiment = team.ok("POST", M + "experiments/create", body={"name": name})["experiment_id"]
    team.ok(
        "POST",
        M + "experiments/set-experiment-tag",
        body={"experiment_id": experiment, "key": "owner", "value": tag},
    )
    info = team.ok("POST", M + "runs/create", body={"experiment_id": experiment})["run"]["info"]
    run = info["run_id"]
    team.ok("POST", M + "runs/log-parameter", body={"run_id": run, "key": "alpha", "value": "0.5"})
    team.ok(
        "POST",
        M + "runs/log-metric",
        body={"run_id": run, "key": "loss", "value": 0.1, "timestamp": 1, "step": 0},
    )
    team.ok("POST", M + "runs/set-tag", body={"run_id": run, "key": "owner", "value": tag})
    relative = f"{experiment}/{run}/artifacts/model/weights.bin"
    uploaded = team.call("PUT", f"{ART}/{relative}", data=ARTIFACT)
    if uploaded.status == 403 and "artifacts_presigned_only" in uploaded.text:
        # A server that takes artifact bytes only through presigned S3 URLs: the object is put
        # where such an upload puts it.
        s3.put_object(Bucket=bucket, Key=f"artifacts/{relative}", Body=ARTIFACT)
    else:
        assert uploaded.status == 200, uploaded.text
    # Capitals, so that case variants of the name are other names.
    model = f"Model-{tag.capitalize()}-{stamp}"
    team.ok(
        "POST",
        M + "registered-models/create",
        body={"name": model, "tags": [{"key": "owner", "value": tag}]},
    )
    team.ok(
        "POST",
        M + "model-versions/create",
        body={"name": model, "source": f"{info['artifact_uri']}/model", "run_id": run},
    )
    team.ok(
        "POST",
        M + "registered-models/alias",
        body={"name": model, "alias": "champion", "version": "1"},
    )
    prompt = f"Prompt-{tag.capitalize()}-{stamp}"
    is_prompt = {"key": "mlflow.prompt.is_prompt", "value": "true"}
    team.ok("POST", M + "registered-models/create", body={"name": prompt, "tags": [is_prompt]})
    team.ok(
        "POST",
        M + "model-versions/create",
        body={
            "name": prompt,
            "source": "dummy-source",
            "tags": [is_prompt, {"key": "mlflow.prompt.text", "value": "Hello {{name}}"}],
        },
    )
    return Holdings(experiment, name, run, info["artifact_uri"], model, prompt)


@dataclass
class Teams:
    mode: str
    admin: Client
    alpha: Client
    beta: Client
    a: Holdings
    b: Holdings
    s3: Any
    bucket: str
    baseline: dict

    @property
    def w(self) -> dict[str, str]:
        """The values a case's request is spelled from."""
        a, b = self.a, self.b
        return {
            "A": a.experiment,
            "B": b.experiment,
            "ar": a.run,
            "br": b.run,
            "am": a.model,
            "bm": b.model,
            "ap": a.prompt,
            "au": self.alpha.username,
            "bu": self.beta.username,
            "tail": f"{a.experiment}/{a.run}/artifacts/model/weights.bin",
        }


def _permission(teams: Teams, user: str, resource_type: str, resource_id: str) -> str:
    return teams.admin.ok(
        "GET",
        V3 + "users/permissions/get",
        params={
            "username": user,
            "resource_type": resource_type,
            "resource_id": resource_id,
        },
    )["permission"]


def _alphas_side(teams: Teams) -> dict:
    """Everything of alpha's, read back as alpha, and who may do what with it, as the admin."""
    alpha, a, beta = teams.alpha, teams.a, teams.beta.username
    searched = alpha.ok("POST", M + "runs/search", body={"experiment_ids": [a.experiment]})
    return {
        "experiment": alpha.ok(
            "GET", M + "experiments/get", params={"experiment_id": a.experiment}
        ),
        "run": alpha.ok("GET", M + "runs/get", params={"run_id": a.run}),
        "runs": sorted(r["info"]["run_id"] for r in searched.get("runs", [])),
        # Artifacts as the bucket holds them, whether the server proxies bytes or presigns.
        "artifact": teams.s3.get_object(Bucket=teams.bucket, Key=f"artifacts/{teams.w['tail']}")[
            "Body"
        ].read(),
        "artifacts": sorted(
            item["Key"]
            for item in teams.s3.list_objects_v2(
                Bucket=teams.bucket, Prefix=f"artifacts/{a.experiment}/"
            ).get("Contents", [])
        ),
        "model": alpha.ok("GET", M + "registered-models/get", params={"name": a.model}),
        "prompt": alpha.ok("GET", M + "registered-models/get", params={"name": a.prompt}),
        "grants": {
            (user, kind, name): _permission(teams, user, kind, name)
            for user in (teams.alpha.username, beta)
            # (A prompt's grants are of type `prompt`, which this API does not read.)
            for kind, name in (("experiment", a.experiment), ("registered_model", a.model))
        },
    }


@pytest.fixture(scope="module", params=["basic", "iam"])
def teams(request) -> Teams:
    stamp = time.time_ns() % 10**9
    if request.param == "basic":
        _, details = request.getfixturevalue("platform")
        clients = {}
        for team in ("alpha", "beta"):
            user, password = f"{team}{stamp}", f"{team}-password-{stamp}"
            create_mlflow_user(details, user, password)
            clients[team] = Client(details["tracking_uri"], user, password)
        alpha, beta = clients["alpha"], clients["beta"]
    else:
        iam = request.getfixturevalue("iam_teams")
        details = iam.details
        alpha = Client(iam.gateway_url, iam.users["a"], key=iam.keys["a"])
        beta = Client(iam.gateway_url, iam.users["b"], key=iam.keys["b"])
    admin = Client(details["tracking_uri"], details["username"], details["password"])
    s3, bucket = _s3(details), details["bucket"]
    teams = Teams(
        request.param,
        admin,
        alpha,
        beta,
        _holdings(alpha, "alpha", s3, bucket),
        _holdings(beta, "beta", s3, bucket),
        s3,
        bucket,
        {},
    )
    teams.baseline = _alphas_side(teams)
    assert teams.baseline["artifact"] == ARTIFACT
    assert {p for (u, *_), p in teams.baseline["grants"].items() if u == beta.username} == {
        "NO_PERMISSIONS"
    }
    assert {p for (u, *_), p in teams.baseline["grants"].items() if u == alpha.username} == {
        "MANAGE"
    }
    return teams


def _fill(value: Any, w: dict[str, str]) -> Any:
    if isinstance(value, str):  # `{A}` and the like; JSON's own braces stay
        return re.sub(r"\{(\w+)\}", lambda m: w.get(m[1], m[0]), value)
    if isinstance(value, dict):
        return {_fill(k, w): _fill(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, w) for v in value]
    return value


def _try(teams: Teams, method: str, path: str, **kwargs: Any) -> Answer:
    """Beta's request, spelled from the teams' values; it must give away nothing of alpha's."""
    path, kwargs = _fill(path, teams.w), _fill(kwargs, teams.w)
    answer = teams.beta.call(method, path, **kwargs)
    asked = path + repr(kwargs)  # an error may quote the request back: that gives nothing away
    for secret in (teams.a.run, teams.a.experiment_name, ARTIFACT.decode()):
        if secret not in asked:
            assert secret not in answer.text, (method, path, answer.status, answer.text[:500])
    return answer


def _refused(teams: Teams, method: str, path: str, expected=REFUSED, **kwargs: Any) -> None:
    answer = _try(teams, method, path, **kwargs)
    assert answer.status in expected, (method, path, kwargs, answer.status, answer.text[:500])
    if method != "GET":  # a GET changes nothing, even one let through: its answer shows it
        assert _alphas_side(teams) == teams.baseline


def case(id_: str, method: str, path: str, expected=REFUSED, **kwargs: Any):
    return pytest.param(method, path, expected, kwargs, id=id_)


CASES = "method, path, expected, kwargs"

NON_CANONICAL_IDS = [
    case("get-leading-zero", "GET", M + "experiments/get", params={"experiment_id": "0{A}"}),
    case("get-plus-sign", "GET", M + "experiments/get", params={"experiment_id": "+{A}"}),
    case("get-leading-space", "GET", M + "experiments/get", params={"experiment_id": " {A}"}),
    case("get-trailing-space", "GET", M + "experiments/get", params={"experiment_id": "{A} "}),
    case("get-decimal", "GET", M + "experiments/get", params={"experiment_id": "{A}.0"}),
    case("create-run-leading-zero", "POST", M + "runs/create", body={"experiment_id": "0{A}"}),
    case("create-run-plus-sign", "POST", M + "runs/create", body={"experiment_id": "+{A}"}),
    case("create-run-decimal", "POST", M + "runs/create", body={"experiment_id": "{A}.0"}),
    case(
        "set-tag-leading-zero",
        "POST",
        M + "experiments/set-experiment-tag",
        body={"experiment_id": "0{A}", "key": "owner", "value": "beta"},
    ),
    case(
        "set-tag-leading-space",
        "POST",
        M + "experiments/set-experiment-tag",
        body={"experiment_id": " {A}", "key": "owner", "value": "beta"},
    ),
    case(
        "rename-plus-sign",
        "POST",
        M + "experiments/update",
        body={"experiment_id": "+{A}", "new_name": "taken-by-beta"},
    ),
    case("delete-leading-zero", "POST", M + "experiments/delete", body={"experiment_id": "0{A}"}),
    case("delete-leading-space", "POST", M + "experiments/delete", body={"experiment_id": " {A}"}),
    case("delete-decimal", "POST", M + "experiments/delete", body={"experiment_id": "{A}.0"}),
    case(
        "grant-leading-zero",
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": "{bu}",
            "resource_type": "experiment",
            "resource_id": "0{A}",
            "permission": "MANAGE",
        },
    ),
    case(
        "grant-trailing-space",
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": "{bu}",
            "resource_type": "experiment",
            "resource_id": "{A} ",
            "permission": "MANAGE",
        },
    ),
    case(
        "revoke-owner-leading-zero",
        "POST",
        V3 + "users/permissions/revoke",
        body={"username": "{au}", "resource_type": "experiment", "resource_id": "0{A}"},
    ),
    case(
        "read-grant-leading-zero",
        "GET",
        V3 + "users/permissions/get",
        params={"username": "{au}", "resource_type": "experiment", "resource_id": "0{A}"},
    ),
    case("artifact-leading-zero", "GET", ART + "/0{tail}"),
]


@pytest.mark.parametrize(CASES, NON_CANONICAL_IDS)
def test_a_non_canonical_experiment_id_reaches_nothing_of_another_team(
    teams, method, path, expected, kwargs
):
    """`01`, `+1`, ` 1`, `1 `, `1.0` for experiment 1: the grant lookup must not miss and the store then find it."""  # noqa: E501
    _refused(teams, method, path, expected, **kwargs)


SEARCHES = [
    case("leading-zero", "POST", M + "runs/search", body={"experiment_ids": ["0{A}"]}),
    case("plus-sign", "POST", M + "runs/search", body={"experiment_ids": ["+{A}"]}),
    case(
        "own-and-leading-zero", "POST", M + "runs/search", body={"experiment_ids": ["{B}", "0{A}"]}
    ),
    case("camel-case-key", "POST", M + "runs/search", body={"experimentIds": ["{A}"]}),
    case(
        "own-in-snake-alpha-in-camel",
        "POST",
        M + "runs/search",
        body={"experiment_ids": ["{B}"], "experimentIds": ["{A}"]},
    ),
    case(
        "own-in-query-alpha-in-body",
        "POST",
        M + "runs/search",
        params={"experiment_ids": "{B}"},
        body={"experiment_ids": ["{A}"]},
    ),
]


@pytest.mark.parametrize(CASES, SEARCHES)
def test_a_search_spelled_oddly_lists_nothing_of_another_team(
    teams, method, path, expected, kwargs
):
    """runs/search with alpha's id as `01`, `+1`, `experimentIds` or beside beta's own: searches filter, so nothing of alpha's may come back."""  # noqa: E501
    answer = _try(teams, method, path, **kwargs)
    assert answer.status in (200, *REFUSED), answer.text
    if answer.status == 200:
        found = {r["info"]["experiment_id"] for r in answer.json().get("runs", [])}
        assert found <= {teams.b.experiment}
    assert _alphas_side(teams) == teams.baseline


CAMEL_CASE_KEYS = [
    case("create-run-experimentId", "POST", M + "runs/create", body={"experimentId": "{A}"}),
    case(
        "create-run-own-snake-alpha-camel",
        "POST",
        M + "runs/create",
        body={"experiment_id": "{B}", "experimentId": "{A}"},
    ),
    case(
        "create-run-own-camel-alpha-snake",
        "POST",
        M + "runs/create",
        body={"experimentId": "{B}", "experiment_id": "{A}"},
    ),
    case(
        "set-tag-experimentId",
        "POST",
        M + "experiments/set-experiment-tag",
        body={"experimentId": "{A}", "key": "owner", "value": "beta"},
    ),
    case("delete-experimentId", "POST", M + "experiments/delete", body={"experimentId": "{A}"}),
    case("update-run-runId", "POST", M + "runs/update", body={"runId": "{ar}", "status": "KILLED"}),
    case("delete-run-runId", "POST", M + "runs/delete", body={"runId": "{ar}"}),
    case(
        "set-tag-own-snake-alpha-camel",
        "POST",
        M + "runs/set-tag",
        body={"run_id": "{br}", "runId": "{ar}", "key": "owner", "value": "beta"},
    ),
    case(
        "log-param-own-snake-alpha-camel",
        "POST",
        M + "runs/log-parameter",
        body={"run_id": "{br}", "runId": "{ar}", "key": "alpha", "value": "9"},
    ),
    # log-metric and log-batch take the platform's fast path when the body is plain.
    case(
        "log-metric-runId",
        "POST",
        M + "runs/log-metric",
        body={"runId": "{ar}", "key": "loss", "value": 9.0, "timestamp": 2, "step": 1},
    ),
    case(
        "log-metric-run_uuid",
        "POST",
        M + "runs/log-metric",
        body={"run_uuid": "{ar}", "key": "loss", "value": 9.0, "timestamp": 2, "step": 1},
    ),
    case(
        "log-metric-empty-run_id-and-run_uuid",
        "POST",
        M + "runs/log-metric",
        body={
            "run_id": "",
            "run_uuid": "{ar}",
            "key": "loss",
            "value": 9.0,
            "timestamp": 2,
            "step": 1,
        },
    ),
    # MLflow's handler takes run_id before run_uuid, as the check does: the metric, if taken,
    # lands on beta's own run.
    case(
        "log-metric-own-run_id-alpha-run_uuid",
        "POST",
        M + "runs/log-metric",
        (200, *REFUSED),
        body={
            "run_id": "{br}",
            "run_uuid": "{ar}",
            "key": "loss",
            "value": 9.0,
            "timestamp": 2,
            "step": 1,
        },
    ),
    case(
        "log-metric-own-snake-alpha-camel",
        "POST",
        M + "runs/log-metric",
        body={
            "run_id": "{br}",
            "runId": "{ar}",
            "key": "loss",
            "value": 9.0,
            "timestamp": 2,
            "step": 1,
        },
    ),
    case(
        "log-batch-runId",
        "POST",
        M + "runs/log-batch",
        body={
            "runId": "{ar}",
            "metrics": [{"key": "loss", "value": 9.0, "timestamp": 2, "step": 1}],
        },
    ),
    case(
        "rename-model-newName",
        "POST",
        M + "registered-models/rename",
        body={"name": "{am}", "newName": "taken-by-beta"},
    ),
    case(
        "grant-resourceId",
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": "{bu}",
            "resourceType": "experiment",
            "resourceId": "{A}",
            "permission": "MANAGE",
        },
    ),
    case(
        "grant-own-snake-alpha-camel",
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": "{bu}",
            "resource_type": "experiment",
            "resource_id": "{B}",
            "resourceId": "{A}",
            "permission": "MANAGE",
        },
    ),
    case(
        "grant-model-resourceId",
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": "{bu}",
            "resource_type": "registered_model",
            "resourceId": "{am}",
            "permission": "MANAGE",
        },
    ),
]


@pytest.mark.parametrize(CASES, CAMEL_CASE_KEYS)
def test_a_camel_case_body_key_reaches_nothing_of_another_team(
    teams, method, path, expected, kwargs
):
    """`experimentId`, `runId`, `resourceId` (protobuf JSON takes them), alone or beside beta's own snake_case id: the check must read the key the handler acts on."""  # noqa: E501
    _refused(teams, method, path, expected, **kwargs)


def _twice(body: dict) -> str:
    return json.dumps(json.dumps(body))


DISAGREEING = [
    case(
        "delete-model-double-encoded",
        "DELETE",
        M + "registered-models/delete",
        data=_twice({"name": "{am}"}),
    ),
    case(
        "delete-model-own-in-query-alpha-double-encoded",
        "DELETE",
        M + "registered-models/delete",
        params={"name": "{bm}"},
        data=_twice({"name": "{am}"}),
    ),
    case(
        "delete-model-own-in-query-alpha-in-body",
        "DELETE",
        M + "registered-models/delete",
        params={"name": "{bm}"},
        body={"name": "{am}"},
    ),
    case(
        "delete-model-alpha-in-query",
        "DELETE",
        M + "registered-models/delete",
        params={"name": "{am}"},
    ),
    case(
        "delete-model-triple-encoded",
        "DELETE",
        M + "registered-models/delete",
        data=json.dumps(_twice({"name": "{am}"})),
    ),
    case(
        "delete-alias-double-encoded",
        "DELETE",
        M + "registered-models/alias",
        data=_twice({"name": "{am}", "alias": "champion"}),
    ),
    case(
        "delete-alias-own-in-query-alpha-in-body",
        "DELETE",
        M + "registered-models/alias",
        params={"name": "{bm}", "alias": "champion"},
        body={"name": "{am}", "alias": "champion"},
    ),
    case(
        "delete-model-tag-double-encoded",
        "DELETE",
        M + "registered-models/delete-tag",
        data=_twice({"name": "{am}", "key": "owner"}),
    ),
    case(
        "delete-version-double-encoded",
        "DELETE",
        M + "model-versions/delete",
        data=_twice({"name": "{am}", "version": "1"}),
    ),
    case(
        "delete-prompt-double-encoded",
        "DELETE",
        M + "registered-models/delete",
        data=_twice({"name": "{ap}"}),
    ),
    case(
        "create-run-own-in-query-alpha-in-body",
        "POST",
        M + "runs/create",
        params={"experiment_id": "{B}"},
        body={"experiment_id": "{A}"},
    ),
    case(
        "delete-experiment-own-in-query-alpha-in-body",
        "POST",
        M + "experiments/delete",
        params={"experiment_id": "{B}"},
        body={"experiment_id": "{A}"},
    ),
    case(
        "delete-run-own-in-query-alpha-in-body",
        "POST",
        M + "runs/delete",
        params={"run_id": "{br}"},
        body={"run_id": "{ar}"},
    ),
    case(
        "grant-own-in-query-alpha-in-body",
        "POST",
        V3 + "users/permissions/grant",
        params={"resource_type": "experiment", "resource_id": "{B}"},
        body={
            "username": "{bu}",
            "resource_type": "experiment",
            "resource_id": "{A}",
            "permission": "MANAGE",
        },
    ),
    case(
        "revoke-owner-double-encoded",
        "POST",
        V3 + "users/permissions/revoke",
        data=_twice({"username": "{au}", "resource_type": "experiment", "resource_id": "{A}"}),
    ),
    # A GET handler reads the query only: beta's own run must be what comes back.
    case(
        "get-run-own-in-query-alpha-in-body",
        "GET",
        M + "runs/get",
        expected=(200,),
        params={"run_id": "{br}"},
        body={"run_id": "{ar}"},
    ),
    case(
        "get-experiment-own-in-query-alpha-in-body",
        "GET",
        M + "experiments/get",
        expected=(200,),
        params={"experiment_id": "{B}"},
        body={"experiment_id": "{A}"},
    ),
]


@pytest.mark.parametrize(CASES, DISAGREEING)
def test_a_double_encoded_or_disagreeing_request_reaches_nothing_of_another_team(
    teams, method, path, expected, kwargs
):
    """A DELETE body that is a JSON string holding JSON, or query and body naming different owners: the check must judge what the handler acts on."""  # noqa: E501
    _refused(teams, method, path, expected, **kwargs)


PROXY_PATHS = {
    "dot-dot-from-own-experiment": "{B}/../{tail}",
    "dot-dot-from-own-run": "{B}/{br}/artifacts/../../../{tail}",
    "leading-dot": "./{tail}",
    "encoded-dot-dot": "{B}/%2e%2e/{tail}",
    "half-encoded-dot-dot": "{B}/.%2e/{tail}",
    "encoded-slashes-around-dot-dot": "{B}%2f..%2f{tail}",
    "encoded-slashes-from-own-run": "{B}/{br}/artifacts/..%2f..%2f..%2f{tail}",
    "double-encoded-dot-dot": "{B}/%252e%252e/{tail}",
    "double-encoded-dot-dot-slash": "{B}/%252e%252e%252f{tail}",
}
PROXY = [
    case(
        f"{method}-{name}",
        method,
        f"{ART}/{path}",
        **({"data": b"overwritten by beta"} if method == "PUT" else {}),
    )
    for name, path in PROXY_PATHS.items()
    for method in ("GET", "PUT", "DELETE")
] + [
    case(f"list-{name}", "GET", ART, params={"path": path.removesuffix("/model/weights.bin")})
    for name, path in PROXY_PATHS.items()
]
UP_TO_ALPHAS = {
    "dot-dot": "../../../{tail}",
    "encoded-slashes": "..%2f..%2f..%2f{tail}",
    "encoded-dots": "%2e%2e/%2e%2e/%2e%2e/{tail}",
    "double-encoded-dots": "%252e%252e/%252e%252e/%252e%252e/{tail}",
    "sibling-run": "../../{ar}/artifacts/model/weights.bin",
}
RUN_AND_VERSION_ARTIFACTS = [
    case(f"{route}-{name}", "GET", f"{path}{up}")
    for name, up in UP_TO_ALPHAS.items()
    for route, path in [
        ("get-artifact", "/get-artifact?run_id={br}&path="),
        ("list-artifacts", M + "artifacts/list?run_id={br}&path="),
        ("model-version-artifact", "/model-versions/get-artifact?name={bm}&version=1&path="),
    ]
]


@pytest.mark.parametrize(CASES, PROXY + RUN_AND_VERSION_ARTIFACTS)
def test_a_dot_segment_or_encoded_artifact_path_reaches_nothing_of_another_team(
    teams, method, path, expected, kwargs
):
    """`..`, `%2e%2e`, `%2f`, `%252e` from beta's own experiment, run or model version: the path the check judges must be the one the store serves."""  # noqa: E501
    _refused(teams, method, path, expected, **kwargs)


def test_a_backslash_in_an_artifact_path_stays_under_the_writers_experiment(teams):
    """`<own>/..%5c<alpha's path>`: on S3 a backslash is part of a key, not a separator, so beta may write it but only under its own experiment."""  # noqa: E501
    path = ART + "/{B}/..%5c{tail}"

    def keys() -> set[str]:
        listed = teams.s3.list_objects_v2(Bucket=teams.bucket, Prefix="artifacts/")
        return {item["Key"] for item in listed.get("Contents", [])}

    before = keys()
    written = _try(teams, "PUT", path, data=b"beta's own bytes")
    assert written.status in (200, *REFUSED), written.text
    new = keys() - before
    assert all(k.startswith(f"artifacts/{teams.b.experiment}/") for k in new), new
    if written.status == 200:
        assert new and _try(teams, "GET", path).body == b"beta's own bytes"
        assert _try(teams, "DELETE", path).status == 200
    assert _alphas_side(teams) == teams.baseline


CASE_VARIANTS = [
    case(f"{action}-{variant}", method, M + route, **{where: {**extra, key: spelled}})
    for variant, spelled in [
        ("lower", "{am_lower}"),
        ("upper", "{am_upper}"),
        ("prompt-lower", "{ap_lower}"),
    ]
    for action, method, route, where, key, extra in [
        ("get", "GET", "registered-models/get", "params", "name", {}),
        ("get-version", "GET", "model-versions/get", "params", "name", {"version": "1"}),
        ("get-alias", "GET", "registered-models/alias", "params", "name", {"alias": "champion"}),
        ("latest-versions", "POST", "registered-models/get-latest-versions", "body", "name", {}),
        (
            "download-uri",
            "GET",
            "model-versions/get-download-uri",
            "params",
            "name",
            {"version": "1"},
        ),
        (
            "set-alias",
            "POST",
            "registered-models/alias",
            "body",
            "name",
            {"alias": "champion", "version": "1"},
        ),
        (
            "set-tag",
            "POST",
            "registered-models/set-tag",
            "body",
            "name",
            {"key": "owner", "value": "beta"},
        ),
        (
            "update",
            "PATCH",
            "registered-models/update",
            "body",
            "name",
            {"description": "beta was here"},
        ),
        ("rename", "POST", "registered-models/rename", "body", "name", {"new_name": "by-beta"}),
        (
            "delete-alias",
            "DELETE",
            "registered-models/alias",
            "body",
            "name",
            {"alias": "champion"},
        ),
        ("delete", "DELETE", "registered-models/delete", "body", "name", {}),
    ]
] + [
    case(
        f"grant-{variant}",
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": "{bu}",
            "resource_type": kind,
            "resource_id": spelled,
            "permission": "MANAGE",
        },
    )
    for variant, kind, spelled in [
        ("lower", "registered_model", "{am_lower}"),
        ("upper", "registered_model", "{am_upper}"),
        ("prompt-lower", "registered_model", "{ap_lower}"),
    ]
]


@pytest.mark.parametrize(CASES, CASE_VARIANTS)
def test_a_case_variant_of_a_name_reaches_nothing_of_another_team(
    teams, method, path, expected, kwargs
):
    """`model-x`, `MODEL-X` for alpha's `Model-X` (and its prompt): grants match the stored spelling, so a variant must not match the model and miss the grant."""  # noqa: E501
    variants = {
        f"{n}_{how}": getattr(teams.w[n], how)() for n in ("am", "ap") for how in ("lower", "upper")
    }
    answer = teams.beta.call(method, _fill(path, teams.w), **_fill(kwargs, {**teams.w, **variants}))
    assert answer.status in REFUSED, (method, path, kwargs, answer.status, answer.text[:500])
    assert teams.a.run not in answer.text
    if method != "GET":
        assert _alphas_side(teams) == teams.baseline


def test_a_model_another_team_registers_under_a_case_variant_is_its_own(teams):
    """Beta registers `model-x` beside alpha's `Model-X`: whatever beta does to it (alias, tag, delete) lands on beta's model only."""  # noqa: E501
    beta, variant = teams.beta, teams.a.model.lower()
    created = beta.call("POST", M + "registered-models/create", body={"name": variant})
    # PostgreSQL compares names by case, so the variant is a name of its own.
    assert created.status == 200, created.text
    assert created.json()["registered_model"]["name"] == variant
    beta.ok(
        "POST",
        M + "registered-models/set-tag",
        body={"name": variant, "key": "owner", "value": "beta"},
    )
    alias = beta.call(
        "POST",
        M + "registered-models/alias",
        body={"name": variant, "alias": "champion", "version": "1"},
    )
    assert alias.status == 404, alias.text  # beta's variant has no version 1
    assert _permission(teams, beta.username, "registered_model", variant) == "MANAGE"
    beta.ok("DELETE", M + "registered-models/delete", body={"name": variant})
    assert _alphas_side(teams) == teams.baseline


def _new_model(team: Client, tag: str) -> str:
    name = f"{tag}-{time.time_ns()}"
    team.ok("POST", M + "registered-models/create", body={"name": name})
    return name


def test_a_rename_onto_another_teams_model_is_refused(teams):
    """Beta renames its model to alpha's exact name (snake and camel key): the registry refuses, and no grant moves."""  # noqa: E501
    mine = _new_model(teams.beta, "beta-model")
    for key in ("new_name", "newName"):
        answer = _try(
            teams, "POST", M + "registered-models/rename", body={"name": mine, key: teams.a.model}
        )
        assert answer.status in REFUSED, answer.text
    teams.beta.ok("GET", M + "registered-models/get", params={"name": mine})
    assert _alphas_side(teams) == teams.baseline


def test_a_rename_onto_a_name_another_team_holds_a_grant_on_is_refused(teams):
    """Beta renames its model to a free name alpha holds a grant on: alpha's grant would start applying to beta's model."""  # noqa: E501
    held = f"held-by-alpha-{time.time_ns()}"
    teams.admin.ok(
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": teams.alpha.username,
            "resource_type": "registered_model",
            "resource_id": held,
            "permission": "READ",
        },
    )
    mine = _new_model(teams.beta, "beta-model")
    answer = _try(
        teams, "POST", M + "registered-models/rename", body={"name": mine, "new_name": held}
    )
    assert answer.status == 400 and "already have permissions" in answer.text, answer.text
    teams.beta.ok("GET", M + "registered-models/get", params={"name": mine})
    assert (
        teams.alpha.call("GET", M + "registered-models/get", params={"name": held}).status
        in REFUSED
    )
    assert _permission(teams, teams.alpha.username, "registered_model", held) == "READ"


@pytest.mark.parametrize("leaves", ["delete", "rename-away", "delete-by-case-variant"])
@pytest.mark.parametrize("arrives", ["create", "rename-onto"])
def test_a_name_another_team_left_carries_no_grant_to_the_next_model_of_that_name(
    teams, leaves, arrives
):
    """Beta's model leaves a name (delete, rename away, a delete spelled in another case), then alpha's model takes it: beta's grant must not stay behind."""  # noqa: E501
    beta, alpha = teams.beta, teams.alpha
    name = _new_model(beta, "Left-Behind")
    if leaves == "delete":
        beta.ok("DELETE", M + "registered-models/delete", body={"name": name})
    elif leaves == "rename-away":
        beta.ok(
            "POST", M + "registered-models/rename", body={"name": name, "new_name": f"{name}-moved"}
        )
    else:
        # Refused: the sweep of grants after a delete goes by the name as requested.
        refused = beta.call("DELETE", M + "registered-models/delete", body={"name": name.lower()})
        assert refused.status in REFUSED, refused.text
        beta.ok("DELETE", M + "registered-models/delete", body={"name": name})
    if arrives == "create":
        alpha.ok("POST", M + "registered-models/create", body={"name": name})
    else:
        alphas = _new_model(alpha, "alpha-model")
        alpha.ok("POST", M + "registered-models/rename", body={"name": alphas, "new_name": name})
    assert _permission(teams, beta.username, "registered_model", name) == "NO_PERMISSIONS"
    for method, route, kwargs in [
        ("GET", "registered-models/get", {"params": {"name": name}}),
        ("POST", "registered-models/set-tag", {"body": {"name": name, "key": "k", "value": "v"}}),
        ("DELETE", "registered-models/delete", {"body": {"name": name}}),
    ]:
        answer = beta.call(method, M + route, **kwargs)
        assert answer.status == 403, (route, answer.status, answer.text)
    alpha.ok("GET", M + "registered-models/get", params={"name": name})


@pytest.mark.parametrize("which", ["future-name", "alpha-lower", "prompt-upper"])
def test_a_grant_on_a_name_no_model_holds_yet_is_refused(teams, which):
    """Beta grants itself MANAGE on a name nobody holds (a future name, a case variant of alpha's): squatting, for whichever model takes the name later."""  # noqa: E501
    name = {
        "future-name": f"future-{time.time_ns()}",
        "alpha-lower": teams.a.model.lower(),
        "prompt-upper": teams.a.prompt.upper(),
    }[which]
    kind = "registered_model"  # prompts too, to the per-user permission API
    answer = _try(
        teams,
        "POST",
        V3 + "users/permissions/grant",
        body={
            "username": teams.beta.username,
            "resource_type": kind,
            "resource_id": name,
            "permission": "MANAGE",
        },
    )
    assert answer.status == 403, answer.text
    assert _permission(teams, teams.beta.username, kind, name) == "NO_PERMISSIONS"
    assert _alphas_side(teams) == teams.baseline


def _routes() -> list[tuple[str, str]]:
    routes = set()
    for family in (
        NON_CANONICAL_IDS,
        SEARCHES,
        CAMEL_CASE_KEYS,
        DISAGREEING,
        CASE_VARIANTS,
        RUN_AND_VERSION_ARTIFACTS,
    ):
        for param in family:
            method, path = param.values[0], param.values[1].split("?")[0]
            if not path.startswith(ART):
                routes.add((method, path))
    return sorted(routes)


def test_every_route_the_spellings_try_is_served(teams):
    """A refusal proves nothing on a route the server does not have (unknown routes are refused too): the admin, who skips the checks, reaches each one's handler."""  # noqa: E501
    missing = "999999999"
    for method, path in _routes():
        values = {
            "experiment_id": missing,
            "run_id": "0" * 32,
            "name": f"no-such-{missing}",
            "version": "1",
            "alias": "none",
            "path": "x",
            "username": f"no-such-{missing}",
            "resource_type": "experiment",
            "resource_id": missing,
        }
        if method == "GET":
            answer = teams.admin.call(method, path, params=values)
        else:
            answer = teams.admin.call(
                method, path, body={**values, "key": "k", "value": "v", "permission": "READ"}
            )
        # Flask's own 404 and 405 pages are HTML; every MLflow handler answers JSON.
        assert answer.status not in (404, 405) or "json" in answer.content_type, (
            method,
            path,
            answer.status,
            answer.text[:300],
        )
        assert "text/html" not in answer.content_type, (method, path, answer.text[:300])
