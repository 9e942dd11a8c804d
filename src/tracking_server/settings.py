"""The settings the tracking server container receives, their names and their rules.

The environment template writes these names into the task definition and the entrypoint reads
them, so both import them from here. Names under SECRETS arrive as ECS secrets from Secrets
Manager, never as plain environment variables in the task definition. `from_environ` refuses
missing or malformed settings with one line per problem, naming the setting, the value (never
a secret's value) and the rule.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

PORT = 5000
HEALTH_PATH = "/health"

AUTH_MODE = "MLFLOW_PLATFORM_AUTH_MODE"
AUTH_MODES = ("basic", "iam")
DB_HOST = "MLFLOW_PLATFORM_DB_HOST"
DB_PORT = "MLFLOW_PLATFORM_DB_PORT"
DB_NAME = "MLFLOW_PLATFORM_DB_NAME"
ARTIFACTS_DESTINATION = "MLFLOW_PLATFORM_ARTIFACTS_DESTINATION"
ALLOWED_HOSTS = "MLFLOW_PLATFORM_ALLOWED_HOSTS"
# iam mode: IAM roles or users (ARNs, comma-separated) whose signed requests act as the admin.
ADMIN_PRINCIPALS = "MLFLOW_PLATFORM_ADMIN_PRINCIPALS"
# Optional.
SERVER_PORT = "MLFLOW_PLATFORM_PORT"
BIND_ADDRESS = "MLFLOW_PLATFORM_BIND_ADDRESS"
WORKERS = "MLFLOW_PLATFORM_WORKERS"
AUTH_CACHE_SECONDS = "MLFLOW_PLATFORM_AUTH_CACHE_SECONDS"
# Local only (invoke local --embedded): a SQLite file instead of PostgreSQL.
SQLITE_PATH = "MLFLOW_PLATFORM_SQLITE_PATH"
# The CA certificates that the database's server certificate must chain to (libpq's
# sslrootcert; every connection is sslmode=verify-full). The image holds AWS's RDS bundle at
# RDS_CA_BUNDLE; `invoke local` points this at the CA it made for its own PostgreSQL.
DB_SSL_ROOT_CERT = "MLFLOW_PLATFORM_DB_SSL_ROOT_CERT"
RDS_CA_BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem"
SSL_MODE = "verify-full"

# The server's own database role (its own secret): every connection of the server.
SERVER_DB_ROLE = "mlflow_server"
DB_USERNAME = "MLFLOW_PLATFORM_DB_USERNAME"
DB_PASSWORD = "MLFLOW_PLATFORM_DB_PASSWORD"
# The database's master user (RDS-managed secret): only to create the server's role and keep
# it in step (database_role.py), never for MLflow itself. Only the task's init container, which
# runs the entrypoint with SETUP_DATABASE and exits, receives it; the server container never.
SETUP_DATABASE = "setup-database"
DB_MASTER_USERNAME = "MLFLOW_PLATFORM_DB_MASTER_USERNAME"
DB_MASTER_PASSWORD = "MLFLOW_PLATFORM_DB_MASTER_PASSWORD"
ADMIN_USERNAME = "MLFLOW_PLATFORM_ADMIN_USERNAME"
ADMIN_PASSWORD = "MLFLOW_PLATFORM_ADMIN_PASSWORD"
SECRET_KEY = "MLFLOW_PLATFORM_SECRET_KEY"
# MLflow's AI gateway (provider keys, LLM endpoints): off unless the environment turns it on
# (gateway_switch.py). Its stored provider keys are encrypted with GATEWAY_KEK, a generated
# secret, never with MLflow's public default passphrase.
AI_GATEWAY = "MLFLOW_PLATFORM_AI_GATEWAY"
AI_GATEWAY_MODES = ("off", "on")
GATEWAY_KEK = "MLFLOW_PLATFORM_GATEWAY_KEK"

# iam mode: the header in which API Gateway hands the SigV4-verified caller to the server. Team
# APIs overwrite it on every request (HTTP API parameter mapping), so a client cannot set it.
CALLER_HEADER = "X-Mlflow-Platform-Caller"
CALLER_MAPPING = f"overwrite:header.{CALLER_HEADER}"
CALLER_VALUE = "$context.identity.userArn"
# An IAM role or user (`iam`), or a session of a role (`sts`, what `$context.identity.userArn`
# is for a SageMaker job): IAM User Guide, "IAM identifiers".
PRINCIPAL_ARN = re.compile(
    r"^arn:aws[a-z-]*:(?:(iam)::([0-9]{12}):(role|user)|(sts)::([0-9]{12}):(assumed-role))"
    r"/([\w+=,.@/-]+)$"
)
# A team's role as a team stack registers it: the role's own ARN, never a session of it.
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$")
ROLE_ARN_RULE = "must be an IAM role's own ARN, arn:<partition>:iam::<account>:role/<name>"

# Every team API states its routes' authorization type on every request (an overwrite with a
# fixed value: the same contract value its routes were deployed with). The environment's
# AuthMode can change after a team stack was deployed; the server then refuses that team
# API's requests (request_guard.py) until the team stack is updated.
ROUTE_AUTHORIZATION_HEADER = "X-Mlflow-Platform-Route-Authorization"
ROUTE_AUTHORIZATION_BY_MODE = {"basic": "NONE", "iam": "AWS_IAM"}
ROUTE_AUTHORIZATION_MAPPING = f"overwrite:header.{ROUTE_AUTHORIZATION_HEADER}"
# And the domain its clients called (execute-api or a custom domain, always HTTPS), for the
# server's cross-origin check: behind a team API the Host header is the load balancer's name.
DOMAIN_HEADER = "X-Mlflow-Platform-Domain"
DOMAIN_MAPPING = f"overwrite:header.{DOMAIN_HEADER}"
DOMAIN_VALUE = "$context.domainName"
# MLflow's own setting (`mlflow server --cors-allowed-origins`): origins, comma-separated,
# whose pages may call the server across origins. Unset: only the team API's own origin.
CORS_ALLOWED_ORIGINS = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"

# A team's MLflow user is TEAM_USER_PREFIX + its team name: a namespace the server keeps for
# team stacks (team_users.py), which service stacks name in their team secret.
TEAM_USER_PREFIX = "team/"

SECRETS = (
    DB_USERNAME, DB_PASSWORD, DB_MASTER_USERNAME, DB_MASTER_PASSWORD, ADMIN_USERNAME,
    ADMIN_PASSWORD, SECRET_KEY, GATEWAY_KEK,
)  # fmt: skip

# One uvicorn process per task; more capacity comes from more tasks. With several workers
# uvicorn's worker processes accept connections without TCP_NODELAY, and every response on a
# reused keep-alive connection then waits about 40 ms for the client's delayed ACK (measured:
# 44 ms a request with 2 workers, 0.5 ms with 1; bench/tracking_server.py).
DEFAULT_WORKERS = 1
DEFAULT_AUTH_CACHE_SECONDS = 60
MIN_PASSWORD = 12
MIN_SECRET_KEY = 32


def principal_key(arn: str) -> str | None:
    """`<account>:role/<name>` or `<account>:user/<name>` for an IAM role, a session of it or
    an IAM user; None for anything else. A role session's ARN carries the role's name but not
    its path, so the path is dropped from role ARNs too."""
    match = PRINCIPAL_ARN.match(arn)
    if match is None:
        return None
    _, iam_account, kind, _, sts_account, _, rest = match.groups()
    if kind is None:  # a role session: <role name>/<session name>
        return f"{sts_account}:role/{rest.split('/')[0]}"
    return f"{iam_account}:{kind}/{rest.rsplit('/', 1)[-1]}"


def role_key(arn: str) -> str | None:
    """principal_key of a role's own ARN (ROLE_ARN); None for anything else, a session of
    the role included: registering a role takes its ARN, and its sessions then map to it
    (role names are unique in an account)."""
    match = ROLE_ARN.match(arn)
    return f"{match.group(1)}:role/{match.group(2)}" if match else None


def cloud_hosts(*, load_balancer_dns_name: str, region: str, url_suffix: str) -> str:
    """ALLOWED_HOSTS in AWS: the Host headers that reach a task through its load balancer.

    Team APIs overwrite Host with the load balancer's name (HTTP API parameter mapping, so a
    custom domain in front of a team API changes nothing here) and the team-user function calls
    the load balancer by that name. `*.execute-api` keeps a team API deployed before that
    mapping working while it is upgraded.
    """
    return f"{load_balancer_dns_name},*.execute-api.{region}.{url_suffix}"


_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")
_ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, kw_only=True)
class Database:
    """PostgreSQL (the cloud and `invoke local`) or a SQLite file (`invoke local --embedded`)."""

    host: str | None = None
    port: int | None = None
    name: str | None = None
    username: str | None = None
    password: str | None = None
    master_username: str | None = None
    master_password: str | None = None
    ssl_root_cert: str | None = None
    sqlite_path: str | None = None

    def uri(self, database: str | None = None, *, master: bool = False) -> str:
        """The server's role (or the master user), TLS verified against ssl_root_cert."""
        if self.sqlite_path:
            path = self.sqlite_path if database is None else f"{self.sqlite_path}.{database}"
            return f"sqlite:///{path}"
        user = quote((self.master_username if master else self.username) or "", safe="")
        password = quote((self.master_password if master else self.password) or "", safe="")
        return (
            f"postgresql+psycopg2://{user}:{password}@{self.host}:{self.port}/"
            f"{database or self.name}?sslmode={SSL_MODE}"
            f"&sslrootcert={quote(self.ssl_root_cert or '', safe='/')}"
        )

    def connect_args(self, database: str | None = None, *, master: bool = False) -> dict:
        """The same connection as `uri`, as psycopg2.connect's keyword arguments."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": database or self.name,
            "user": self.master_username if master else self.username,
            "password": self.master_password if master else self.password,
            "sslmode": SSL_MODE,
            "sslrootcert": self.ssl_root_cert,
        }

    @property
    def auth_database(self) -> str:
        return "auth" if self.sqlite_path else f"{self.name}_auth"


@dataclass(frozen=True, kw_only=True)
class Settings:
    auth_mode: str
    database: Database
    artifacts_destination: str
    allowed_hosts: tuple[str, ...]
    port: int
    bind_address: str
    workers: int
    auth_cache_seconds: int
    admin_username: str | None
    admin_password: str | None
    secret_key: str | None
    admin_principals: tuple[str, ...] = ()
    ai_gateway: str = "off"
    gateway_kek: str | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"Settings(auth_mode={self.auth_mode!r}, port={self.port}, workers={self.workers})"


def _int(env: Mapping[str, str], name: str, default: int | None, low: int, high: int,
         problems: list[str]) -> int:  # fmt: skip
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            problems.append(f"{name} is missing: a whole number from {low} to {high}")
            return 0
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        problems.append(f"{name}={raw!r}: must be a whole number from {low} to {high}")
        return 0
    return int(raw)


def _bind_address(env: Mapping[str, str], problems: list[str]) -> str:
    """All interfaces in a task (its security group admits the load balancer only)."""
    value = env.get(BIND_ADDRESS) or "0.0.0.0"
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        problems.append(f"{BIND_ADDRESS}={value!r}: must be an IPv4 address")
    return value


def _required(env: Mapping[str, str], name: str, problems: list[str], what: str) -> str:
    value = env.get(name, "")
    if not value:
        problems.append(f"{name} is missing: {what}")
    return value


def _database(env: Mapping[str, str], problems: list[str], *, master: bool) -> Database:
    """The server's connection; with `master`, the master user's too (the set-up only)."""
    if env.get(SQLITE_PATH):
        return Database(sqlite_path=env[SQLITE_PATH])
    host = _required(env, DB_HOST, problems, "the PostgreSQL host name")
    port = _int(env, DB_PORT, None, 1, 65535, problems)
    name = _required(env, DB_NAME, problems, "the PostgreSQL database name")
    if name and not _DB_NAME.match(name):
        problems.append(f"{DB_NAME}={name!r}: letters, digits and _, not starting with a digit")
    username = _required(env, DB_USERNAME, problems, "the server's role (an ECS secret)")
    if username and not _ROLE.match(username):
        problems.append(f"{DB_USERNAME}={username!r}: lower-case letters, digits and _")
    password = _required(env, DB_PASSWORD, problems, "its password (an ECS secret)")
    if password and len(password) < MIN_PASSWORD:
        problems.append(f"{DB_PASSWORD}: at least {MIN_PASSWORD} characters")
    master_username = master_password = None
    if master:
        what = "the master user (an ECS secret of the set-up container only)"
        master_username = _required(env, DB_MASTER_USERNAME, problems, what)
        if master_username and master_username == username:
            problems.append(
                f"{DB_USERNAME}={username!r}: the server's role must not be the master user"
            )
        master_password = _required(
            env, DB_MASTER_PASSWORD, problems, "the master password (an ECS secret)"
        )
    root_cert = env.get(DB_SSL_ROOT_CERT) or RDS_CA_BUNDLE
    if not os.access(root_cert, os.R_OK):
        problems.append(
            f"{DB_SSL_ROOT_CERT}={root_cert!r}: not a readable file (the CA certificates "
            "that the database's certificate must chain to)"
        )
    return Database(host=host, port=port, name=name, username=username, password=password,
                    master_username=master_username, master_password=master_password,
                    ssl_root_cert=root_cert)  # fmt: skip


def setup_from_environ(env: Mapping[str, str]) -> Database:
    """The database set-up's settings (`entrypoint setup-database`, the task's init container):
    the server's role and the master user. Nothing else of the server's settings."""
    problems: list[str] = []
    database = _database(env, problems, master=True)
    if problems:
        raise SettingsError(problems)
    return database


def from_environ(env: Mapping[str, str]) -> Settings:
    """The server's settings. The master user is not among them: the server never has it (the
    init container sets the role up), and names of it here are ignored."""
    problems: list[str] = []
    auth_mode = env.get(AUTH_MODE, "")
    if auth_mode not in AUTH_MODES:
        problems.append(f"{AUTH_MODE}={auth_mode!r}: must be one of {', '.join(AUTH_MODES)}")

    database = _database(env, problems, master=False)

    destination = _required(env, ARTIFACTS_DESTINATION, problems, "where artifacts are stored")
    if destination and not (
        re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", destination)
        or (env.get(SQLITE_PATH) and destination.startswith("/"))
    ):
        problems.append(
            f"{ARTIFACTS_DESTINATION}={destination!r}: must be s3://<bucket>[/<prefix>]"
        )

    hosts = tuple(h.strip() for h in env.get(ALLOWED_HOSTS, "").split(",") if h.strip())
    for host in hosts:
        if not _HOST.match(host):
            problems.append(f"{ALLOWED_HOSTS}: {host!r} is not a host name, *.domain or host:port")

    principals = tuple(p.strip() for p in env.get(ADMIN_PRINCIPALS, "").split(",") if p.strip())
    for principal in principals:
        if not PRINCIPAL_ARN.match(principal) or principal.split(":")[5].startswith("assumed"):
            problems.append(f"{ADMIN_PRINCIPALS}: {principal!r} is not an IAM role or user ARN")

    for origin in (o.strip() for o in env.get(CORS_ALLOWED_ORIGINS, "").split(",") if o.strip()):
        if not _ORIGIN.match(origin):
            problems.append(
                f"{CORS_ALLOWED_ORIGINS}: {origin!r} is not an origin: http(s)://host[:port], "
                "exactly as a browser sends it (no path, no wildcard)"
            )

    # Both modes keep MLflow's users and permissions: basic checks a password, iam the caller.
    admin_username = admin_password = secret_key = None
    if auth_mode in AUTH_MODES:
        admin_username = _required(env, ADMIN_USERNAME, problems, "the MLflow admin user")
        if admin_username and not _USERNAME.match(admin_username):
            problems.append(f"{ADMIN_USERNAME}={admin_username!r}: letters, digits and ._@-")
        admin_password = _required(env, ADMIN_PASSWORD, problems, "the MLflow admin password")
        if admin_password and len(admin_password) < MIN_PASSWORD:
            problems.append(f"{ADMIN_PASSWORD}: at least {MIN_PASSWORD} characters")
        secret_key = _required(env, SECRET_KEY, problems, "the session signing key")
        if secret_key and len(secret_key) < MIN_SECRET_KEY:
            problems.append(f"{SECRET_KEY}: at least {MIN_SECRET_KEY} characters")

    ai_gateway = env.get(AI_GATEWAY) or "off"
    if ai_gateway not in AI_GATEWAY_MODES:
        problems.append(
            f"{AI_GATEWAY}={ai_gateway!r}: must be one of {', '.join(AI_GATEWAY_MODES)}"
        )
    gateway_kek = env.get(GATEWAY_KEK) or None
    if ai_gateway == "on" and not gateway_kek:
        problems.append(
            f"{GATEWAY_KEK} is missing: the AI gateway encrypts provider keys with it (an ECS "
            "secret), never with MLflow's public default"
        )
    if gateway_kek and len(gateway_kek) < MIN_SECRET_KEY:
        problems.append(f"{GATEWAY_KEK}: at least {MIN_SECRET_KEY} characters")

    settings = Settings(
        auth_mode=auth_mode,
        database=database,
        artifacts_destination=destination,
        allowed_hosts=hosts,
        port=_int(env, SERVER_PORT, PORT, 1, 65535, problems),
        bind_address=_bind_address(env, problems),
        workers=_int(env, WORKERS, DEFAULT_WORKERS, 1, 64, problems),
        auth_cache_seconds=_int(
            env, AUTH_CACHE_SECONDS, DEFAULT_AUTH_CACHE_SECONDS, 0, 3600, problems
        ),
        admin_username=admin_username,
        admin_password=admin_password,
        secret_key=secret_key,
        admin_principals=principals,
        ai_gateway=ai_gateway,
        gateway_kek=gateway_kek,
    )  # fmt: skip
    if problems:
        raise SettingsError(problems)
    return settings
