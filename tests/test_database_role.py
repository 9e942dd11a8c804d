"""The server's own database role over verified TLS, on the local platform's PostgreSQL (set up
as RDS sets up the cloud's: a master user that is no superuser, TLS, passwords only).

- The entrypoint creates the role with the master user, then the server connects as that role,
  every connection TLS with the certificate verified (sslmode=verify-full).
- A rotation of the master password, while clients log, breaks nothing; a server started after
  it starts, with the new master password and with the one read before the rotation.
- Tables an older version created as the master user are handed over to the role.
- PostgreSQL refuses a local OS user other than its owner, and plain TCP.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import threading
import time
import uuid

import psycopg2
import pytest

from mlflow_platform.local.platform import DB_USER, postgres_bin
from tracking_server import database_role
from tracking_server import settings as names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _client(details):
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = details["username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = details["password"]
    return MlflowClient(details["tracking_uri"])


def _server_connections(local) -> list[tuple]:
    """(user, database, ssl, tls version, client address) of every client backend but ours."""
    with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
        cursor.execute(
            "SELECT a.usename, a.datname, s.ssl, s.version, host(a.client_addr) "
            "FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
            "WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


def test_the_server_connects_as_its_own_role_over_verified_tls(platform):
    local, details = platform
    client = _client(details)
    experiment = client.create_experiment(f"role-{uuid.uuid4().hex}")
    run_id = client.create_run(experiment).info.run_id
    client.log_metric(run_id, "m", 1.0)  # the fast path's own connection
    connections = _server_connections(local)
    users = {user for user, *_ in connections}
    assert names.SERVER_DB_ROLE in users, connections
    assert DB_USER not in users  # the master user holds no connection once the server runs
    for user, database, ssl, version, address in connections:
        if user == names.SERVER_DB_ROLE:
            assert database in ("mlflow", "mlflow_auth")
            assert ssl is True and version in ("TLSv1.2", "TLSv1.3") and address == "127.0.0.1"
    database = local.database()
    connection = psycopg2.connect(**database.connect_args())
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user, ssl FROM pg_stat_ssl "
                       "WHERE pid = pg_backend_pid()")  # fmt: skip
        assert cursor.fetchone() == (names.SERVER_DB_ROLE, names.SERVER_DB_ROLE, True)


def test_the_role_has_only_what_mlflow_needs(platform):
    local, _ = platform
    with contextlib.closing(local.superuser("mlflow")) as admin, admin.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit"
            " FROM pg_roles WHERE rolname = %s",
            (names.SERVER_DB_ROLE,),
        )
        assert cursor.fetchone() == (False, False, False, False, False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_auth_members WHERE member = "
            "(SELECT oid FROM pg_roles WHERE rolname = %s)",
            (names.SERVER_DB_ROLE,),
        )
        assert cursor.fetchone() == (0,)  # a member of no role
        cursor.execute(
            "SELECT rolconnlimit, rolvaliduntil = 'infinity', rolconfig FROM pg_roles "
            "WHERE rolname = %s",
            (names.SERVER_DB_ROLE,),
        )
        assert cursor.fetchone() == (-1, True, None)
        cursor.execute("SELECT has_database_privilege('public', 'mlflow', 'CONNECT'),"
                       " has_database_privilege('public', 'mlflow_auth', 'TEMPORARY')")  # fmt: skip
        assert cursor.fetchone() == (False, False)  # PUBLIC's default taken away
        cursor.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                       "WHERE datname IN ('mlflow', 'mlflow_auth') ORDER BY 1")  # fmt: skip
        assert cursor.fetchall() == [("mlflow", DB_USER), ("mlflow_auth", DB_USER)]
    for name in ("mlflow", "mlflow_auth"):
        with contextlib.closing(local.superuser(name)) as admin, admin.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            )
            assert cursor.fetchall() == [(names.SERVER_DB_ROLE,)], name
    database = local.database()
    with contextlib.closing(psycopg2.connect(**database.connect_args())) as role:
        role.autocommit = True
        for statement in ("CREATE DATABASE platform_test_forbidden",
                          "CREATE ROLE platform_test_forbidden",
                          "DROP DATABASE mlflow_auth"):  # fmt: skip
            with role.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(statement)


def test_plain_tcp_and_an_unverifiable_certificate_are_refused(platform):
    local, _ = platform
    args = local.database().connect_args()
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(**{**args, "sslmode": "disable"}).close()
    rds_bundle = os.path.join(os.path.dirname(names.__file__), "certs", "rds-global-bundle.pem")
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(**{**args, "sslrootcert": rds_bundle}).close()
    with pytest.raises(psycopg2.OperationalError, match="does not match host name"):
        psycopg2.connect(**{**args, "host": "mlflow.invalid", "hostaddr": "127.0.0.1"}).close()


def test_a_master_rotation_while_clients_log_breaks_nothing_and_new_servers_start(platform):
    """RDS rotates the master password every 7 days ("Password management with Amazon RDS and
    AWS Secrets Manager", Amazon Aurora User Guide): the password changes, then the secret."""
    local, details = platform
    client = _client(details)
    experiment = client.create_experiment(f"rotation-{uuid.uuid4().hex}")
    runs = [client.create_run(experiment).info.run_id for _ in range(3)]
    errors: list[BaseException] = []
    acknowledged: dict[str, list[int]] = {run_id: [] for run_id in runs}
    stop = threading.Event()

    def log(run_id: str) -> None:
        deadline = time.monotonic() + 120
        step = 0
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
                acknowledged[run_id].append(step)
            except BaseException as error:
                errors.append(error)
                return
            step += 1

    threads = [threading.Thread(target=log, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    time.sleep(1)
    old = local._credentials().db_password
    local.rotate_master_password()
    new = local._credentials().db_password
    assert new != old
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(150)
    assert errors == []
    for run_id in runs:
        assert len(acknowledged[run_id]) > 5
        stored = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
        assert stored == acknowledged[run_id]

    old_master = local.database().connect_args(master=True) | {"password": old}
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**old_master).close()

    def restart(**server_env: str) -> str:
        log_size = (local.dir / "server.log").stat().st_size
        local.down(("server",))
        local.up(server_env=server_env)
        with open(local.dir / "server.log", errors="replace") as server_log:
            server_log.seek(log_size)
            return server_log.read()

    try:
        # A task started after the rotation reads the new master password and sets up as usual.
        started = restart()
        assert f"updated role {names.SERVER_DB_ROLE}" in started
        client.log_metric(runs[0], "after", 1.0)
        # A task that read the master secret just before the rotation still starts: the role
        # is in step already and the server needs nothing of the master user.
        started = restart(**{names.DB_MASTER_PASSWORD: old})
        assert f"the master user {DB_USER} was refused" in started
        assert "updated role" not in started
        client.log_metric(runs[0], "after", 2.0, step=1)
        assert [m.value for m in client.get_metric_history(runs[0], "after")] == [1.0, 2.0]
    finally:
        local.down(("server",))
        local.up()


def test_tables_an_older_version_made_as_the_master_are_handed_to_the_role(platform):
    """Before the server had its own role it ran MLflow's migrations as the master user."""
    from mlflow.store.db.utils import _initialize_tables, _upgrade_db
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import create_engine

    local, _ = platform
    name = f"legacy_{uuid.uuid4().hex[:8]}"
    database = local.database()
    with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}" OWNER "{DB_USER}"')
        cursor.execute(f'CREATE DATABASE "{name}_auth" OWNER "{DB_USER}"')
    try:
        legacy = names.Database(**{**database.__dict__, "name": name})
        engine = create_engine(legacy.uri(master=True))
        _initialize_tables(engine)  # as the master user, as the platform used to
        engine.dispose()
        done = database_role.keep_in_step(legacy, f"{name}_auth")
        assert any(d.startswith(f"{name}: handed ") for d in done), done
        with contextlib.closing(local.superuser(name)) as admin, admin.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                " UNION SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            )
            assert cursor.fetchall() == [(names.SERVER_DB_ROLE,)]
        engine = create_engine(legacy.uri())
        _upgrade_db(engine)  # the role may run migrations on what it was handed
        engine.dispose()
        store = SqlAlchemyStore(legacy.uri(), "/tmp/unused-artifacts")
        assert store.create_experiment("after-handover")
        store.engine.dispose()
        # Kept in step: a second pass finds nothing left to hand over.
        assert not any("handed" in d for d in database_role.keep_in_step(legacy, f"{name}_auth"))
    finally:
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            for database_name in (name, f"{name}_auth"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')


@pytest.fixture
def other_user():
    """A throwaway OS user (root only: useradd)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a throwaway OS user (useradd); run the suite as root")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    name = f"pgprobe{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True)  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def test_another_local_user_is_refused_by_postgresql(platform, other_user):
    local, _ = platform
    port = str(local._state()["postgres"]["port"])
    socket_dir = local.dir / "postgres" / "socket"
    info = os.stat(socket_dir)
    assert info.st_mode & 0o777 == 0o700
    owner = pwd.getpwuid(info.st_uid).pw_name
    assert owner == ("postgres" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name)
    assert "trust" not in (local.dir / "postgres" / "data" / "pg_hba.conf").read_text()

    def psql(*target: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", other_user, "--", str(postgres_bin() / "psql"), *target,
             "-p", port, "-U", "postgres", "-d", "postgres", "-w", "-c", "SELECT 1"],
            capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip

    through_socket = psql("-h", str(socket_dir))
    assert through_socket.returncode != 0
    assert "Permission denied" in through_socket.stderr, through_socket.stderr
    over_tcp = psql("-h", "127.0.0.1")
    assert over_tcp.returncode != 0
    assert "no password supplied" in over_tcp.stderr, over_tcp.stderr


def test_a_server_that_cannot_verify_the_database_stops_at_once_saying_why(platform):
    """A CA that did not sign the database's certificate (here AWS's, against the local one)."""
    import sys

    local, _ = platform
    rds_bundle = os.path.join(os.path.dirname(names.__file__), "certs", "rds-global-bundle.pem")
    env = local.server_environment(local._state(), local._credentials())
    env[names.DB_SSL_ROOT_CERT] = rds_bundle
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tracking_server.entrypoint"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert f"TLS verification against {rds_bundle} failed" in result.stderr, result.stderr
    assert "certificate verify failed" in result.stderr
    assert time.monotonic() - started < 60


def test_a_data_directory_with_trust_authentication_is_refused_with_the_way_out():
    """An older `invoke local` initialised PostgreSQL with trust on its socket."""
    import tempfile
    from pathlib import Path

    from mlflow_platform.local.platform import LocalPlatform, LocalPlatformError

    state = Path(tempfile.mkdtemp(prefix="mlflow-local-"))  # searchable by the postgres user
    try:
        state.chmod(0o755)
        data = state / "postgres" / "data"
        data.mkdir(parents=True)
        (data / "PG_VERSION").write_text("15\n")
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 0.0.0.0/0 trust\n")
        local = LocalPlatform(state, progress=lambda _: None)
        with pytest.raises(LocalPlatformError) as refused:
            local.up()
        message = str(refused.value)
        assert f"{data / 'pg_hba.conf'} is not the platform's" in message
        assert "trust authentication" in message and "remove that directory" in message
        assert local.status() == {}  # nothing was started
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_a_role_of_that_name_with_more_power_is_refused_not_used(platform):
    """The master user cannot take SUPERUSER, REPLICATION or BYPASSRLS away (PostgreSQL keeps
    that to superusers): a role that has one stops the set-up, saying which."""
    local, _ = platform
    role = f"platform_test_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" LOGIN BYPASSRLS')
    try:
        database = names.Database(**{**local.database().__dict__, "username": role})
        with pytest.raises(database_role.RoleSetupError) as refused:
            database_role.keep_in_step(database, "mlflow_auth")
        assert str(refused.value) == (
            f"database role {role} has rolbypassrls: the server's role must have none of these;"
            " remove them (as a superuser) or drop the role"
        )
    finally:
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(f'DROP ROLE "{role}"')


@contextlib.contextmanager
def _throwaway(local, *, tables: bool):
    """A role name and a tracking/auth database pair the master user owns, dropped after."""
    role = f"platform_test_{uuid.uuid4().hex[:8]}"
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}" OWNER "{DB_USER}"')
    database = names.Database(**{**local.database().__dict__, "name": name, "username": role})
    try:
        if tables:  # objects of the master user's to hand over, a function with braces too
            master = psycopg2.connect(**database.connect_args(master=True))
            with contextlib.closing(master), master, master.cursor() as cursor:
                cursor.execute("CREATE TABLE legacy (id int)")
                cursor.execute('CREATE FUNCTION "f{0}"() RETURNS int LANGUAGE sql AS $$SELECT 1$$')
        yield database, f"{name}_auth"
    finally:
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            for database_name in (name, f"{name}_auth"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')


def _login(database, name=None):
    connection = psycopg2.connect(**database.connect_args(name))
    connection.autocommit = True
    return contextlib.closing(connection)


def test_a_role_of_that_name_with_memberships_settings_and_limits_is_brought_to_nothing(platform):
    """A pre-existing role keeps what it was given unless set-up takes it away: membership in the
    master role and pg_read_server_files, `SET role` as a role setting (its sessions would be the
    master's), a connection limit and an expiry. With master-owned objects to hand over, the
    membership in the master role also made `GRANT <role> TO CURRENT_USER` circular."""
    local, _ = platform
    with _throwaway(local, tables=True) as (database, auth):
        role = database.username
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE \"{role}\" LOGIN CONNECTION LIMIT 5 "
                           "VALID UNTIL '2000-01-01'")  # fmt: skip
            cursor.execute(f'GRANT "{DB_USER}", pg_read_server_files TO "{role}"')
            cursor.execute(f"ALTER ROLE \"{role}\" SET role = '{DB_USER}'")
            cursor.execute(f'ALTER ROLE "{role}" IN DATABASE "{database.name}" SET work_mem = 64')
        done = database_role.keep_in_step(database, auth)
        assert f"revoked {DB_USER}, pg_read_server_files from role {role}" in done, done
        assert f"reset the settings of role {role}" in done
        assert f"{database.name}: handed 2 objects over to {role}" in done
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(
                "SELECT rolconnlimit, rolvaliduntil = 'infinity', rolconfig,"
                " (SELECT count(*) FROM pg_auth_members WHERE member = r.oid),"
                " (SELECT count(*) FROM pg_db_role_setting WHERE setrole = r.oid)"
                " FROM pg_roles r WHERE rolname = %s",
                (role,),
            )
            assert cursor.fetchone() == (-1, True, None, 0, 0)
        with _login(database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('work_mem')")
            assert cursor.fetchone() == (role, "4MB")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("SET ROLE pg_read_server_files")
            cursor.execute("RESET ROLE")
            cursor.execute("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'f{0}'")
            assert cursor.fetchone() == (role,)


def test_what_the_master_user_cannot_take_away_stops_set_up_naming_it(platform):
    """Membership in a superuser role, and a setting only a superuser may make: PostgreSQL lets
    only a superuser revoke or reset those."""
    local, _ = platform
    with _throwaway(local, tables=False) as (database, auth):
        role = database.username
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{role}" LOGIN')
            cursor.execute(f'GRANT postgres TO "{role}"')
        with pytest.raises(database_role.RoleSetupError) as refused:
            database_role.keep_in_step(database, auth)
        assert str(refused.value) == (
            f"database role {role} is a member of postgres, which the master user cannot revoke:"
            " the server's role must be a member of no role; revoke them (as a superuser or"
            " their grantor) or drop the role"
        )
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(f'REVOKE postgres FROM "{role}"')
            cursor.execute(f"ALTER ROLE \"{role}\" SET log_statement = 'none'")
        with pytest.raises(database_role.RoleSetupError) as refused:
            database_role.keep_in_step(database, auth)
        assert str(refused.value) == (
            f"database role {role} has settings the master user cannot reset: log_statement=none"
            " (everywhere); reset them (as a superuser) or drop the role"
        )
        # Any other database error is a RoleSetupError saying at which step, not a traceback.
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(f'ALTER ROLE "{role}" RESET ALL')
            cursor.execute(f'CREATE DATABASE "{auth}"')  # not the master's, closed to PUBLIC
            cursor.execute(f'REVOKE CONNECT ON DATABASE "{auth}" FROM PUBLIC')
        with pytest.raises(database_role.RoleSetupError) as refused:
            database_role.keep_in_step(database, auth)
        message = str(refused.value)
        assert message.startswith(
            f"setting up database role {role} as {DB_USER} failed (granting on database {auth}):"
        ), message
        assert f'permission denied for database "{auth}"' in message


def test_only_the_role_and_the_master_may_connect_to_its_databases(platform):
    """PUBLIC's default CONNECT and TEMPORARY are revoked on the role's two databases, and on
    `postgres` when the master user owns it (locally a superuser owns it: here it is handed to
    the master for the test, then given back as it was)."""
    local, _ = platform
    with _throwaway(local, tables=False) as (database, auth):
        other = names.Database(**{**database.__dict__, "username": f"{database.username}_other"})
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE postgres OWNER TO "{DB_USER}"')
            cursor.execute(f"CREATE ROLE \"{other.username}\" LOGIN PASSWORD "
                           f"'{database.password}'")  # fmt: skip
        try:
            done = database_role.keep_in_step(database, auth)
            assert "revoked PUBLIC's CONNECT and TEMPORARY on database postgres" in done, done
            for name in (database.name, auth):
                with _login(database, name) as connection, connection.cursor() as cursor:
                    cursor.execute("CREATE TEMPORARY TABLE staged (id int)")
                master = psycopg2.connect(**database.connect_args(name, master=True))
                master.close()
                with pytest.raises(psycopg2.OperationalError, match="permission denied"):
                    psycopg2.connect(**other.connect_args(name)).close()
            with pytest.raises(psycopg2.OperationalError, match="permission denied"):
                psycopg2.connect(**database.connect_args("postgres")).close()
        finally:
            with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
                cursor.execute("GRANT CONNECT, TEMPORARY ON DATABASE postgres TO PUBLIC")
                cursor.execute(f'REVOKE ALL ON DATABASE postgres FROM "{DB_USER}"')
                cursor.execute("ALTER DATABASE postgres OWNER TO postgres")
                cursor.execute(f'DROP ROLE IF EXISTS "{other.username}"')
