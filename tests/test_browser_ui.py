"""The MLflow UI in a real browser (Debian's Chromium and its driver), through the platform.

basic mode: against `invoke local`, as the team's MLflow user (`team/<team>`, made by the
deployed team-user function): the experiments list shows the team's experiment and not a
person's, a run's page shows its params and a metric chart with the logged points, a text
artifact opens. iam mode: through `invoke ui`'s signing proxy and the team API stand-in, which
checks every request's SigV4 signature as API Gateway does.

Downloads, in both modes, through the local platform's own team API (team_api.py, API Gateway's
HTTP API quotas: 10 MB per payload, 30 s) as its local team: a 50 MiB artifact logged with
MLflow's client configured only as the platform publishes (`client_environment`) is downloaded
with the UI's download button and arrives byte for byte, while the team API's log shows that
the bytes never crossed it. The 3.18 UI asks the server for a presigned URL and, when S3 needs
no extra headers, navigates to it (`window.location.assign`); S3's `attachment` disposition,
part of the signed query, makes that navigation a download (MLflow's S3ArtifactRepository).

Screenshots of the run pages go to build/screenshots/; docs/images/mlflow-ui-run.png (the
README's) is the basic-mode one. Selectors are the MLflow UI's own `data-testid`s and ARIA
roles (MLflow 3.18, src/tracking_server/requirements.txt).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import requests
from function_harness import Stack, invoke
from sigv4_gateway import Caller, Gateway, port_of

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

from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME, LocalPlatform
from mlflow_platform.paths import ROOT
from mlflow_platform.signing_proxy import SigningProxy, target
from tracking_server import settings

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
MiB = 1024 * 1024
BIG = 50 * MiB
# The real client factory, taken at import: the team-user function's harness replaces
# boto3.client for as long as the monkeypatch it is given lives (test_iam_mode's `iam` fixture:
# the rest of this module), and `invoke local up` makes its bucket with boto3.
_BOTO3_CLIENT = boto3.client


# -- the browser ------------------------------------------------------------------------------
def _chromium():
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
    return driver


def _sign_in(driver, base: str, username: str, password: str) -> None:
    """A browser's answer to MLflow's Basic challenge: an API URL challenges (the page itself
    does not), credentials in its URL answer, and Chromium keeps the answer for the origin and
    realm, sending it on the page's later challenged requests, and never to S3 (a presigned
    request that also carries an Authorization header is refused, by S3 and the local
    endpoint alike)."""
    parts = urllib.parse.urlsplit(base)
    signed_in = parts._replace(
        netloc=f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}"
        f"@{parts.netloc}",
        path="/ajax-api/2.0/mlflow/experiments/search",
        query="max_results=1",
    )
    driver.get(signed_in.geturl())
    assert "experiments" in driver.find_element("tag name", "body").text


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

    driver = _chromium()
    try:
        _sign_in(driver, base, *team_user)
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

    driver = _chromium()
    try:
        _sign_in(driver, base, person, own)
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

    def verify_request(self, method, path, url, headers, body):
        checked = super().verify_request(method, path, url, headers, body)
        lower = {k.lower(): v for k, v in headers.items()}
        key = lower.get("authorization", "").partition("Credential=")[2].split("/")[0]
        self.seen.append((method, path, key, isinstance(checked, Caller)))
        return checked


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


# -- downloads through the team API, both modes -------------------------------------------------
# What a team's notebook runs, with nothing but the platform's client environment.
_LOG_ARTIFACT = """
import json, sys
from mlflow import MlflowClient
client = MlflowClient()
experiment = client.create_experiment(sys.argv[2])
run = client.create_run(experiment).info.run_id
client.log_artifact(run, sys.argv[1])
print(json.dumps({"experiment": experiment, "run": run}))
"""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _log_big_artifact(details: dict, tmp_path: Path) -> tuple[str, str, str]:
    """A run with a 50 MiB `weights.bin`, logged by MLflow's client through the team API;
    its experiment, run and the file's sha256."""
    upload = tmp_path / "upload"
    upload.mkdir()
    path = upload / "weights.bin"
    with path.open("wb") as file:
        for _ in range(BIG // MiB):
            file.write(os.urandom(MiB))
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env = {**kept, **details["client_environment"],
           "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _LOG_ARTIFACT, str(path), f"downloads-{time.time_ns()}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logged = json.loads(done.stdout.strip().splitlines()[-1])
    return logged["experiment"], logged["run"], _sha256(path)


def _up(local: LocalPlatform, **kwargs) -> dict:
    """`local.up(**kwargs)` with boto3's own client factory, whichever fixture ran before."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3, "client", _BOTO3_CLIENT)
        return local.up(**kwargs)


def _team_api_log(local: LocalPlatform) -> list[dict]:
    """The team API's log: a JSON object per request, with the bytes that crossed it. Its
    threads print each object and its newline apart, so two of them can share a line; a line
    still being written is left for the next read."""
    text = (local.dir / "team-api.log").read_text()
    decoder, entries = json.JSONDecoder(), []
    for line in text[: text.rfind("\n") + 1].splitlines():
        at = 0
        while line.startswith("{", at):
            entry, at = decoder.raw_decode(line, at)
            entries.append(entry)
    return entries


def _download_with_the_button(
    driver, base: str, experiment: str, run: str, into: Path, local: LocalPlatform
) -> tuple[Path, list[dict], list[dict]]:
    """The run's artifact page, `weights.bin` selected, its download button clicked: the file
    as Chromium saved it, and what the team API logged for the whole visit and for the
    download (from the click to the saved file)."""
    into.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(into)}
    )
    visit = len(_team_api_log(local))
    driver.get(f"{base}/#/experiments/{experiment}/runs/{run}/artifacts")
    _until(driver, "weights.bin in the artifact tree",
           lambda: "weights.bin" in _js(driver, _ARTIFACT_NODES))  # fmt: skip
    node = next(
        e
        for e in driver.find_elements("css selector", '[data-testid="artifact-tree-node"]')
        if e.text.strip() == "weights.bin"
    )
    node.click()
    button = _until(driver, "the artifact's download button",
                    lambda: driver.find_elements("css selector", _DOWNLOAD_BUTTON))  # fmt: skip
    time.sleep(1)  # the page's own calls for the selected file settle first
    click = len(_team_api_log(local))
    button[0].click()
    saved = into / "weights.bin"

    def complete() -> bool:
        partial = list(into.glob("*.crdownload"))
        return saved.exists() and not partial and saved.stat().st_size == BIG

    _until(driver, f"weights.bin downloaded into {into}", complete)
    log = _team_api_log(local)
    return saved, log[visit:], log[click:]


# The artifact view's download button (MLflow 3.18 ArtifactView, "Download artifact").
_DOWNLOAD_BUTTON = (
    '[data-component-id="codegen_mlflow_app_src_experiment-tracking_components_'
    'artifactview.tsx_337"]'
)


def _bytes_beside_the_team_api(saved: Path, sha: str, visit: list[dict], click: list[dict]):
    """The file is the one logged; the download asked the team API for a presigned URL and
    nothing more (a few hundred bytes), and no request of the whole visit, the UI's own
    scripts included, carried anything near the artifact's size."""
    assert _sha256(saved) == sha
    assert click, "the download's request for a presigned URL went through the team API"
    assert all(line["status"] < 400 for line in click), click
    assert any("presigned" in line["path"] for line in click), click
    through = sum(line["request_bytes"] + line["response_bytes"] for line in click)
    assert through < 64 * 1024, (through, click)
    assert max(max(c["request_bytes"], c["response_bytes"]) for c in visit) < BIG / 5
    assert sum(c["request_bytes"] + c["response_bytes"] for c in visit) < BIG, visit
    return through


@pytest.fixture(scope="module")
def basic_local() -> Iterator[tuple[LocalPlatform, dict]]:
    """`invoke local up` in basic mode, its server admitting the local team API's pages.

    The UI's POSTs carry their page's Origin. The server serves a team API's page only from
    `https://` and the domain the team API states (request_guard.py), which is right for API
    Gateway, which serves HTTPS only; the local stand-in serves plain `http://127.0.0.1:PORT`,
    so its pages' POSTs would be refused (403). `MLFLOW_SERVER_CORS_ALLOWED_ORIGINS`, the one
    setting that admits another origin, admits it here: the server is started again with it,
    on the ports `up` recorded, once the team API's port is known."""
    state = Path(tempfile.mkdtemp(prefix="mlflow-ui-basic-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        origin = _up(local)["team_api_uri"]
        local.down(("server",))
        details = _up(local, server_env={settings.CORS_ALLOWED_ORIGINS: origin})
        assert details["team_api_uri"] == origin
        yield local, details
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def test_basic_mode_a_50_mib_artifact_downloads_from_the_ui_beside_the_team_api(
    basic_local, tmp_path
):
    """The team API's URL, signed in as the local team with the team secret's password: a
    browser's answer to the Basic challenge, which Chromium keeps for the origin and realm and
    sends on every later challenge of the page's own requests, and never to S3."""
    local, details = basic_local
    base = details["team_api_uri"]
    experiment, run, sha = _log_big_artifact(details, tmp_path)
    user = details["client_environment"]["MLFLOW_TRACKING_USERNAME"]
    password = details["client_environment"]["MLFLOW_TRACKING_PASSWORD"]
    signed_in = urllib.parse.urlsplit(base)._replace(
        netloc=f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        f"@{urllib.parse.urlsplit(base).netloc}"
    )
    driver = _chromium()
    try:
        # The sign-in: an API URL challenges (the page itself does not), and the credentials
        # answer it.
        driver.get(signed_in._replace(path="/ajax-api/2.0/mlflow/experiments/search",
                                      query="max_results=1").geturl())  # fmt: skip
        assert "experiments" in driver.find_element("tag name", "body").text
        started = time.monotonic()
        saved, visit, click = _download_with_the_button(
            driver, base, experiment, run, tmp_path / "saved", local
        )
        took = time.monotonic() - started
    finally:
        driver.quit()
    through = _bytes_beside_the_team_api(saved, sha, visit, click)
    print(f"\nbasic: 50 MiB from the UI in {took:.1f}s; {through} B through the team API")


@pytest.fixture(scope="module")
def iam_local() -> Iterator[tuple[LocalPlatform, dict]]:
    """`invoke local up` in iam mode: its team API checks SigV4 for the credentials it issues
    the local team."""
    state = Path(tempfile.mkdtemp(prefix="mlflow-ui-iam-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        yield local, _up(local, server_env={settings.AUTH_MODE: "iam"})
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def test_iam_mode_a_50_mib_artifact_downloads_through_invoke_ui_beside_the_team_api(
    iam_local, tmp_path
):
    """`invoke ui`'s proxy signs the page's requests with the local team's credentials; the
    presigned URL goes to S3 straight from the browser, past both the proxy and the team API."""
    from botocore.credentials import ReadOnlyCredentials

    local, details = iam_local
    environment = details["client_environment"]
    experiment, run, sha = _log_big_artifact(details, tmp_path)
    seen: list[str] = []
    proxy = SigningProxy(
        to=target(details["team_api_uri"], region=environment["AWS_REGION"]),
        credentials=lambda: ReadOnlyCredentials(
            environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"], None
        ),
        log=seen.append,
    )
    proxy.serve_in_background()
    driver = _chromium()
    try:
        started = time.monotonic()
        saved, visit, click = _download_with_the_button(
            driver, proxy.url, experiment, run, tmp_path / "saved", local
        )
        took = time.monotonic() - started
    finally:
        driver.quit()
        proxy.close()
    through = _bytes_beside_the_team_api(saved, sha, visit, click)
    # The presigned URL came through the proxy, signed and verified by the team API.
    assert [line for line in seen if "presigned" in line and line.endswith("-> 200")], seen
    print(f"\niam: 50 MiB from the UI in {took:.1f}s; {through} B through the team API")
