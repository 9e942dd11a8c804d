"""`invoke ui`'s signing proxy: where it listens, what it signs for, and its errors."""

from __future__ import annotations

import datetime
import http.client
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.session
import pytest
import requests
from botocore.credentials import (
    CredentialProvider,
    Credentials,
    ReadOnlyCredentials,
    RefreshableCredentials,
)
from sigv4_gateway import Caller, Gateway, verify

from mlflow_platform.paths import ROOT
from mlflow_platform.signing_proxy import (
    LoopbackServer,
    ProxyError,
    SigningProxy,
    frozen_credentials,
    local_names,
    sign,
    target,
)

API = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
CREDENTIALS = ReadOnlyCredentials("AKIAEXAMPLE000000001", "secret", None)


@pytest.mark.parametrize("bind", ["0.0.0.0", "10.0.0.5", "::", "example.com"])
def test_it_listens_on_a_loopback_address_only(bind):
    with pytest.raises(ProxyError) as error:
        SigningProxy(to=target(API), credentials=lambda: CREDENTIALS, bind=bind)
    assert f"--bind {bind!r}" in str(error.value) and "loopback address only" in str(error.value)


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1"])
def test_loopback_addresses_are_served(bind):
    proxy = SigningProxy(to=target(API), credentials=lambda: CREDENTIALS, bind=bind)
    try:
        assert proxy.url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    finally:
        proxy.close()


def test_the_region_comes_from_the_api_url_and_only_https_leaves_the_machine():
    assert target(API).region == "eu-west-1"
    assert target(API + "/", region="us-east-2").region == "us-east-2"
    with pytest.raises(ProxyError, match="must be the team API's https:// URL"):
        target("http://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com")
    with pytest.raises(ProxyError, match="--region is needed"):
        target("https://mlflow.example.com")


def test_a_signature_is_what_api_gateway_checks():
    """The proxy's signature verifies with botocore's own signer (tests/sigv4_gateway.py), and
    fails with another secret or a changed body."""
    url = f"{API}/api/2.0/mlflow/runs/log-metric"
    body = b'{"run_id": "r", "key": "loss", "value": 1.0, "timestamp": 1, "step": 0}'
    headers = sign(
        method="POST",
        url=url,
        body=body,
        region="eu-west-1",
        headers={"Content-Type": "application/json", "Host": API.split("//")[1]},
        credentials=CREDENTIALS,
    )
    good = {CREDENTIALS.access_key: Caller("secret", "arn:aws:iam::123456789012:user/alice")}
    assert isinstance(verify("POST", url, headers, body, good), Caller)
    wrong = {CREDENTIALS.access_key: Caller("other", "arn:aws:iam::123456789012:user/alice")}
    assert isinstance(verify("POST", url, headers, body, wrong), str)
    assert isinstance(verify("POST", url, headers, body + b" ", good), str)


def test_no_credentials_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ProxyError, match="no AWS credentials found"):
        frozen_credentials(boto3.Session(region_name="eu-west-1"))


def test_the_task_says_so_too(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "ui", "--url", API, "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "invoke ui: no AWS credentials found" in result.stderr


def test_the_task_refuses_to_listen_beyond_loopback(tmp_path):
    """`invoke ui --bind 0.0.0.0` with working credentials: refused before anything listens."""
    env = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": CREDENTIALS.access_key,
           "AWS_SECRET_ACCESS_KEY": "secret"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "ui", "--url", API, "--bind", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "invoke ui: --bind '0.0.0.0'" in result.stderr
    assert "loopback address only" in result.stderr


class _Provider(CredentialProvider):
    """A source in the SDK's chain whose credentials expire, as a role's or SSO's do."""

    METHOD = "test-expiring"

    def __init__(self, issue) -> None:
        super().__init__()
        self.issue = issue

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(self.issue(), self.issue, self.METHOD)


def test_each_request_is_signed_with_what_the_sdk_chain_holds_now():
    """frozen_credentials() over a session, as `invoke ui` wires it: once the chain's
    credentials are refreshed, the next request is signed with the new ones, and the team API
    stand-in verifies each signature. botocore refreshes credentials that expire within 10
    minutes on every read (its mandatory refresh window), so each request here sees new ones."""
    callers: dict[str, Caller] = {}
    issued: list[str] = []

    def issue() -> dict:
        n = len(issued) + 1
        key, secret = f"ASIAEXAMPLEROTATE{n:03d}", f"rotated-secret-{n}"
        callers[key] = Caller(secret, f"arn:aws:sts::123456789012:assumed-role/Team/session-{n}")
        issued.append(key)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {"access_key": key, "secret_key": secret, "token": f"token-{n}",
                "expiry_time": expiry.isoformat()}  # fmt: skip

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _Provider(issue))
    session = boto3.Session(botocore_session=core, region_name="eu-west-1")
    backend = LoopbackServer(lambda *_: (200, {"Content-Type": "text/plain"}, b"ok"))
    backend.serve_in_background()
    gateway = Gateway(
        target_port=backend.port, host="backend.internal", callers=callers, region="eu-west-1"
    )
    proxy = SigningProxy(
        to=target(gateway.url, region="eu-west-1"), credentials=frozen_credentials(session)
    )
    proxy.serve_in_background()
    try:
        for _ in range(3):
            response = requests.get(f"{proxy.url}/api/2.0/mlflow/experiments/search", timeout=30)
            assert response.status_code == 200, response.text
    finally:
        proxy.close()
        gateway.close()
        backend.close()
    sessions = [arn.rsplit("/", 1)[-1] for arn in gateway.forwarded]
    assert len(sessions) == 3 and len(set(sessions)) == 3, sessions  # a new key each time
    assert sessions[-1] == f"session-{len(issued)}"  # the newest one the chain had


