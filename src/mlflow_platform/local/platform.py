"""`invoke local`: the platform on this machine, for development and tests.

The tracking server starts through the same entrypoint, with the same settings and the same auth
as in the cloud. Beside it: a real PostgreSQL (Debian's `postgresql` package, its own data
directory, loopback only) and an S3-compatible endpoint with the bucket created: moto's S3 in
a process of ours (`s3_endpoint.py`) that serves only requests signed with credentials `up`
generated (the server's; presigned URLs it issues carry their signature) and keeps the objects
under the state directory, so artifacts and models outlive `down` as the runs in PostgreSQL
do. `--embedded` swaps both for a SQLite file and a local artifact directory.

PostgreSQL is set up as RDS sets up the cloud's: a master user that may create roles and
databases but is no superuser, from which the database set-up (`entrypoint setup-database`, run
before the server, as the task's init container is) makes the server's own role; TLS on,
with a server certificate from a CA made for this state directory (`tls.py`), which the
server verifies (sslmode=verify-full); every login needs its password (SCRAM, for the socket
too; plain TCP is refused); and its socket directory is private to the user that runs it.

State lives in one directory (default `.local/` in the repository): data (PostgreSQL's, and
S3's objects in `s3/`, mode 700), logs, the ports and process ids, and the generated
credentials (mode 600), kept across `down` and `up` so that the database's users stay valid
and every logged artifact is still there. `up` starts whatever is not running; `down` stops
exactly what `up` started.

A process of ours is one whose standard output is its component's log in the state directory
(every process `up` spawns and all they start inherit it), with the rest of the session `up`
started it in; the process ids come from /proc (Linux). The recorded pid alone is not enough:
when the server's parent (`mlflow server`) dies, its uvicorn process lives on, still serving the
port, so `down` would leave it and `up` would start a second server beside it. `down` stops
every process of a component, orphaned or not, and `up` stops such a stale one before it
starts the component again; a port held by a process not ours is refused, naming the process.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow_platform import client_settings
from mlflow_platform.errors import PlatformError
from mlflow_platform.local import s3_endpoint, team_api
from mlflow_platform.local import tls as local_tls
from tracking_server import settings as names

BUCKET = "mlflow-artifacts"
DATABASE = "mlflow"
DB_USER = "mlflow"  # the master user, as RDS's MasterUsername
SUPERUSER = "postgres"
ADMIN = "admin"
REGION = "us-east-1"
COMPONENTS = ("postgres", "s3", "server", "team-api")
MASTER_SETTINGS = (names.DB_MASTER_USERNAME, names.DB_MASTER_PASSWORD)
LOAD_BALANCER_DNS_NAME = f"internal-mlflow-local-0000000000.{REGION}.elb.amazonaws.com"
"""Stands in for the internal load balancer's name: the server accepts the Host headers it
accepts in the cloud, so a client can send them as the load balancer and team APIs do."""
# The team a local platform makes, as a team stack would: its MLflow user, and in iam mode the
# role whose signed requests act as it (the local team API issues credentials for it) and an
# administrator role.
LOCAL_TEAM = "local"
LOCAL_ACCOUNT = "000000000000"
LOCAL_TEAM_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/mlflow-local-team"
LOCAL_ADMIN_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/mlflow-local-admin"
LOCAL_TEAM_STACK = f"arn:aws:cloudformation:{REGION}:{LOCAL_ACCOUNT}:stack/mlflow-local-team/local"


class LocalPlatformError(PlatformError):
    pass


# Every login needs its password; TCP only over TLS (as rds.force_ssl=1 in the cloud).
PG_HBA = """\
# Written by `invoke local`: passwords only (SCRAM), for the socket too; TCP only over TLS.
local     all all                scram-sha-256
hostssl   all all 127.0.0.1/32   scram-sha-256
hostnossl all all 0.0.0.0/0      reject
"""


@dataclass(frozen=True, kw_only=True)
class Credentials:
    admin_password: str
    db_password: str  # the master user's: the RDS-managed secret in the cloud
    secret_key: str
    server_db_password: str  # the server's own role's: its own secret in the cloud
    postgres_password: str  # the local superuser's, for the platform's own set-up and tests
    gateway_kek: str  # encrypts the AI gateway's provider keys (a generated secret in the cloud)
    team_password: str  # the local team's MLflow user (basic mode), as a team secret holds it
    team_access_key: str  # iam mode: the credentials the local team API accepts for the team
    team_secret_key: str
    admin_access_key: str  # ... and for an administrator (in ADMIN_PRINCIPALS)
    admin_secret_key: str
    s3_access_key: str  # the only credentials the local S3 endpoint accepts (the server's,
    s3_secret_key: str  # as its task role's in the cloud)

    @staticmethod
    def generate(**known: str) -> Credentials:
        fresh = {
            "admin_password": secrets.token_urlsafe(18),
            "db_password": secrets.token_urlsafe(18),
            "secret_key": secrets.token_urlsafe(48),
            "server_db_password": secrets.token_urlsafe(24),
            "postgres_password": secrets.token_urlsafe(24),
            "gateway_kek": secrets.token_urlsafe(48),
            "team_password": secrets.token_urlsafe(18),
            "team_access_key": _access_key_id(),
            "team_secret_key": secrets.token_urlsafe(30),
            "admin_access_key": _access_key_id(),
            "admin_secret_key": secrets.token_urlsafe(30),
            "s3_access_key": _access_key_id(),
            "s3_secret_key": secrets.token_urlsafe(30),
        }
        return Credentials(**{**fresh, **known})


def _access_key_id() -> str:
    """Shaped as IAM's: AKIA and 16 characters of A-Z and 2-7."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def _session(role: str) -> str:
    """`$context.identity.userArn` for a session of `role`, as a SageMaker job's is."""
    return f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _live_processes() -> dict[int, int]:
    """Every live process (zombies left out) and its session id, from /proc."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = int(fields[3])
    return found


def _writes_to(pid: int, path: str) -> bool:
    """Whether the process's standard output is the file at `path` (even if since deleted)."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/1")
    except OSError:  # ended, or not ours to look at
        return False
    return target in (path, f"{path} (deleted)")


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({' '.join(argv).strip()[:120]})"


