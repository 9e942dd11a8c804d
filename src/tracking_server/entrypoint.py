"""Start the MLflow tracking server as the platform runs it, in the cloud and locally alike.

Two commands of one image, two containers of one ECS task:

- `setup-database` (the task's init container, which alone receives the master user's secret):
  read and check the database settings (`settings.setup_from_environ`), wait for the database,
  then, under a PostgreSQL advisory lock so that tasks starting together take turns, log in as
  the master user and create or update the server's own role, its grants and the auth database
  (database_role.py); exit 0. The master password then lives in no running process: code run in
  MLflow, the health checks and /proc/<pid>/environ of the server hold none of it.
- no argument (the server container, started once the init container exited 0): read and check
  the settings (`settings.from_environ`); refuse to start, naming each problem. Wait for the
  database, then, under the same lock and as the server's role, create or upgrade the tracking
  schema, the auth schema and the admin user. Replace this process with `mlflow server`.
  Credentials reach it through the environment and a private config file, never the command
  line, which any process on the host can read.

Every connection is TLS with the server's certificate verified (sslmode=verify-full).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracking_server import (
    app,
    database_role,
    grant_names,
    healthcheck,
    identity,
    store_plugin,
    team_users,
)
from tracking_server import settings as names
from tracking_server.settings import (
    Database,
    Settings,
    SettingsError,
    from_environ,
    setup_from_environ,
)

DATABASE_WAIT_SECONDS = 300
_MIGRATION_LOCK = 0x6D6C666C  # "mlfl": one advisory lock id for every task of the platform
# Each user sees only what they created or were granted; the admin grants the rest.
DEFAULT_PERMISSION = "NO_PERMISSIONS"
AUTHORIZATION = {
    "basic": "mlflow.server.auth:authenticate_request_basic_auth",
    "iam": identity.AUTHORIZATION_FUNCTION,
}


def log(message: str) -> None:
    print(f"tracking-server: {message}", file=sys.stderr, flush=True)


def wait_for_database(database: Database, timeout: float = DATABASE_WAIT_SECONDS) -> None:
    """Until the database answers, probed as the server's role: a login refused for its
    password (the role does not exist before the first start) is an answer too. A certificate
    that fails verification will not pass later: that stops at once."""
    if database.sqlite_path:
        return
    import psycopg2

    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            database_role.connect(database, master=False).close()
            return
        except psycopg2.OperationalError as error:
            if database_role.is_refused_login(error):
                return
            if "certificate" in str(error):
                raise SystemExit(
                    f"tracking-server: database {database.host}:{database.port}: TLS "
                    f"verification against {database.ssl_root_cert} failed: "
                    f"{str(error).strip().splitlines()[-1]}"
                ) from None
            attempt += 1
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"tracking-server: database {database.host}:{database.port} not reachable "
                    f"after {timeout:.0f}s: {str(error).strip().splitlines()[-1]}"
                ) from None
            if attempt % 5 == 1:
                log(f"waiting for database {database.host}:{database.port}")
            time.sleep(2)


@contextmanager
def advisory_lock(connection) -> Iterator[None]:  # a psycopg2 connection
    """The one lock every task of the platform takes in turn, set-up and migrations alike;
    qualified, with its argument's exact type, so no function in `public` can stand in."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_catalog.pg_advisory_lock(%s::pg_catalog.int8)", (_MIGRATION_LOCK,)
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_catalog.pg_advisory_unlock(%s::pg_catalog.int8)", (_MIGRATION_LOCK,)
            )


def setup_database(database: Database) -> None:
    """As the master user and under the lock: the server's role kept in step (database_role).

    A master password refused (RDS rotated it after this task read the secret) is no failure
    while the server's role logs in: an earlier set-up made it, and the server needs nothing
    more. A new task reads the new secret."""
    if database.sqlite_path:
        log("SQLite: no database role to set up")
        return
    import psycopg2

    wait_for_database(database)
    try:
        connection = database_role.connect(database, master=True)
    except database_role.RoleSetupError as error:
        raise SystemExit(f"tracking-server: {error}") from None
    except psycopg2.OperationalError as error:
        if not database_role.is_refused_login(error):
            raise
        log(
            f"the master user {database.master_username} was refused (its password rotated "
            "since this task read it?): the server's role is left as an earlier start set it"
        )
        try:
            database_role.connect(database, master=False).close()
        except psycopg2.OperationalError as second:
            raise SystemExit(
                f"tracking-server: neither the master user nor the server's role "
                f"{database.username} can log in: {str(second).strip().splitlines()[-1]}"
            ) from None
        return
    try:
        with advisory_lock(connection):
            for done in database_role.keep_in_step(database, database.auth_database):
                log(done)
    except database_role.RoleSetupError as error:
        raise SystemExit(f"tracking-server: {error}") from None
    finally:
        connection.close()


