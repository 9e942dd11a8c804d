"""The fast log-metric and log-batch views against MLflow's own views, on the local platform.

MLflow's server also takes a body posted as a JSON string holding the JSON (older clients do
that); the fast views leave such a body to MLflow's view. The same payload sent both ways is
therefore answered once by the fast view and once by MLflow's: results and errors must match.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from importlib.metadata import entry_points

import pytest
import requests
from mlflow.entities import Metric
from mlflow.protos.service_pb2 import LogBatch, LogMetric
from mlflow.utils.proto_json_utils import message_to_json

from tracking_server import app
from tracking_server.fast_paths import NotPlain, parse_log_batch, parse_log_metric

RUN = "0123456789abcdef0123456789abcdef"
BATCH_PATH = "/api/2.0/mlflow/runs/log-batch"
METRIC_PATH = "/api/2.0/mlflow/runs/log-metric"


def test_what_mlflows_client_sends_takes_the_fast_path():
    metrics = [Metric("loss", v, 1_700_000_000_000, i) for i, v in
               enumerate([0.5, math.nan, math.inf, -math.inf, 3.0])]  # fmt: skip
    body = json.loads(
        message_to_json(LogBatch(run_id=RUN, metrics=[m.to_proto() for m in metrics]))
    )
    run_id, values = parse_log_batch(body)
    assert run_id == RUN
    assert [v[1] for v in values][:1] == [0.5] and math.isnan(values[1][1])
    assert [v[1] for v in values][2:] == [math.inf, -math.inf, 3.0]
    assert [(v[0], v[2], v[3]) for v in values] == [
        ("loss", 1_700_000_000_000, i) for i in range(5)
    ]

    single = LogMetric(run_id=RUN, run_uuid=RUN, key="acc", value=1.0, timestamp=5, step=0)
    assert parse_log_metric(json.loads(message_to_json(single))) == (RUN, [("acc", 1.0, 5, 0)])


def _batch(**changes):
    body = {"run_id": RUN, "metrics": [{"key": "loss", "value": 1, "timestamp": 2, "step": 3}]}
    body.update(changes)
    return body


def _metric(**changes):
    fields = {"key": "loss", "value": 1.5, "timestamp": 2, "step": 3}
    fields.update(changes)
    return _batch(metrics=[{k: v for k, v in fields.items() if v is not None}])


@pytest.mark.parametrize(
    "body",
    [
        [],
        "{}",
        _batch(params=[{"key": "p", "value": "v"}]),
        _batch(tags=[{"key": "t", "value": "v"}]),
        _batch(metrics=[]),
        _batch(metrics={"key": "loss"}),
        _batch(runId=RUN),
        _batch(run_id=""),
        _batch(run_id="../etc"),
        _batch(run_id=7),
        _metric(model_id="m-1"),
        _metric(dataset_name="train"),
        _metric(value=True),
        _metric(value="1.5"),
        _metric(value=None),
        _metric(value=10**400),
        _metric(timestamp="2"),
        _metric(timestamp=2.0),
        _metric(timestamp=-1),
        _metric(timestamp=None),
        _metric(step=2**63),
        _metric(step=False),
        _metric(key="../up"),
        _metric(key="a" * 251),
        _metric(key=""),
        _metric(key=5),
        _batch(metrics=[{"key": f"k{i}", "value": 1, "timestamp": 1} for i in range(1001)]),
    ],
    ids=repr,
)
def test_anything_but_the_plain_shape_goes_to_mlflows_view(body):
    with pytest.raises(NotPlain):
        parse_log_batch(body)


def test_a_later_metric_with_a_checked_key_is_still_checked():
    body = _batch(metrics=[{"key": "loss", "value": 1, "timestamp": 1},
                           {"key": "loss", "value": 1, "timestamp": -5}])  # fmt: skip
    with pytest.raises(NotPlain):
        parse_log_batch(body)
    with pytest.raises(NotPlain):
        parse_log_metric({"run_id": RUN, "run_uuid": "another", "key": "k", "value": 1,
                          "timestamp": 1})  # fmt: skip


def test_mlflow_finds_the_platforms_applications():
    found = {e.name: e.value for e in entry_points(group="mlflow.app")}
    assert found[app.BASIC_AUTH] == "tracking_server.app:create_basic_auth_app"
    assert "platform" not in found  # no application without MLflow's auth is installed


@pytest.fixture(scope="module")
def session(platform):
    _, details = platform
    http = requests.Session()
    http.auth = (details["username"], details["password"])
    uri = details["tracking_uri"]
    experiment = http.post(f"{uri}/api/2.0/mlflow/experiments/create",
                           json={"name": f"fast-{time.time_ns()}"}, timeout=30)  # fmt: skip
    experiment_id = experiment.json()["experiment_id"]

    def new_run() -> str:
        created = http.post(f"{uri}/api/2.0/mlflow/runs/create",
                            json={"experiment_id": experiment_id}, timeout=30)  # fmt: skip
        return created.json()["run"]["info"]["run_id"]

    return http, uri, new_run


def _post(session, path: str, body: object, *, mlflows_view: bool) -> requests.Response:
    http, uri, _ = session
    data = json.dumps(json.dumps(body) if mlflows_view else body)
    return http.post(f"{uri}{path}", data=data, headers={"Content-Type": "application/json"},
                     timeout=30)  # fmt: skip


def _stored(session, run_id: str) -> tuple[dict, dict]:
    http, uri, _ = session
    run = http.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30).json()
    latest = {m["key"]: (m["value"], m["timestamp"], m["step"])
              for m in run["run"]["data"].get("metrics", [])}  # fmt: skip
    history = {}
    for key in latest:
        answer = http.get(f"{uri}/api/2.0/mlflow/metrics/get-history",
                          params={"run_id": run_id, "metric_key": key}, timeout=30)  # fmt: skip
        history[key] = sorted(
            (m["step"], m["timestamp"], str(m["value"])) for m in answer.json()["metrics"]
        )
    return latest, history


def test_the_fast_views_store_what_mlflows_views_store(session):
    _, _, new_run = session
    rnd = random.Random(20261126)
    values = ["NaN", "Infinity", "-Infinity", 0, -0.0, 1, 2.5, 1e308, -7]
    fast, stock = new_run(), new_run()
    for _ in range(25):
        metrics = [
            {"key": f"m{rnd.randrange(5)}", "value": rnd.choice([*values, rnd.random()]),
             "timestamp": rnd.randrange(40), **({"step": rnd.randrange(6)} if rnd.random() < 0.8
                                                 else {})}
            for _ in range(rnd.randrange(1, 40))
        ]  # fmt: skip
        metrics += metrics[: rnd.randrange(3)]  # repeated within the call and across calls
        for run_id, mlflows_view in ((fast, False), (stock, True)):
            if len(metrics) == 1:
                body = {"run_id": run_id, "run_uuid": run_id, **metrics[0]}
                path, parse = METRIC_PATH, parse_log_metric
            else:
                body = {"run_id": run_id, "metrics": metrics}
                path, parse = BATCH_PATH, parse_log_batch
            parse(body)  # the plain shape: the fast view takes it
            answer = _post(session, path, body, mlflows_view=mlflows_view)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {}
    assert _stored(session, fast) == _stored(session, stock)
    assert len(_stored(session, fast)[0]) == 5


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (BATCH_PATH, _metric(key="../up")),
        (BATCH_PATH, _metric(timestamp=-1)),
        (BATCH_PATH, _metric(value="many")),
        (BATCH_PATH, _batch(metrics=[{"key": "k", "value": 1, "timestamp": 1}] * 1001)),
        (BATCH_PATH, _batch(run_id="0" * 32)),
        (METRIC_PATH, {"run_id": "0" * 32, "key": "k", "value": 1, "timestamp": 1}),
        (METRIC_PATH, {"run_id": RUN, "key": "k", "timestamp": 1}),
    ],
    ids=repr,
)
def test_errors_are_mlflows_errors(session, path, body):
    _, _, new_run = session
    answers, stored = [], []
    for mlflows_view in (False, True):
        run_id = new_run()
        sent = {**body, "run_id": run_id} if body.get("run_id") == RUN else body
        answer = _post(session, path, sent, mlflows_view=mlflows_view)
        answers.append((answer.status_code, answer.json()))
        stored.append(_stored(session, run_id))
    assert answers[0] == answers[1]
    assert stored[0] == stored[1]
    # MLflow's view refuses these, except a value it cannot read, which it stores as 0.
    assert answers[0][0] in (400, 404) or body["metrics"][0]["value"] == "many"


def test_a_deleted_run_takes_no_metric_and_the_answer_is_mlflows(session):
    http, uri, new_run = session
    answers = []
    for mlflows_view in (False, True):
        run_id = new_run()
        http.post(f"{uri}/api/2.0/mlflow/runs/delete", json={"run_id": run_id}, timeout=30)
        answer = _post(session, BATCH_PATH, _batch(run_id=run_id), mlflows_view=mlflows_view)
        answers.append((answer.status_code, answer.json()["error_code"],
                        answer.json()["message"].replace(run_id, "RUN")))  # fmt: skip
    assert answers[0] == answers[1]
    assert answers[0][:2] == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("path", [METRIC_PATH, BATCH_PATH])
def test_the_fast_views_still_ask_for_credentials(session, path):
    _, uri, new_run = session
    run_id = new_run()
    body = {"run_id": run_id, "key": "k", "value": 1, "timestamp": 1} if path == METRIC_PATH \
        else _batch(run_id=run_id)  # fmt: skip
    for auth in (None, ("admin", "wrong-password-123")):
        answer = requests.post(f"{uri}{path}", json=body, auth=auth, timeout=30)
        assert answer.status_code == 401
    assert _stored(session, run_id) == ({}, {})


def _asgi_routes(scope: dict) -> str:
    """Which application HotPaths hands this request to."""
    seen: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        async def __call__(self, scope, receive, send) -> None:
            seen.append(self.name)

    hot = app.HotPaths(Recorder("mlflow"), Recorder("flask"))
    asyncio.run(hot(scope, None, None))
    return seen[0]


def _scope(method="POST", path="/api/2.0/mlflow/runs/log-batch", length=b"120", kind="http"):
    headers = [(b"host", b"127.0.0.1")] + ([(b"content-length", length)] if length else [])
    return {"type": kind, "method": method, "path": path, "headers": headers}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (_scope(), "flask"),
        (_scope(path="/api/2.0/mlflow/runs/log-metric"), "flask"),
        (_scope(length=str(app.HOT_BODY_LIMIT).encode()), "flask"),
        (_scope(length=str(app.HOT_BODY_LIMIT + 1).encode()), "mlflow"),
        (_scope(length=None), "mlflow"),  # chunked: size unknown
        (_scope(length=b"12x"), "mlflow"),
        (_scope(method="GET"), "mlflow"),
        (_scope(path="/ajax-api/2.0/mlflow/runs/log-batch"), "mlflow"),
        (_scope(path="/api/2.0/mlflow/runs/log-parameter"), "mlflow"),
        (_scope(kind="lifespan"), "mlflow"),
    ],
    ids=repr,
)
def test_only_small_metric_posts_skip_mlflows_asgi_layers(scope, expected):
    assert _asgi_routes(scope) == expected


@pytest.mark.parametrize("path", [METRIC_PATH, BATCH_PATH, "/api/2.0/mlflow/runs/log-parameter"])
def test_the_direct_paths_keep_mlflows_host_cors_and_header_checks(session, path):
    """The checks MLflow's ASGI layers make are made by Flask on the direct paths too."""
    http, uri, new_run = session
    run_id = new_run()
    body = {"run_id": run_id, "key": "k", "value": 1, "timestamp": 1}
    if path == BATCH_PATH:
        body = _batch(run_id=run_id)
    elif "parameter" in path:
        body = {"run_id": run_id, "key": "k", "value": "v"}
    bad_host = http.post(f"{uri}{path}", json=body, headers={"Host": "evil.example"}, timeout=30)
    assert bad_host.status_code == 403
    cross_site = http.post(f"{uri}{path}", json=body, timeout=30,
                           headers={"Origin": "https://evil.example"})  # fmt: skip
    assert cross_site.status_code == 403
    assert _stored(session, run_id) == ({}, {})
    accepted = http.post(f"{uri}{path}", json=body, timeout=30)
    assert accepted.status_code == 200
    assert accepted.headers["X-Content-Type-Options"] == "nosniff"
    assert accepted.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_extreme_steps_and_timestamps_are_stored_as_mlflows_views_store_them(session):
    """Every int64 step and every timestamp MLflow accepts, one at a time and in a batch."""
    _, _, new_run = session
    steps = [-(2**63), -(2**63) + 1, -1, 0, 2**63 - 2, 2**63 - 1]
    timestamps = [0, 2**63 - 1]
    metrics = [{"key": "m", "value": i, "timestamp": t, "step": s}
               for i, (t, s) in enumerate((t, s) for t in timestamps for s in steps)]  # fmt: skip
    fast, stock = new_run(), new_run()
    for run_id, mlflows_view in ((fast, False), (stock, True)):
        for metric in metrics:
            body = {"run_id": run_id, **metric, "key": f"one{metric['value']}"}
            parse_log_metric(body)  # the plain shape: the fast view takes it
            answer = _post(session, METRIC_PATH, body, mlflows_view=mlflows_view)
            assert (answer.status_code, answer.json()) == (200, {}), answer.text
        body = {"run_id": run_id, "metrics": metrics}
        parse_log_batch(body)
        answer = _post(session, BATCH_PATH, body, mlflows_view=mlflows_view)
        assert (answer.status_code, answer.json()) == (200, {}), answer.text
    assert _stored(session, fast) == _stored(session, stock)
    latest, history = _stored(session, fast)
    assert latest["m"] == (len(metrics) - 1, 2**63 - 1, 2**63 - 1)
    assert [(t, s) for s, t, _ in history["m"]] == sorted(
        ((t, s) for t in timestamps for s in steps), key=lambda ts: (ts[1], ts[0])
    )
