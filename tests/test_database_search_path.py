"""The database set-up as the server's role would attack it (CVE-2018-1058's class).

The server's role may CREATE in `public`, and its password is in the server container's
environment. The set-up (the task's init container) logs in as the master user, which on
Aurora is `rds_superuser`, on every new task. An unqualified call or operator resolved through
a search path that includes `public` runs whatever the role planted there, with the master's
rights: `pg_catalog` has `pg_advisory_lock(bigint)` but no `(integer)`, and `=(oid, oid)` but
no `=(oid, regclass)`, so an exact-type function or operator in `public` wins (PostgreSQL docs,
"Protect Your Search Path"; "Function Type Resolution").
"""

from __future__ import annotations

import contextlib
import uuid

import psycopg2
import pytest

from mlflow_platform.local.platform import DB_USER
from tracking_server import database_role, entrypoint
from tracking_server import settings as names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# What the attacker plants: a function the set-up's lock call would pick, and an operator its
# catalog query would pick, each leaving a row that names the user it ran as.
PLANT = """
CREATE TABLE public.evidence (ran_as text);
GRANT INSERT ON public.evidence TO PUBLIC;
CREATE FUNCTION public.pg_advisory_lock(integer) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO public.evidence VALUES (current_user) $$;
CREATE FUNCTION public.planted_eq(oid, regclass) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO public.evidence VALUES (current_user) RETURNING $1 = $2::oid $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.planted_eq);
"""


@contextlib.contextmanager
def _platform_databases(local):
    """A tracking and auth database pair the master user owns, with the server's role set up
    in them as a first task would, dropped after."""
    role = f"platform_test_{uuid.uuid4().hex[:8]}"
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}" OWNER "{DB_USER}"')
    database = names.Database(**{**local.database().__dict__, "name": name, "username": role})
    try:
        entrypoint.setup_database(database)
        yield database
    finally:
        with contextlib.closing(local.superuser()) as admin, admin.cursor() as cursor:
            for database_name in (name, f"{name}_auth"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')


def _as_role(database: names.Database, statements: str) -> None:
    connection = psycopg2.connect(**database.connect_args())
    with contextlib.closing(connection), connection, connection.cursor() as cursor:
        cursor.execute(statements)


def _evidence(local, database: names.Database) -> list[str]:
    with contextlib.closing(local.superuser(database.name)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT ran_as FROM public.evidence")
        return [who for (who,) in cursor.fetchall()]


def test_a_planted_function_and_operator_stop_the_set_up_and_neither_runs(platform):
    local, _ = platform
    with _platform_databases(local) as database:
        _as_role(database, PLANT)
        with pytest.raises(SystemExit) as stopped:
            entrypoint.setup_database(database)
        message = str(stopped.value)
        assert "public.pg_advisory_lock(integer)" in message, message
        assert "public.=(oid,regclass)" in message, message
        assert f"owned by {database.username}" in message, message
        assert "shadow" in message and "DROP" in message, message
        assert _evidence(local, database) == []  # neither ran, as the master or anyone


def test_the_same_plant_in_the_auth_database_stops_the_set_up_there_too(platform):
    local, _ = platform
    with _platform_databases(local) as database:
        _as_role(names.Database(**{**database.__dict__, "name": database.auth_database}), PLANT)
        with pytest.raises(SystemExit) as stopped:
            entrypoint.setup_database(database)
        assert f"database {database.auth_database}" in str(stopped.value)
        with (
            contextlib.closing(local.superuser(database.auth_database)) as admin,
            admin.cursor() as cursor,
        ):
            cursor.execute("SELECT ran_as FROM public.evidence")
            assert cursor.fetchall() == []


def test_every_master_connection_resolves_names_in_pg_catalog_only(platform):
    local, _ = platform
    connection = database_role.connect(local.database(), master=True)
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        assert cursor.fetchone() == (database_role.MASTER_SEARCH_PATH,) == ("pg_catalog,pg_temp",)


def test_mlflows_own_functions_in_public_do_not_stop_the_set_up(platform):
    """MLflow's migrations create a trigger function of their own in `public`; it shadows
    nothing, and the platform's set-up runs on a migrated database as on every task start."""
    local, _ = platform
    database = local.database()
    with contextlib.closing(local.superuser(database.name)) as admin, admin.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public'"
        )
        assert cursor.fetchone()[0] >= 1
    entrypoint.setup_database(database)
