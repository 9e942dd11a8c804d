"""The MLflow UI in a real browser (Debian's Chromium and its driver), through the platform.

basic mode: against `invoke local`, as the team's MLflow user (`team/<team>`, made by the
deployed team-user function): the experiments list shows the team's experiment and not a
person's, a run's page shows its params and a metric chart with the logged points, a text
artifact opens. iam mode: through `invoke ui`'s signing proxy and the team API stand-in, which
checks every request's SigV4 signature as API Gateway does.

Screenshots of the run pages go to build/screenshots/; docs/images/mlflow-ui-run.png (the
README's) is the basic-mode one. Selectors are the MLflow UI's own `data-testid`s and ARIA
roles (MLflow 3.18, src/tracking_server/requirements.txt).
"""

from __future__ import annotations

import base64
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from function_harness import Stack, invoke
from sigv4_gateway import Caller, Gateway, port_of, verify

# The iam-mode platform with its two teams: the module that tests iam mode's API sets it up.
from test_iam_mode import (  # noqa: F401
    TEAM_A_KEY,
    TEAM_B_KEY,
    TEAMS,
    _session,
    _signed,
    iam,
    monkeypatch_module,
)

from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME
from mlflow_platform.paths import ROOT
from mlflow_platform.signing_proxy import SigningProxy, target

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver; .ci/run installs them)",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
SCREENSHOTS = ROOT / "build" / "screenshots"
PARAMS = {"learning_rate": "0.1", "epochs": "30"}
LOSS = [round(1.0 / (step + 1), 4) for step in range(10)]
NOTE = "validation set: 2026-11 holdout, 5000 rows\n"
WAIT = 60.0


# -- the browser ------------------------------------------------------------------------------
def _chromium(authorization: str | None = None):
    """Headless Chromium through the system chromedriver (Selenium Manager never runs: the
    driver's path is given), with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        # Without these, Chromium's background connections fail and its page loads with them.
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,900", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    if authorization:
        # The answer to MLflow's Basic challenge, on every request the page makes. With Chromium
        # 156, credentials in the URL (http://user:pass@host/) authenticate the page's own load
        # only: the UI's fetch() calls are then answered 401 and the page shows "We couldn't
        # load your experiments"; and Selenium's BiDi auth handler (network.continueWithAuth)
        # timed out with this chromedriver. A header set through CDP is what a browser sends
        # once a person has answered the prompt.
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": authorization}}
        )
    return driver


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _until(driver, what: str, found: Callable[[], object]):
    """`found()`'s first truthy value, waiting for the single-page app to render it."""
    deadline = time.monotonic() + WAIT
    while True:
        value = found()
        if value:
            return value
        if time.monotonic() > deadline:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SCREENSHOTS / "failed.png"))
            body = driver.execute_script("return document.body.innerText")
            pytest.fail(f"{what}: not shown within {WAIT:.0f}s at {driver.current_url}\n{body}")
        time.sleep(0.5)


def _js(driver, script: str):
    return driver.execute_script(script)


_EXPERIMENTS = """return [...document.querySelectorAll('[data-testid="experiment-list-item-link"]')]
  .map(e => e.innerText.trim())"""
_TABLE_ROWS = """return Object.fromEntries([...document.querySelectorAll('[role="row"]')]
  .map(r => [...r.querySelectorAll('[role="cell"]')].map(c => c.innerText.trim()))
  .filter(cells => cells.length === 2))"""
# Each metric chart card: its title and the points of each plotted trace (Plotly keeps the
# figure's data on its graph element).
_CHARTS = """return [...document.querySelectorAll(
    '[data-testid="experiment-view-compare-runs-card"]')].map(card => {
  const plot = card.querySelector('.js-plotly-plot');
  return {title: card.innerText.split('\\n')[0].trim(),
          markers: card.querySelectorAll('path.point').length,
          traces: plot && plot.data ? plot.data.map(t => ({x: [...t.x], y: [...t.y]})) : []};
})"""
_ARTIFACT_NODES = """return [...document.querySelectorAll('[data-testid="artifact-tree-node"]')]
  .map(e => e.innerText.trim())"""


def _experiments(driver, base: str, *, expect: str) -> list[str]:
    driver.get(f"{base}/#/experiments")

    def listed() -> list[str] | None:
        names = _js(driver, _EXPERIMENTS)
        return names if expect in names else None

    return _until(driver, f"experiment {expect} in the list", listed)


