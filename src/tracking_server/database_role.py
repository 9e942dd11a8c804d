"""The server's own database role, created and kept in step with the master user.

The master credential (RDS-managed, rotated every 7 days) is used here and nowhere else. The
server, its migrations included, connects as its own role, whose password is a secret of its
own that no rotation touches: a rotation of the master password changes nothing for a running
task, and a task that starts with a master password read before a rotation still starts (the
role exists and is in step from an earlier start, so this setup is skipped with a warning).

What the role may do, and why that is enough for MLflow:
- LOGIN, and no other attribute (not a superuser, cannot create databases or roles, replicate or
  bypass row security); it is a member of no role.
- CONNECT and TEMPORARY on the tracking and auth databases: the bulk metric store stages rows
  in a temporary table.
- USAGE and CREATE on their `public` schemas: MLflow's migrations create tables and indexes.
- It owns MLflow's tables: its migrations alter them, which only an owner may. Migrations run
  as this role, so what they create is its own; tables that an earlier version of the platform
  created as the master user are handed over to it here.
The databases themselves stay the master user's: the role cannot drop them.

The password is sent as a SCRAM verifier computed on this side (libpq's PQencryptPasswordConn),
so it never appears in the server's statement log.
"""

from __future__ import annotations

from contextlib import closing

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import encrypt_password

from tracking_server.settings import Database

# What the master user may set (PostgreSQL lets only a superuser name SUPERUSER, REPLICATION
# or BYPASSRLS in ALTER ROLE); a role that has any of those is refused instead.
ATTRIBUTES = "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT"
FORBIDDEN = ("rolsuper", "rolreplication", "rolbypassrls")
SCHEMA = "public"
# Relations in the schema that the master user owns, as `ALTER <kind>` names them. Sequences
# that belong to a table column move with their table.
_RELATIONS = """
SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = %(master)s)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
        AND d.deptype IN ('a', 'i')))
ORDER BY c.relkind, c.relname
"""
_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
_TYPES = """
SELECT t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %(schema)s AND t.typowner = (SELECT oid FROM pg_roles WHERE rolname = %(master)s)
  AND t.typtype IN ('e', 'd') ORDER BY t.typname
"""
# MLflow's migrations create trigger functions too (prevent_secrets_aad_mutation).
_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = %(master)s)
ORDER BY 1
"""


class RoleSetupError(Exception):
    pass


def connect(database: Database, name: str | None = None, *, master: bool) -> Connection:
    connection = psycopg2.connect(**database.connect_args(name, master=master))
    connection.autocommit = True
    return connection


def keep_in_step(database: Database, auth_database: str) -> list[str]:
    """Create or update the role, its grants and the auth database; returns what was done."""
    role = database.username
    assert role and database.master_username and database.password
    done: list[str] = []
    with closing(connect(database, master=True)) as master, master.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(FORBIDDEN)} FROM pg_roles WHERE rolname = %s", (role,))
        found = cursor.fetchone()
        exists = found is not None
        if found and any(found):
            granted = [name for name, value in zip(FORBIDDEN, found, strict=True) if value]
            raise RoleSetupError(
                f"database role {role} has {', '.join(granted)}: the server's role must have "
                "none of these; remove them (as a superuser) or drop the role"
            )
        verifier = encrypt_password(database.password, role, master, "scram-sha-256")
        statement = "ALTER ROLE {} WITH " if exists else "CREATE ROLE {} WITH "
        cursor.execute(
            sql.SQL(statement + ATTRIBUTES + " PASSWORD %s").format(sql.Identifier(role)),
            (verifier,),
        )
        done.append(f"{'updated' if exists else 'created'} role {role}")
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (auth_database,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(auth_database)))
            done.append(f"created database {auth_database}")
    for name in (database.name, auth_database):
        assert name
        with closing(connect(database, name, master=True)) as master:
            done += _grant(master, name, role, database.master_username)
    return done


def _grant(master: Connection, name: str, role: str, master_user: str) -> list[str]:
    done: list[str] = []
    with master.cursor() as cursor:
        role_id = sql.Identifier(role)
        cursor.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(name), role_id
            )
        )
        cursor.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
                sql.Identifier(SCHEMA), role_id
            )
        )
        names = {"schema": SCHEMA, "master": master_user}
        cursor.execute(_RELATIONS, names)
        relations = cursor.fetchall()
        cursor.execute(_TYPES, names)
        types = cursor.fetchall()
        cursor.execute(_FUNCTIONS, names)
        functions = [signature for (signature,) in cursor.fetchall()]
        if not relations and not types and not functions:
            return done
        # Handing an object over needs membership in the new owner (PostgreSQL: ALTER ... OWNER).
        cursor.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role_id))
        for relation, kind in relations:
            cursor.execute(
                sql.SQL("ALTER " + _KINDS[kind] + " {}.{} OWNER TO {}").format(
                    sql.Identifier(SCHEMA), sql.Identifier(relation), role_id
                )
            )
        for type_name, kind in types:
            cursor.execute(
                sql.SQL(
                    ("ALTER TYPE" if kind == "e" else "ALTER DOMAIN") + " {}.{} OWNER TO {}"
                ).format(sql.Identifier(SCHEMA), sql.Identifier(type_name), role_id)
            )
        for signature in functions:  # regprocedure's text: schema-qualified, quoted as needed
            cursor.execute(sql.SQL("ALTER FUNCTION " + signature + " OWNER TO {}").format(role_id))
        count = len(relations) + len(types) + len(functions)
        done.append(f"{name}: handed {count} objects over to {role}")
    return done


def is_refused_login(error: BaseException) -> bool:
    """A connection refused for its credentials (PostgreSQL's words, which RDS keeps)."""
    return "password authentication failed" in str(error)
