"""With a certificate, the team-user function calls the load balancer at
`https://<TlsServerName>` and verifies the certificate by that name, as the template sets it up
(TRACKING_URL, the private hosted zone, the server's allowed hosts: test_cloud_hops.py and
test_environment_service.py check those).

Here the function's deployed code runs against the local platform behind a TLS terminator on
loopback that stands in for the HTTPS listener, with a certificate from a test CA that the
function trusts through SSL_CERT_FILE (which Python's default context reads, as Lambda's runtime
trusts the public CAs that sign ACM certificates). The name resolves to the terminator, as the
private hosted zone resolves it to the load balancer in the VPC.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME, REGION, LocalPlatform
from tracking_server import settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAME = "mlflow.internal.example.com"


def _certificate(subject: str, issuer_key, issuer_name, *, ca: bool, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )  # fmt: skip
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _pem(item) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TlsTerminator:
    """HTTPS on loopback, relayed as plain HTTP to the server: what the listener does."""

    def __init__(self, context: ssl.SSLContext, backend_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.backend_port = backend_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()  # the caller refused the certificate
            return
        backend = socket.create_connection(("127.0.0.1", self.backend_port))

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (source, sink):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(backend, secure), daemon=True).start()
        pump(secure, backend)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA (trusted by the function) and server certificates signed by it."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca = _certificate("Test CA", None, None, ca=True)
    (directory / "ca.pem").write_bytes(_pem(ca))
    contexts = {}
    for name in (NAME, "other.example.com"):
        key, cert = _certificate(name, ca_key, ca.subject, ca=False)
        (directory / f"{name}.pem").write_bytes(_pem(cert) + _pem(key))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(directory / f"{name}.pem")
        contexts[name] = context
    return directory / "ca.pem", contexts


@pytest.fixture(scope="module")
def server():
    """The local platform whose server accepts the certificate's name as Host, as the
    template's ALLOWED_HOSTS does when the environment has a certificate."""
    state = Path(tempfile.mkdtemp(prefix="mlflow-tls-"))
    state.chmod(0o755)  # searchable by the postgres user
    local = LocalPlatform(state, progress=lambda _: None)
    hosts = settings.cloud_hosts(
        load_balancer_dns_name=LOAD_BALANCER_DNS_NAME, region=REGION, url_suffix="amazonaws.com"
    )
    try:
        yield local.up(server_env={settings.ALLOWED_HOSTS: f"{hosts},{NAME}"})
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def _behind(monkeypatch, terminator: TlsTerminator) -> None:
    """NAME:443 resolves to the terminator, as the private hosted zone resolves it."""
    real = socket.getaddrinfo

    def resolve(host, service, *args, **kwargs):
        if host == NAME:
            assert service in (443, "443", "https"), service
            return real("127.0.0.1", terminator.port, *args, **kwargs)
        return real(host, service, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.mark.parametrize(("presented", "verified"), [(NAME, True), ("other.example.com", False)])
def test_the_team_user_function_verifies_the_listeners_certificate_by_its_name(
    server, pki, monkeypatch, presented, verified
):
    from function_harness import Stack, invoke

    ca, contexts = pki
    port = int(server["tracking_uri"].rsplit(":", 1)[1])
    terminator = TlsTerminator(contexts[presented], port)
    _behind(monkeypatch, terminator)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    admin = {"username": server["username"], "password": server["password"]}
    team = {"username": "team/tls", "password": "t" * 20}
    try:
        answer = invoke(
            monkeypatch,
            tracking_url=f"https://{NAME}",
            admin=admin,
            team_secret=team,
            request_type="Create",
            stack=Stack(),
            team="tls",
        )
    finally:
        terminator.close()
    assert answer is not None
    if verified:
        assert (answer["Status"], answer["Reason"]) == ("SUCCESS", "created"), answer
    else:
        assert answer["Status"] == "FAILED"
        assert "CERTIFICATE_VERIFY_FAILED" in answer["Reason"] or "hostname" in answer["Reason"]