def _check_run_page(driver, base: str, experiment: str, run: str, screenshot: str) -> None:
    """Params on the run's overview; the metric's chart with every logged point."""
    driver.get(f"{base}/#/experiments/{experiment}/runs/{run}")

    def params_shown() -> dict[str, str] | None:
        rows = _js(driver, _TABLE_ROWS)
        return rows if PARAMS.items() <= rows.items() else None

    rows = _until(driver, "the run's parameters", params_shown)
    assert rows["loss"] == str(LOSS[-1])  # the metrics table: the last value logged
    driver.get(f"{base}/#/experiments/{experiment}/runs/{run}/model-metrics")

    def loss_chart():
        charts = _js(driver, _CHARTS)
        return next((c for c in charts if c["title"] == "loss" and c["traces"]), None)

    chart = _until(driver, "the loss chart", loss_chart)
    # The run's line, and under it the same points unsmoothed (MLflow draws both).
    for trace in chart["traces"]:
        assert trace["x"] == list(range(len(LOSS))) and trace["y"] == pytest.approx(LOSS)
    assert chart["markers"] == len(LOSS)  # each point drawn
    # For the screenshot: the assistant's side panel closed (if shown), the chart settled.
    for close in driver.find_elements(
        "css selector", '[data-component-id="mlflow.assistant.chat_panel.close"]'
    ):
        close.click()
    time.sleep(1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / screenshot))


def _log_team_run(client, experiment_name: str, tmp_path: Path) -> tuple[str, str]:
    experiment = client.create_experiment(experiment_name)
    run = client.create_run(experiment).info.run_id
    for key, value in PARAMS.items():
        client.log_param(run, key, value)
    for step, value in enumerate(LOSS):
        client.log_metric(run, "loss", value, step=step)
    note = tmp_path / "notes.txt"
    note.write_text(NOTE)
    client.log_artifact(run, str(note))
    return experiment, run


def _client(monkeypatch, url: str, auth: tuple[str, str] | None):
    from mlflow import MlflowClient

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    if auth:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", auth[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth[1])
    return MlflowClient(url)


# -- basic mode -------------------------------------------------------------------------------
def _team_user(monkeypatch, details: dict) -> tuple[str, str]:
    """`team/<team>` with its secret's password, made by the deployed team-user function."""
    team = f"ui{time.time_ns() % 10**9}"
    password = f"{team}-secret-password"
    stack = f"arn:aws:cloudformation:us-east-1:123456789012:stack/team-{team}/5e6f7a"
    role = f"arn:aws:iam::123456789012:role/team-{team}-TeamRole-UI"
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"],
                      admin={"username": details["username"], "password": details["password"]},
                      team_secret={"username": f"team/{team}", "password": password},
                      request_type="Create", stack=Stack(stack_id=stack, roles=[role]),
                      team=team, principal=role)  # fmt: skip
    assert response is not None and response["Status"] == "SUCCESS", response
    return f"team/{team}", password


def test_basic_mode_a_team_logs_in_and_sees_its_runs_charts_and_artifacts(
    platform, monkeypatch, tmp_path
):
    from helpers import create_mlflow_user

    _, details = platform
    base = details["tracking_uri"]
    team_user = _team_user(monkeypatch, details)
    # A person's experiment: its creator gets MANAGE; the server's default is NO_PERMISSIONS.
    person = (f"person{time.time_ns()}", "person-password-123")
    create_mlflow_user(details, *person)
    private = f"private-{time.time_ns()}"
    _client(monkeypatch, base, person).create_experiment(private)
    name = f"churn-model-{time.time_ns()}"
    experiment, run = _log_team_run(_client(monkeypatch, base, team_user), name, tmp_path)

    # What a browser gets before it logs in: MLflow's Basic challenge (RFC 7617; MLflow docs,
    # "Authenticating to MLflow"), which a browser answers with its credential prompt.
    challenge = requests.get(f"{base}/ajax-api/2.0/mlflow/experiments/search", timeout=30)
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"].startswith("Basic")

    driver = _chromium(_basic(*team_user))
    try:
        names = _experiments(driver, base, expect=name)
        assert private not in names
        _check_run_page(driver, base, experiment, run, "basic-run-metrics.png")

        driver.get(f"{base}/#/experiments/{experiment}/runs/{run}/artifacts")
        _until(driver, "notes.txt in the artifact tree",
               lambda: "notes.txt" in _js(driver, _ARTIFACT_NODES))  # fmt: skip
        node = next(
            e
            for e in driver.find_elements("css selector", '[data-testid="artifact-tree-node"]')
            if e.text.strip() == "notes.txt"
        )
        node.click()
        shown = _until(driver, "the artifact's text",
                       lambda: _js(driver, "const c = document.querySelector('code');"
                                           "return c && c.innerText"))  # fmt: skip
        assert shown.strip() == NOTE.strip()
        driver.save_screenshot(str(SCREENSHOTS / "basic-artifact.png"))
    finally:
        driver.quit()