@contextmanager
def migration_lock(settings: Settings) -> Iterator[None]:
    """Held by the server's role: the init container set it up before this container started."""
    if settings.database.sqlite_path:
        yield
        return
    import psycopg2

    database = settings.database
    try:
        connection = database_role.connect(database, master=False)
    except psycopg2.OperationalError as error:
        raise SystemExit(
            f"tracking-server: the server's role {database.username} cannot log in (the "
            f"database set-up, `{names.SETUP_DATABASE}`, runs first and makes it): "
            f"{str(error).strip().splitlines()[-1]}"
        ) from None
    try:
        with advisory_lock(connection):
            yield
    finally:
        connection.close()


class UnknownRevision(SystemExit):
    """The database's schema revision is one this MLflow has no migration script for."""


def check_known_revision(current: str | None, known: set[str], head: str) -> None:
    """A revision missing from this image's scripts was written by a newer MLflow, so a newer
    platform version migrated the database: say so. Left to MLflow, alembic stops with
    "Can't locate revision" and the store calls the schema out of date, both misleading."""
    if current is None or current in known:
        return
    import mlflow

    raise UnknownRevision(
        f"tracking-server: refusing to start: the tracking database is at schema revision "
        f"{current}, which this image's MLflow {mlflow.__version__} does not know (its newest "
        f"is {head}): a newer platform version migrated it, and this version cannot serve it. "
        "Nothing was changed. Deploy that version (or a newer one) again, or restore the "
        "database from a snapshot taken before the upgrade (src/tracking_server/README.md, "
        "Upgrading MLflow)"
    )


def migrate_tracking(settings: Settings) -> None:
    """Create the schema on an empty database, upgrade an older one; no-op when current.

    Refuses (UnknownRevision) a database a newer MLflow migrated, before touching it. Logs
    the revision it found and the one it left, so a rolling deployment's logs show which task
    migrated."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import (
        _all_tables_exist,
        _get_alembic_config,
        _get_schema_version,
        _initialize_tables,
        _upgrade_db,
    )
    from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry as engine_for

    scripts = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    known = {script.revision for script in scripts.walk_revisions()}
    head = scripts.get_current_head()
    assert head is not None
    engine = engine_for(settings.database.uri())
    try:
        current = _get_schema_version(engine)
        check_known_revision(current, known, head)
        if _all_tables_exist(engine):
            _upgrade_db(engine)
        else:
            _initialize_tables(engine)
        after = _get_schema_version(engine)
    finally:
        engine.dispose()
    healthcheck.record_revision(settings.port, after)
    if current is None:
        log(f"tracking schema created at revision {after}")
    elif current != after:
        log(f"tracking schema upgraded from revision {current} to {after}")
    else:
        log(f"tracking schema current at revision {after}")


def ensure_auth_database(settings: Settings) -> str:
    """The auth database's URI; on PostgreSQL the master user created it (database_role)."""
    database = settings.database
    return database.uri(database.auth_database)


def prepare_auth(settings: Settings, auth_uri: str) -> None:
    """Auth schema migrated and the admin user present, before any worker starts."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_uri)
    team_users.create_table(store.engine)
    grant_names.remove_pattern_grants(store.engine, log)
    assert settings.admin_username and settings.admin_password
    if not store.has_user(settings.admin_username):
        log(f"creating admin user {settings.admin_username}")
        store.create_user(settings.admin_username, settings.admin_password, is_admin=True)


def auth_config(settings: Settings, auth_uri: str, directory: Path) -> Path:
    path = directory / "basic_auth.ini"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as config:
        config.write(
            "[mlflow]\n"
            f"default_permission = {DEFAULT_PERMISSION}\n"
            # configparser reads % as interpolation; a URL-escaped password has some.
            f"database_uri = {auth_uri.replace('%', '%%')}\n"
            f"admin_username = {settings.admin_username}\n"
            f"authorization_function = {AUTHORIZATION[settings.auth_mode]}\n"
            f"auth_cache_ttl_seconds = {settings.auth_cache_seconds}\n"
        )
    return path


# Artifact bytes never pass the team API (API Gateway caps a request and a response at 10 MB
# and 30 s) nor the server: it signs S3 URLs, and clients move the bytes straight to and from
# the bucket. MLflow 3.18's presigned-only mode refuses proxied bytes with a message naming the
# fix, and a 3.18 client or UI reads it from /api/3.0/mlflow/server-info and switches by itself;
# an older client needs the artifact settings each team stack publishes. Presigned URLs expire in
# minutes (downloads: MLflow's 300 s default, kept explicit here).
PRESIGNED_DOWNLOAD_TTL_SECONDS = 300


def artifact_transfer_environment(destination: str) -> dict[str, str]:
    """The server's artifact settings: presigned-only where the store can presign (S3)."""
    if not destination.startswith("s3://"):
        return {"MLFLOW_ARTIFACTS_PRESIGNED_ONLY": "false"}
    return {
        "MLFLOW_ARTIFACTS_PRESIGNED_ONLY": "true",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
        "MLFLOW_PRESIGNED_DOWNLOAD_URL_TTL_SECONDS": str(PRESIGNED_DOWNLOAD_TTL_SECONDS),
    }