def _port_holders(port: int) -> list[int]:
    """The processes listening on a TCP port, as far as /proc lets us see them."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
        except OSError:
            continue
    holders = []
    for pid in _live_processes():
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    holders.append(pid)
                    break
            except OSError:
                continue
    return holders


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}{names.HEALTH_PATH}", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise LocalPlatformError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: install Debian's "
            "postgresql package (apt-get install postgresql), or use `invoke local up --embedded`"
        )
    return Path(found[-1]).parent


class LocalPlatform:
    def __init__(self, state_dir: Path, *, progress: Callable[[str], None] = print) -> None:
        self.dir = state_dir
        self.progress = progress
        self.state_file = state_dir / "state.json"

    # -- state ---------------------------------------------------------------------------
    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=1)

    def _credentials(self) -> Credentials:
        """Generated once and kept; a field that an older state directory lacks is added."""
        path = self.dir / "credentials.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        credentials = Credentials.generate(**known)
        if credentials.__dict__ != known:
            self._write_credentials(credentials)
        return credentials

    def _write_credentials(self, credentials: Credentials) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "credentials.json"
        partial = self.dir / ".credentials.json.partial"
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(credentials.__dict__, f)
        os.replace(partial, path)

    # -- public --------------------------------------------------------------------------
    def up(self, *, embedded: bool = False, server_env: dict[str, str] | None = None) -> dict:
        """Start whatever is not running; returns the connection details."""
        state = self._state()
        if state.get("embedded", embedded) != embedded:
            if any(c["running"] for c in self.status().values()):
                running = "embedded" if state["embedded"] else "with PostgreSQL"
                raise LocalPlatformError(
                    f"the local platform in {self.dir} runs {running}; `invoke local down` first"
                )
            state = {}
        state["embedded"] = embedded
        credentials = self._credentials()
        if not embedded:
            self._ensure_postgres(state, credentials)
            if self._ensure_s3(state, credentials) and self._running("server", state):
                self.progress("restarting the tracking server for the new S3 endpoint")
                self._stop("server", state["server"].get("pid"))
        extra = dict(server_env or {})
        auth_mode = extra.get(names.AUTH_MODE, "basic")
        if auth_mode == "iam":
            admins = [p for p in extra.get(names.ADMIN_PRINCIPALS, "").split(",") if p]
            extra[names.ADMIN_PRINCIPALS] = ",".join([*admins, LOCAL_ADMIN_ROLE])
        self._ensure_server(state, credentials, extra)
        if embedded:  # no S3, so no presigned transfers: nothing that behaves as the cloud's
            self._stop("team-api", state.pop("team-api", {}).get("pid"))
            self._save(state)
        else:
            self._ensure_local_team(state, credentials, auth_mode)
            self._ensure_team_api(state, credentials, auth_mode)
        return self.details()

    def details(self) -> dict:
        state = self._state()
        credentials = self._credentials()
        server = state.get("server", {})
        return {
            "tracking_uri": f"http://127.0.0.1:{server.get('port')}",
            "username": ADMIN,
            "password": credentials.admin_password,
            "embedded": state.get("embedded", False),
            "s3_endpoint": f"http://127.0.0.1:{state['s3']['port']}" if "s3" in state else None,
            "s3_credentials": self._s3_credentials(credentials) if "s3" in state else None,
            **self._team_details(state, credentials),
            "bucket": BUCKET if "s3" in state else None,
        }

    @staticmethod
    def _s3_credentials(credentials: Credentials) -> dict[str, str]:
        """What a boto3 client of the local S3 endpoint passes (the server's credentials)."""
        return {
            "aws_access_key_id": credentials.s3_access_key,
            "aws_secret_access_key": credentials.s3_secret_key,
        }

    def database(self) -> names.Database | None:
        """The tracking database as the server reaches it: its own role, over verified TLS
        (None when embedded)."""
        state = self._state()
        if "postgres" not in state:
            return None
        credentials = self._credentials()
        return names.Database(
            host="127.0.0.1", port=state["postgres"]["port"], name=DATABASE,
            username=names.SERVER_DB_ROLE, password=credentials.server_db_password,
            master_username=DB_USER, master_password=credentials.db_password,
            ssl_root_cert=str(self.ca_file),
        )  # fmt: skip

    def database_uri(self) -> str | None:
        """The tracking database as MLflow's own store reaches it (None when embedded)."""
        database = self.database()
        return database.uri() if database else None

    def superuser(self, database: str = "postgres"):  # -> psycopg2 connection
        """A superuser connection over the private socket, for set-up and tests (autocommit)."""
        import psycopg2

        connection = psycopg2.connect(
            host=str(self._pg_socket), port=self._state()["postgres"]["port"], user=SUPERUSER,
            password=self._credentials().postgres_password, dbname=database,
        )  # fmt: skip
        connection.autocommit = True
        return connection

    def rotate_master_password(self) -> None:
        """What an RDS rotation of the master secret does: a new password for the master user,
        then the secret (here credentials.json) holds it. Nothing is restarted."""
        from psycopg2 import sql
        from psycopg2.extensions import encrypt_password

        new = Credentials.generate(
            **{**self._credentials().__dict__, "db_password": secrets.token_urlsafe(18)}
        )
        with contextlib.closing(self.superuser()) as connection, connection.cursor() as cursor:
            verifier = encrypt_password(new.db_password, DB_USER, connection, "scram-sha-256")
            cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(DB_USER)),
                           (verifier,))  # fmt: skip
        self._write_credentials(new)

    def status(self) -> dict[str, dict]:
        state = self._state()
        report = {}
        for name in COMPONENTS:
            if name not in state:
                continue
            component = state[name]
            running = (
                self._postgres_running(state) if name == "postgres" else self._running(name, state)
            )
            report[name] = {
                "running": running,
                "port": component.get("port"),
                "pid": component.get("pid"),
            }
        return report

    def down(self, components: tuple[str, ...] = COMPONENTS) -> list[str]:
        """Stop what `up` started, server first; returns what was stopped.

        Ports stay recorded, so the next `up` brings each part back where the others expect it.
        """
        state = self._state()
        stopped = []
        for name in reversed(COMPONENTS):
            if name not in components or name not in state:
                continue
            if name == "postgres":
                if self._postgres_running(state):
                    self._pg("pg_ctl", "-D", str(self._pg_data), "-m", "fast", "-w", "stop")
                    stopped.append(name)
            elif self._stop(name, state[name].get("pid")):
                stopped.append(name)
            state[name].pop("pid", None)
            self._save(state)
        return stopped

    # -- postgres ------------------------------------------------------------------------
    @property
    def _pg_data(self) -> Path:
        return self.dir / "postgres" / "data"

    @property
    def _pg_socket(self) -> Path:
        """Private to the user that runs PostgreSQL (mode 0700)."""
        return self.dir / "postgres" / "socket"

    @property
    def ca_file(self) -> Path:
        """The CA that signed PostgreSQL's certificate: the server's sslrootcert."""
        return self.dir / "postgres-ca.pem"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(postgres_bin() / tool), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check)

    def _postgres_running(self, state: dict) -> bool:
        if not self._pg_data.exists():
            return False
        return self._pg("pg_ctl", "-D", str(self._pg_data), "status", check=False).returncode == 0

    def _ensure_postgres(self, state: dict, credentials: Credentials) -> None:
        if "postgres" in state and self._postgres_running(state):
            return
        root = self.dir / "postgres"
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            reachable = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(root)])
            if reachable.returncode != 0:
                raise LocalPlatformError(
                    f"the postgres user cannot reach {root}: every directory above it must be "
                    "searchable by others (chmod o+x), or choose another state directory"
                )
        fresh = not (self._pg_data / "PG_VERSION").exists()
        if fresh:
            self.progress("initializing PostgreSQL data directory")
            self._initdb(root, credentials)
        hba = self._pg_data / "pg_hba.conf"
        if hba.read_text() != PG_HBA:
            raise LocalPlatformError(
                f"{hba} is not the platform's (an older `invoke local` initialised {self.dir} "
                "with trust authentication): `invoke local down`, remove that directory, and "
                "`invoke local up` again"
            )
        tls = root / "tls"
        if local_tls.needs_renewal(tls / "server.crt") or not self.ca_file.exists():
            self.progress("issuing PostgreSQL's TLS certificate from a new local CA")
            local_tls.issue(ca_file=self.ca_file, cert_file=tls / "server.crt",
                            key_file=tls / "server.key")  # fmt: skip
        self._private_to_postgres(tls, self._pg_socket)
        port = state.get("postgres", {}).get("port") or _free_port()
        self.progress(f"starting PostgreSQL on 127.0.0.1:{port}")
        options = (
            f"-p {port} -k {self._pg_socket} -c listen_addresses=127.0.0.1 -c ssl=on "
            f"-c ssl_cert_file={tls / 'server.crt'} -c ssl_key_file={tls / 'server.key'} "
            "-c ssl_min_protocol_version=TLSv1.2 -c password_encryption=scram-sha-256"
        )
        started = self._pg(
            "pg_ctl", "-D", str(self._pg_data), "-l", str(root / "postgres.log"), "-w",
            "-o", options, "start", check=False,
        )  # fmt: skip
        if started.returncode != 0:
            raise LocalPlatformError(
                f"PostgreSQL did not start: {started.stderr.strip() or started.stdout.strip()} "
                f"(log: {root / 'postgres.log'})"
            )
        state["postgres"] = {"port": port}
        self._save(state)
        if fresh:
            self._create_master(credentials)

    def _initdb(self, root: Path, credentials: Credentials) -> None:
        """Password authentication from the start: initdb takes the superuser's password from a
        file (never the command line) and the platform's pg_hba.conf replaces initdb's."""
        password_file = root / "initdb-password"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(credentials.postgres_password + "\n")
        try:
            if os.geteuid() == 0:
                shutil.chown(password_file, "postgres", "postgres")
            self._pg("initdb", "-D", str(self._pg_data), "-U", SUPERUSER,
                     "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8")  # fmt: skip
        finally:
            password_file.unlink(missing_ok=True)
        (self._pg_data / "pg_hba.conf").write_text(PG_HBA)

    def _private_to_postgres(self, *directories: Path) -> None:
        """Owned by the user that runs PostgreSQL, mode 0700 (the key file inside is 0600)."""
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
            if os.geteuid() == 0:
                for path in (directory, *directory.iterdir()):
                    shutil.chown(path, "postgres", "postgres")

    def _create_master(self, credentials: Credentials) -> None:
        """The master user as RDS makes it: creates roles and databases, is no superuser."""
        from psycopg2 import sql
        from psycopg2.extensions import encrypt_password

        with contextlib.closing(self.superuser()) as connection, connection.cursor() as cursor:
            verifier = encrypt_password(credentials.db_password, DB_USER, connection,
                                        "scram-sha-256")  # fmt: skip
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD %s")
                           .format(sql.Identifier(DB_USER)), (verifier,))  # fmt: skip
            cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(DB_USER)))  # fmt: skip

    # -- s3 ------------------------------------------------------------------------------
    S3_ENDPOINT = "moto, signed requests only, objects on disk"
    """What the S3 component is: an `up` finding an older one running (in-memory moto, open
    to anyone) replaces it, and the server with it (its credentials changed)."""

    def _ensure_s3(self, state: dict, credentials: Credentials) -> bool:
        """The S3 endpoint (s3_endpoint.py) with the bucket; returns whether an S3 endpoint of
        another kind was replaced."""
        current = state.get("s3", {})
        replaced = "s3" in state and current.get("kind") != self.S3_ENDPOINT
        if not replaced and self._running("s3", state):
            return False
        port = current.get("port") or _free_port()
        self._clear_the_way("s3", state, port, "the S3 endpoint")
        config = s3_endpoint.S3EndpointConfig(
            port=port, data_dir=str(self.dir / "s3"), buckets=[BUCKET], region=REGION,
            credentials={credentials.s3_access_key: credentials.s3_secret_key},
        )  # fmt: skip
        path = self.dir / "s3.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(config.dump(), out)
        self.progress(f"starting S3 endpoint (moto, signed requests only) on 127.0.0.1:{port}")
        process = self._spawn([sys.executable, "-m", "mlflow_platform.local.s3_endpoint",
                               str(path)], log="s3.log", env=os.environ.copy())  # fmt: skip
        state["s3"] = {"port": port, "pid": process.pid, "kind": self.S3_ENDPOINT}
        self._save(state)
        self._wait(lambda: _port_open(port), "the S3 endpoint", process.pid, "s3.log", 120)
        return replaced

    # -- tracking server -----------------------------------------------------------------
    def server_environment(self, state: dict, credentials: Credentials) -> dict[str, str]:
        """The settings the cloud passes to the container, with local values."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_PLATFORM_")}
        env.update({
            names.AUTH_MODE: "basic",
            names.SERVER_PORT: str(state["server"]["port"]),
            names.BIND_ADDRESS: "127.0.0.1",
            names.ADMIN_USERNAME: ADMIN,
            names.ADMIN_PASSWORD: credentials.admin_password,
            names.SECRET_KEY: credentials.secret_key,
            names.GATEWAY_KEK: credentials.gateway_kek,
            names.ALLOWED_HOSTS: names.cloud_hosts(
                load_balancer_dns_name=LOAD_BALANCER_DNS_NAME, region=REGION,
                url_suffix="amazonaws.com",
            ),
        })  # fmt: skip
        if state["embedded"]:
            data = self.dir / "embedded"
            data.mkdir(parents=True, exist_ok=True)
            env[names.SQLITE_PATH] = str(data / "mlflow.db")
            env[names.ARTIFACTS_DESTINATION] = str(data / "artifacts")
        else:
            env.update({
                names.DB_HOST: "127.0.0.1",
                names.DB_PORT: str(state["postgres"]["port"]),
                names.DB_NAME: DATABASE,
                names.DB_USERNAME: names.SERVER_DB_ROLE,
                names.DB_PASSWORD: credentials.server_db_password,
                # For the database set-up only: _ensure_server keeps them from the server.
                names.DB_MASTER_USERNAME: DB_USER,
                names.DB_MASTER_PASSWORD: credentials.db_password,
                names.DB_SSL_ROOT_CERT: str(self.ca_file),
                names.ARTIFACTS_DESTINATION: f"s3://{BUCKET}/artifacts",
                "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{state['s3']['port']}",
                "AWS_ACCESS_KEY_ID": credentials.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": credentials.s3_secret_key,
                "AWS_DEFAULT_REGION": REGION,
            })  # fmt: skip
        return env

    def _ensure_server(self, state: dict, credentials: Credentials, extra: dict[str, str]) -> None:
        server = state.get("server", {})
        auth_mode = extra.get(names.AUTH_MODE, "basic")
        running = self._running("server", state)
        if running and server.get("auth_mode", "basic") != auth_mode:
            self.progress(f"restarting the tracking server in {auth_mode} mode")
            self._stop("server", server.get("pid"))
        elif running and _healthy(f"http://127.0.0.1:{server.get('port')}"):
            return
        port = state.get("server", {}).get("port") or _free_port()
        self._clear_the_way("server", state, port, "the tracking server")
        state["server"] = {"port": port, "auth_mode": auth_mode}
        self._save(state)
        # As the task runs it: the init container, alone with the master user, sets the
        # server's role up and exits; then the server starts without the master secret.
        setup_env = {**self.server_environment(state, credentials), **extra}
        env = {k: v for k, v in setup_env.items() if k not in MASTER_SETTINGS}
        if not state["embedded"]:
            self.progress("setting up the server's database role")
            setup = self._spawn(
                [sys.executable, "-m", "tracking_server.entrypoint", names.SETUP_DATABASE],
                log="server.log",
                env=setup_env,
            )
            if setup.wait(timeout=300) != 0:
                raise LocalPlatformError(
                    f"the database set-up exited with {setup.returncode}; see "
                    f"{self.dir / 'server.log'}"
                )
        self.progress(f"starting the tracking server on 127.0.0.1:{port}")
        process = self._spawn([sys.executable, "-m", "tracking_server.entrypoint"],
                              log="server.log", env=env)  # fmt: skip
        state["server"]["pid"] = process.pid
        self._save(state)
        url = f"http://127.0.0.1:{port}"
        self._wait(lambda: _healthy(url), "the tracking server", process.pid, "server.log", 180)

    # -- the local team and its team API ------------------------------------------------
    def _ensure_local_team(self, state: dict, credentials: Credentials, auth_mode: str) -> None:
        """The team user a team stack would make (the team-user function's call), idempotent."""
        body = {"team": LOCAL_TEAM, "password": credentials.team_password,
                "owner": LOCAL_TEAM_STACK}  # fmt: skip
        if auth_mode == "iam":
            body["principal"] = LOCAL_TEAM_ROLE
        request = urllib.request.Request(
            f"http://127.0.0.1:{state['server']['port']}/api/2.0/mlflow-platform/team-users/ensure",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Host": LOAD_BALANCER_DNS_NAME,
                "Authorization": "Basic "
                + base64.b64encode(f"{ADMIN}:{credentials.admin_password}".encode()).decode(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
        except urllib.error.HTTPError as error:
            raise LocalPlatformError(
                f"making the local team's MLflow user failed: HTTP {error.code} "
                f"{error.read()[:300].decode(errors='replace')}"
            ) from None

    def _ensure_team_api(self, state: dict, credentials: Credentials, auth_mode: str) -> None:
        """The team API stand-in (team_api.py) in front of the server, in the server's mode."""
        wanted = {"auth_mode": auth_mode, "target": state["server"]["port"]}
        current = state.get("team-api", {})
        if self._running("team-api", state) and current.get("settings") == wanted:
            return
        port = current.get("port") or _free_port()
        self._clear_the_way("team-api", state, port, "the team API")
        callers = {}
        if auth_mode == "iam":
            callers = {
                credentials.team_access_key: team_api.Caller(
                    credentials.team_secret_key, _session(LOCAL_TEAM_ROLE)
                ),
                credentials.admin_access_key: team_api.Caller(
                    credentials.admin_secret_key, _session(LOCAL_ADMIN_ROLE)
                ),
            }
        config = team_api.TeamApiConfig(
            auth_mode=auth_mode, target_port=state["server"]["port"],
            host=LOAD_BALANCER_DNS_NAME, callers=callers, port=port,
        )  # fmt: skip
        path = self.dir / "team-api.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(config.dump(), out)
        self.progress(f"starting the team API ({auth_mode}) on 127.0.0.1:{port}")
        process = self._spawn([sys.executable, "-m", "mlflow_platform.local.team_api", str(path)],
                              log="team-api.log", env=os.environ.copy())  # fmt: skip
        state["team-api"] = {"port": port, "pid": process.pid, "settings": wanted}
        self._save(state)
        self._wait(lambda: _port_open(port), "the team API", process.pid, "team-api.log", 30)

    def _team_details(self, state: dict, credentials: Credentials) -> dict:
        """The team API's address, and what a client of the local team sets to use it."""
        team = state.get("team-api")
        if not team:
            return {}
        url = f"http://127.0.0.1:{team['port']}"
        auth_mode = team["settings"]["auth_mode"]
        environment = client_settings.client_environment(tracking_uri=url, auth_mode=auth_mode)
        if auth_mode == "iam":
            environment.update({
                "AWS_ACCESS_KEY_ID": credentials.team_access_key,
                "AWS_SECRET_ACCESS_KEY": credentials.team_secret_key,
                "AWS_REGION": REGION,
            })  # fmt: skip
        else:
            environment.update({
                "MLFLOW_TRACKING_USERNAME": f"{names.TEAM_USER_PREFIX}{LOCAL_TEAM}",
                "MLFLOW_TRACKING_PASSWORD": credentials.team_password,
            })  # fmt: skip
        return {"team_api_uri": url, "auth_mode": auth_mode, "client_environment": environment}

    # -- processes -----------------------------------------------------------------------
    def _spawn(self, argv: list[str], *, log: str, env: dict[str, str]) -> subprocess.Popen:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / log, "ab") as out:
            return subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def _wait(
        self, ready: Callable[[], bool], what: str, pid: int, log: str, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while not ready():
            if not _alive(pid):
                tail = (self.dir / log).read_text(errors="replace").splitlines()[-15:]
                raise LocalPlatformError(
                    f"{what} exited; last lines of {self.dir / log}:\n" + "\n".join(tail)
                )
            if time.monotonic() > deadline:
                raise LocalPlatformError(
                    f"{what} not ready after {timeout:.0f}s; see {self.dir / log}"
                )
            if time.monotonic() - last_report > 10:
                self.progress(f"still waiting for {what}")
                last_report = time.monotonic()
            time.sleep(0.2)

    def _processes(self, name: str, pid: int | None) -> set[int]:
        """The live processes of a component: those writing to its log, and the rest of the
        session `up` started as `pid` if one of them does (so not a reused pid's)."""
        log = os.path.realpath(self.dir / f"{name}.log")
        sessions = _live_processes()
        ours = {p for p in sessions if _writes_to(p, log)}
        if pid and any(sessions[p] == pid for p in ours):
            ours |= {p for p, session in sessions.items() if session == pid}
        return ours

    def _running(self, name: str, state: dict) -> bool:
        """The process `up` started for the component is alive (not merely something left)."""
        pid = state.get(name, {}).get("pid")
        return bool(pid) and pid in self._processes(name, pid)

    def _stop(self, name: str, pid: int | None, timeout: float = 20) -> bool:
        """Every process of the component, orphans included: SIGTERM, SIGKILL for what is left
        after `timeout`. Returns whether there was any."""
        signalled: set[int] = set()
        deadline = time.monotonic() + timeout
        while left := self._processes(name, pid):
            kill = signal.SIGKILL if time.monotonic() >= deadline else signal.SIGTERM
            for process in left if kill == signal.SIGKILL else left - signalled:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process, kill)
            signalled |= left
            if time.monotonic() > deadline + 10:
                raise LocalPlatformError(
                    f"could not stop {', '.join(map(_describe, sorted(left)))}"
                )
            time.sleep(0.1)
        if pid:  # our child when this process started it: not left a zombie
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        return bool(signalled)

    def _clear_the_way(self, name: str, state: dict, port: int, what: str) -> None:
        """Before starting a component: stop what is left of an earlier one (a server whose
        parent died leaves its worker serving the port); refuse a port someone else holds."""
        pid = state.get(name, {}).get("pid")
        if stale := self._processes(name, pid):
            self.progress(
                f"stopping what is left of {what} started earlier: "
                f"{', '.join(map(_describe, sorted(stale)))}"
            )
            self._stop(name, pid)
        if _port_open(port):
            holders = ", ".join(map(_describe, _port_holders(port))) or "another process"
            raise LocalPlatformError(
                f"cannot start {what} on 127.0.0.1:{port}: the port is in use by {holders}, "
                f"not started by this platform; stop it, or remove {name!r} from "
                f"{self.state_file} to take a new port"
            )


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