class _Vanishing:
    """A session whose credentials disappear (a profile's cache deleted, an SSO logout)."""

    def __init__(self) -> None:
        self.credentials: Credentials | None = Credentials(CREDENTIALS.access_key, "secret")

    def get_credentials(self) -> Credentials | None:
        return self.credentials


def test_credentials_gone_after_start_are_a_clear_answer_not_a_crash():
    session = _Vanishing()
    proxy = SigningProxy(to=target(API), credentials=frozen_credentials(session))
    proxy.serve_in_background()
    try:
        session.credentials = None
        response = requests.get(f"{proxy.url}/api/2.0/mlflow/experiments/search", timeout=30)
    finally:
        proxy.close()
    assert response.status_code == 502
    assert response.text == "mlflow-platform: the AWS credentials are no longer available\n"


class _Upstream:
    """The team API stand-in: records what reaches it, answers 200."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.server = LoopbackServer(self.answer)
        self.server.serve_in_background()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes):
        self.seen.append((method, path, headers, body))
        return 200, {"Content-Type": "text/plain"}, b"the team's data"


@pytest.fixture
def upstream():
    served = _Upstream()
    yield served
    served.server.close()


def _proxy(upstream: _Upstream, bind: str = "127.0.0.1") -> SigningProxy:
    proxy = SigningProxy(
        to=target(upstream.server.url, region="eu-west-1"),
        credentials=lambda: CREDENTIALS,
        bind=bind,
    )
    proxy.serve_in_background()
    return proxy


def _raw(proxy: SigningProxy, host: list[str], headers: dict[str, str], method: str = "GET"):
    """One request with exactly these Host headers (none, one, two), as a page's could be."""
    address = proxy.url.split("//")[1].rsplit(":", 1)[0].strip("[]")
    connection = http.client.HTTPConnection(address, proxy.port, timeout=30)
    try:
        connection.putrequest(method, "/api/2.0/mlflow/experiments/search", skip_host=True)
        for value in host:
            connection.putheader("Host", value)
        body = b'{"max_results": 1}' if method == "POST" else b""
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "host",
    [
        ["rebind.attacker.example:{port}"],  # a page whose DNS name now points at 127.0.0.1
        ["127.0.0.1.attacker.example:{port}"],
        ["rebind.attacker.example"],
        ["127.0.0.1:{other}"],  # another port: what a page of another local server would send
        ["localhost"],
        [],  # HTTP/1.0 style, no Host at all
        ["127.0.0.1:{port}", "rebind.attacker.example:{port}"],
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_rebound_dns_name_is_refused_and_nothing_is_forwarded(upstream, host, method):
    """DNS rebinding: to the browser the page's own origin, its GETs carry no Origin, so only
    Host tells it apart. 421 Misdirected Request (RFC 9110, 15.5.20), and the team API never
    sees the request, so no signature is made for it."""
    proxy = _proxy(upstream)
    try:
        other = proxy.port + 1 if proxy.port < 65535 else proxy.port - 1
        names = [value.format(port=proxy.port, other=other) for value in host]
        status, text = _raw(proxy, names, {}, method)
    finally:
        proxy.close()
    assert status == 421, text
    assert text.startswith("mlflow-platform: Host ") and "is not this proxy's address" in text
    if len(names) == 1:
        assert repr(names[0]) in text
    assert f"127.0.0.1:{proxy.port}" in text  # where it does answer
    assert upstream.seen == []


@pytest.mark.parametrize(
    "origin",
    [
        "http://rebind.attacker.example:{port}",
        "https://attacker.example",
        "null",  # a sandboxed frame, a file:// page, a redirect across origins
        "https://127.0.0.1:{port}",
        "http://127.0.0.1:{other}",
        "http://localhost",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_another_sites_page_is_refused(upstream, origin, method):
    """A page of another origin that reaches the proxy by its real name (a form post, a fetch
    in no-cors mode, a request CORS does not preflight) is refused: its Origin is not the
    proxy's own."""
    proxy = _proxy(upstream)
    try:
        other = proxy.port + 1 if proxy.port < 65535 else proxy.port - 1
        sent = origin.format(port=proxy.port, other=other)
        status, text = _raw(proxy, [f"127.0.0.1:{proxy.port}"], {"Origin": sent}, method)
    finally:
        proxy.close()
    assert status == 403, text
    assert text == (
        f"mlflow-platform: Origin {sent!r} is not this proxy's own; only its own pages "
        f"(http://127.0.0.1:{proxy.port}) may send requests through it\n"
    )
    assert upstream.seen == []


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST"])
@pytest.mark.parametrize("with_origin", [False, True])
def test_the_proxys_own_pages_are_answered(upstream, name, with_origin):
    """What a browser opened at the proxy's printed URL (or at localhost) sends: forwarded,
    signed, with Host replaced by the team API's."""
    proxy = _proxy(upstream)
    try:
        own = f"{name}:{proxy.port}"
        headers = {"Origin": f"http://{own}"} if with_origin else {}
        status, text = _raw(proxy, [own], headers, "POST")
    finally:
        proxy.close()
    assert (status, text) == (200, "the team's data")
    [(method, path, forwarded, body)] = upstream.seen
    assert (method, path, body) == ("POST", "/api/2.0/mlflow/experiments/search",
                                    b'{"max_results": 1}')  # fmt: skip
    assert forwarded["Host"] == f"127.0.0.1:{upstream.server.port}"
    assert forwarded["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE")


def test_another_loopback_address_it_listens_on_is_its_own_name_too(upstream):
    proxy = _proxy(upstream, bind="127.0.0.2")
    try:
        assert _raw(proxy, [f"127.0.0.2:{proxy.port}"], {})[0] == 200
        assert _raw(proxy, [f"127.0.0.1:{proxy.port}"], {})[0] == 200
        assert _raw(proxy, [f"127.0.0.3:{proxy.port}"], {})[0] == 421
        origin = {"Origin": f"http://127.0.0.3:{proxy.port}"}
        assert _raw(proxy, [f"127.0.0.2:{proxy.port}"], origin)[0] == 403
    finally:
        proxy.close()
    assert len(upstream.seen) == 2


def test_on_port_80_a_browser_leaves_the_port_out():
    assert {"localhost", "127.0.0.1", "[::1]", "localhost:80"} <= local_names("127.0.0.1", 80)
    assert "localhost" not in local_names("127.0.0.1", 8765)
    assert "[::1]:8765" in local_names("::1", 8765) and "127.0.0.1:8765" in local_names("::1", 8765)


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_browser_on_a_rebound_name_or_another_sites_page_gets_nothing(upstream, tmp_path):
    """Real Chromium. Told that rebind.attacker.example is 127.0.0.1 (--host-resolver-rules:
    what a rebinding DNS answer achieves), it loads the proxy under that name and gets 421; a
    page of another origin posting to the proxy's real address is refused 403; the team API
    sees neither. The proxy's own address still works."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    attacker = LoopbackServer(lambda *_: (200, {"Content-Type": "text/html"}, _ATTACK_PAGE))
    attacker.serve_in_background()
    seen: list[str] = []
    proxy = SigningProxy(to=target(upstream.server.url, region="eu-west-1"),
                         credentials=lambda: CREDENTIALS, log=seen.append)  # fmt: skip
    proxy.serve_in_background()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 f"--user-data-dir={tmp_path / 'profile'}",
                 "--host-resolver-rules=MAP rebind.attacker.example 127.0.0.1"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(f"http://rebind.attacker.example:{proxy.port}/api/2.0/mlflow/experiments/search")
        rebound = driver.find_element("tag name", "body").text
        driver.get(f"http://localhost:{attacker.port}/#{proxy.port}")
        for _ in range(100):
            if driver.title in ("sent", "failed"):
                break
            time.sleep(0.1)
        posted = driver.title
        before_own = list(upstream.seen)
        refused = list(seen)
        driver.get(f"{proxy.url}/api/2.0/mlflow/experiments/search")
        own = driver.find_element("tag name", "body").text
    finally:
        driver.quit()
        proxy.close()
        attacker.close()
    assert "is not this proxy's address" in rebound, rebound
    assert posted == "sent"
    assert own == "the team's data"
    # Chromium retries a 421 once and asks for the favicon: every one of them refused.
    assert "GET /api/2.0/mlflow/experiments/search -> 421" in refused, refused
    assert "POST /api/2.0/mlflow/experiments/search -> 403" in refused, refused
    assert all(line.endswith(("-> 421", "-> 403")) for line in refused), refused
    assert before_own == []
    assert ("GET", "/api/2.0/mlflow/experiments/search") in [
        (method, path) for method, path, _, _ in upstream.seen
    ]


# A page of another site: posts to the proxy's real address in no-cors mode (no preflight).
_ATTACK_PAGE = b"""<!doctype html><title>waiting</title><script>
fetch("http://127.0.0.1:" + location.hash.slice(1) + "/api/2.0/mlflow/experiments/search",
      {method: "POST", mode: "no-cors", body: "{}", headers: {"Content-Type": "text/plain"}})
  .then(() => { document.title = "sent"; }, () => { document.title = "failed"; });
</script>"""