def server_command(settings: Settings, config_dir: Path) -> tuple[list[str], dict[str, str]]:
    """argv and environment of `mlflow server`; no secret in argv."""
    env = {k: v for k, v in os.environ.items() if k not in names.SECRETS}
    env["MLFLOW_BACKEND_STORE_URI"] = settings.database.uri()
    if not settings.database.sqlite_path:
        # A plain database URI, as MLflow reads it everywhere (job store, trace-rollup check):
        # MLflow builds the bulk store for it through the platform's `postgresql` entry point
        # (store_plugin.py), checked here. The registry keeps MLflow's own store.
        try:
            store_plugin.check_mlflow_builds_it(env["MLFLOW_BACKEND_STORE_URI"])
        except RuntimeError as error:
            raise SystemExit(f"tracking-server: refusing to start: {error}") from None
        env["MLFLOW_REGISTRY_STORE_URI"] = settings.database.uri()
    env["MLFLOW_ARTIFACTS_DESTINATION"] = settings.artifacts_destination
    env.update(artifact_transfer_environment(settings.artifacts_destination))
    # MLflow 3 starts job runners (GenAI scorers, trace roll-ups) beside the server: four more
    # processes, about 1 GB in all, and periodic tasks that every replica would run again.
    # Experiment tracking and the registry need none of it.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    allowed = ("localhost", "127.0.0.1", f"localhost:{settings.port}",
               f"127.0.0.1:{settings.port}", *settings.allowed_hosts)  # fmt: skip
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", settings.bind_address,
        "--port", str(settings.port),
        "--workers", str(settings.workers),
        "--serve-artifacts",
        "--allowed-hosts", ",".join(allowed),
    ]  # fmt: skip
    # Both modes: MLflow's users and per-experiment permissions; they differ in who the
    # caller is (identity.py).
    auth_uri = ensure_auth_database(settings)
    prepare_auth(settings, auth_uri)
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config(settings, auth_uri, config_dir))
    assert settings.secret_key
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = settings.secret_key
    # The AI gateway's stored provider keys: the platform's key, never MLflow's public default.
    env.pop("MLFLOW_CRYPTO_KEK_PASSPHRASE", None)
    if settings.gateway_kek:
        env["MLFLOW_CRYPTO_KEK_PASSPHRASE"] = settings.gateway_kek
    env[names.AI_GATEWAY] = settings.ai_gateway
    env["MLFLOW_ENABLE_AI_GATEWAY"] = "true" if settings.ai_gateway == "on" else "false"
    argv += ["--app-name", app.BASIC_AUTH]
    return argv, env


def _refuse(error: SettingsError) -> None:
    log("refusing to start:")
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)
    raise SystemExit(2) from None


def setup_main() -> None:
    try:
        database = setup_from_environ(os.environ)
    except SettingsError as error:
        _refuse(error)
        return
    setup_database(database)
    log("database set up")


def serve_main() -> None:
    try:
        settings = from_environ(os.environ)
    except SettingsError as error:
        _refuse(error)
        return
    wait_for_database(settings.database)
    config_dir = Path(tempfile.mkdtemp(prefix="mlflow-platform-"))
    with migration_lock(settings):
        migrate_tracking(settings)
        argv, env = server_command(settings, config_dir)
    log(f"starting mlflow server on port {settings.port} ({settings.auth_mode} auth)")
    os.execvpe(argv[0], argv, env)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == [names.SETUP_DATABASE]:
        setup_main()
    elif not args:
        serve_main()
    else:
        log(f"unknown command {' '.join(args)!r}: none (the server) or {names.SETUP_DATABASE}")
        raise SystemExit(2)


if __name__ == "__main__":
    main()