def test_basic_mode_a_person_gets_their_own_user_as_the_readme_says(platform, monkeypatch):
    """docs/mlflow-ui.md: the admin creates a person's user, the person replaces the initial
    password, the team grants READ on one experiment; the person's browser shows
    that experiment and not the team's others."""
    _, details = platform
    base = details["tracking_uri"]
    team = _team_user(monkeypatch, details)
    admin = (details["username"], details["password"])
    person, initial, own = f"alice{time.time_ns()}", "initial-password-1", "alices-password-2"

    def call(method: str, path: str, auth: tuple[str, str], body: dict) -> requests.Response:
        return requests.request(method, base + path, auth=auth, json=body, timeout=30)

    user = {"username": person, "password": initial}
    assert call("POST", "/api/2.0/mlflow/users/create", team, user).status_code == 403
    assert call("POST", "/api/2.0/mlflow/users/create", admin, user).status_code == 200
    changed = call("PATCH", "/api/2.0/mlflow/users/update-password", (person, initial),
                   {"username": person, "current_password": initial, "password": own})  # fmt: skip
    assert changed.status_code == 200, changed.text
    shared, kept = f"shared-{time.time_ns()}", f"kept-{time.time_ns()}"
    client = _client(monkeypatch, base, team)
    shared_id = client.create_experiment(shared)
    client.create_experiment(kept)
    grant = {"username": person, "resource_type": "experiment", "resource_id": shared_id}
    granted = call("POST", "/api/3.0/mlflow/users/permissions/grant", team,
                   {**grant, "permission": "READ"})  # fmt: skip
    assert granted.status_code == 200, granted.text
    # READ: no runs of their own in it, and no granting onwards.
    runs = call("POST", "/api/2.0/mlflow/runs/create", (person, own), {"experiment_id": shared_id})
    assert runs.status_code == 403
    onwards = call("POST", "/api/3.0/mlflow/users/permissions/grant", (person, own),
                   {**grant, "username": admin[0], "permission": "READ"})  # fmt: skip
    assert onwards.status_code == 403

    driver = _chromium(_basic(person, own))
    try:
        names = _experiments(driver, base, expect=shared)
        assert kept not in names
    finally:
        driver.quit()


# -- iam mode ---------------------------------------------------------------------------------
class RecordingGateway(Gateway):
    """The team API stand-in, recording for each request whose key signed it and whether the
    signature verified."""

    def __init__(self, **kwargs) -> None:
        self.seen: list[tuple[str, str, str, bool]] = []
        super().__init__(**kwargs)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes):
        url = f"http://{headers.get('Host')}{path}"
        valid = isinstance(verify(method, url, headers, body, self.callers), Caller)
        key = headers.get("Authorization", "").partition("Credential=")[2].split("/")[0]
        self.seen.append((method, path, key, valid))
        return super().answer(method, path, headers, body)


@pytest.fixture
def signed_ui(iam) -> Iterator[tuple[SigningProxy, RecordingGateway]]:  # noqa: F811
    """`invoke ui` as team A (fixed test credentials) in front of the team API stand-in."""
    from botocore.credentials import ReadOnlyCredentials

    callers = {
        TEAM_A_KEY: Caller("team-a-secret-key", _session(TEAMS["a"][0])),
        TEAM_B_KEY: Caller("team-b-secret-key", _session(TEAMS["b"][0])),
    }
    gateway = RecordingGateway(
        target_port=port_of(iam["tracking_uri"]), host=LOAD_BALANCER_DNS_NAME, callers=callers
    )
    proxy = SigningProxy(
        to=target(gateway.url, region="us-east-1"),
        credentials=lambda: ReadOnlyCredentials(TEAM_A_KEY, "team-a-secret-key", None),
    )
    proxy.serve_in_background()
    try:
        yield proxy, gateway
    finally:
        proxy.close()
        gateway.close()


def test_iam_mode_the_ui_through_the_signing_proxy_signs_every_request(
    signed_ui, monkeypatch, tmp_path
):
    """Each request the browser makes reaches the server only with a valid signature for team
    A's credentials, as an HTTP API route with AWS_IAM authorization requires (API Gateway
    Developer Guide, "Control access to HTTP APIs with IAM authorization")."""
    proxy, gateway = signed_ui
    # Team B's experiment, signed with team B's own credentials through its team API.
    other = f"team-b-{time.time_ns()}"
    created = requests.post(f"{gateway.url}/api/2.0/mlflow/experiments/create",
                            json={"name": other}, auth=_signed(TEAM_B_KEY, "team-b-secret-key"),
                            timeout=30)  # fmt: skip
    assert created.status_code == 200, created.text
    name = f"fraud-model-{time.time_ns()}"
    experiment, run = _log_team_run(_client(monkeypatch, proxy.url, None), name, tmp_path)
    start = len(gateway.seen)

    driver = _chromium()
    try:
        names = _experiments(driver, proxy.url, expect=name)
        assert other not in names
        _check_run_page(driver, proxy.url, experiment, run, "iam-run-metrics.png")
    finally:
        driver.quit()

    browsed = gateway.seen[start:]
    assert len(browsed) > 20, browsed  # the page, its scripts and the UI's API calls
    refused = [(m, p) for m, p, key, valid in browsed if key != TEAM_A_KEY or not valid]
    assert refused == []
    # The run (GraphQL) and its metric's points (the bulk history) came signed too.
    paths = {p.split("?")[0] for _, p, _, _ in browsed}
    assert {"/graphql", "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"} <= paths
