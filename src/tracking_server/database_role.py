"""The server's own database role, created and kept in step with the master user.

The master credential (RDS-managed, rotated every 7 days) is used here and nowhere else. The
server, its migrations included, connects as its own role, whose password is a secret of its
own that no rotation touches: a rotation of the master password changes nothing for a running
task, and a task that starts with a master password read before a rotation still starts (the
role exists and is in step from an earlier start, so this setup is skipped with a warning).

What the role may do, and why that is enough for MLflow:
- LOGIN, and no other attribute (not a superuser, cannot create databases or roles, replicate or
  bypass row security), no connection limit or expiry, no role settings; it is a member of no
  role. A role of that name that already exists is brought to this: its memberships are revoked
  and its settings reset (`SET role = ...` in them would make its sessions another role's), or
  set-up stops saying what the master user could not take away.
- CONNECT and TEMPORARY on the tracking and auth databases, which PUBLIC no longer has there
  (the master user keeps them as the owner): the bulk metric store stages rows in a temporary
  table. PUBLIC's CONNECT and TEMPORARY on the `postgres` database are revoked too when the
  master user owns it; otherwise (another owner) the role may still connect there and make
  temporary tables, though no MLflow data is kept there.
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
ATTRIBUTES = "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity'"
FORBIDDEN = ("rolsuper", "rolreplication", "rolbypassrls")
SCHEMA = "public"
# Relations in the schema that the master user owns, as `ALTER <kind>` names them. Sequences
# that belong to a table column move with their table.
_RELATIONS = """
SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE n.nspname OPERATOR(pg_catalog.=) %(schema)s
  AND c.relowner OPERATOR(pg_catalog.=) (
      SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %(master)s)
  AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'S']::pg_catalog."char"[])
  AND NOT (c.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid OPERATOR(pg_catalog.=)
            'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
        AND d.objid OPERATOR(pg_catalog.=) c.oid
        AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::pg_catalog."char"[])))
ORDER BY c.relkind, c.relname
"""
_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
_TYPES = """
SELECT t.typname, t.typtype FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
WHERE n.nspname OPERATOR(pg_catalog.=) %(schema)s
  AND t.typowner OPERATOR(pg_catalog.=) (
      SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %(master)s)
  AND t.typtype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'd']::pg_catalog."char"[])
ORDER BY t.typname
"""
# MLflow's migrations create trigger functions too (prevent_secrets_aad_mutation).
_FUNCTIONS = """
SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
WHERE n.nspname OPERATOR(pg_catalog.=) %(schema)s
  AND p.proowner OPERATOR(pg_catalog.=) (
      SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %(master)s)
ORDER BY 1
"""
_MEMBERSHIPS = """
SELECT r.rolname FROM pg_catalog.pg_auth_members m
JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.roleid
WHERE m.member OPERATOR(pg_catalog.=) (
    SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s)
ORDER BY 1
"""
_SETTINGS = """
SELECT COALESCE(d.datname, ''), s.setconfig FROM pg_catalog.pg_db_role_setting s
LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.setdatabase
WHERE s.setrole OPERATOR(pg_catalog.=) (
    SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s)
  AND s.setconfig IS NOT NULL
ORDER BY 1
"""
# Functions and operators outside pg_catalog, not the master user's, named as one of
# pg_catalog's: with `public` on a search path, an exact-type match there wins over pg_catalog's
# (PostgreSQL's function and operator type resolution), and runs as whoever calls it.
_SHADOWS = """
SELECT 'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text,
       pg_catalog.pg_get_userbyid(p.proowner), 'FUNCTION'
FROM pg_catalog.pg_proc p
WHERE p.pronamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid
  AND p.proowner OPERATOR(pg_catalog.<>) (
      SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %(master)s)
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_proc c
      WHERE c.pronamespace OPERATOR(pg_catalog.=)
            'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid
        AND c.proname OPERATOR(pg_catalog.=) p.proname)
UNION ALL
SELECT 'operator ' OPERATOR(pg_catalog.||) o.oid::pg_catalog.regoperator::pg_catalog.text,
       pg_catalog.pg_get_userbyid(o.oprowner), 'OPERATOR'
FROM pg_catalog.pg_operator o
WHERE o.oprnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid
  AND o.oprowner OPERATOR(pg_catalog.<>) (
      SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %(master)s)
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_operator c
      WHERE c.oprnamespace OPERATOR(pg_catalog.=)
            'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid
        AND c.oprname OPERATOR(pg_catalog.=) o.oprname)
ORDER BY 1
"""
# Every master connection: names resolve in pg_catalog alone (pg_temp, listed last, is never
# searched for functions or operators), so nothing another role created can be picked up.
MASTER_SEARCH_PATH = "pg_catalog,pg_temp"
# The maintenance database, which every cluster has; PUBLIC may connect to it by default.
MAINTENANCE_DATABASE = "postgres"


class RoleSetupError(Exception):
    pass


def connect(database: Database, name: str | None = None, *, master: bool) -> Connection:
    """A master connection resolves names in pg_catalog alone and is refused (RoleSetupError)
    while the database holds a function or operator that could stand in for pg_catalog's."""
    args = database.connect_args(name, master=master)
    if master:
        args["options"] = f"-c search_path={MASTER_SEARCH_PATH}"
    connection = psycopg2.connect(**args)
    connection.autocommit = True
    if master:
        try:
            _refuse_shadows(connection, args["dbname"], args["user"])
        except BaseException:
            connection.close()
            raise
    return connection


def _refuse_shadows(connection: Connection, name: str, master_user: str) -> None:
    """CVE-2018-1058's class: the server's role may CREATE in `public`, and a master session
    that ever resolved a name there would run the role's code as the master user. The search
    path above already keeps them out; an object like that has no use but this attack, so it
    stops the set-up, named, for a person to look at and drop."""
    with connection.cursor() as cursor:
        cursor.execute(_SHADOWS, {"master": master_user})
        found = cursor.fetchall()
    if found:
        named = "; ".join(f"{what} owned by {owner}" for what, owner, _ in found)
        drops = "; ".join(f"DROP {kind} {what.split(' ', 1)[1]}" for what, _, kind in found)
        raise RoleSetupError(
            f"database {name} holds what could shadow pg_catalog's own names: {named}. The "
            f"set-up stops before anything runs as {master_user}; see who made them, then, as "
            f"{master_user}: {drops}"
        )


def keep_in_step(database: Database, auth_database: str) -> list[str]:
    """Create or update the role, its grants and the auth database; returns what was done."""
    role = database.username
    assert role and database.master_username and database.password
    with closing(connect(database, master=True)) as master:
        step = "checking the role"
        try:
            with master.cursor() as cursor:
                done = _keep_role_in_step(cursor, database, auth_database, master)
            for name in (database.name, auth_database):
                assert name
                step = f"granting on database {name}"
                with closing(connect(database, name, master=True)) as on_database:
                    done += _grant(on_database, name, role, database.master_username)
            step = f"revoking PUBLIC's access to database {MAINTENANCE_DATABASE}"
            with master.cursor() as cursor:
                done += _close_maintenance_database(cursor, database.master_username)
        except psycopg2.Error as error:
            reason = (error.pgerror or str(error)).strip().splitlines()[0]
            raise RoleSetupError(
                f"setting up database role {role} as {database.master_username} failed "
                f"({step}): {reason}"
            ) from None
    return done


def _keep_role_in_step(
    cursor: psycopg2.extensions.cursor, database: Database, auth_database: str, master: Connection
) -> list[str]:
    role = database.username
    assert role and database.password
    role_id = sql.Identifier(role)
    done: list[str] = []
    cursor.execute(
        f"SELECT {', '.join(FORBIDDEN)} FROM pg_catalog.pg_roles"
        " WHERE rolname OPERATOR(pg_catalog.=) %s",
        (role,),
    )
    found = cursor.fetchone()
    exists = found is not None
    if found and any(found):
        granted = [name for name, value in zip(FORBIDDEN, found, strict=True) if value]
        raise RoleSetupError(
            f"database role {role} has {', '.join(granted)}: the server's role must have "
            "none of these; remove them (as a superuser) or drop the role"
        )
    if exists:
        done += _strip(cursor, role)
    verifier = encrypt_password(database.password, role, master, "scram-sha-256")
    statement = "ALTER ROLE {} WITH " if exists else "CREATE ROLE {} WITH "
    cursor.execute(sql.SQL(statement + ATTRIBUTES + " PASSWORD %s").format(role_id), (verifier,))
    done.append(f"{'updated' if exists else 'created'} role {role}")
    cursor.execute(
        "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) %s",
        (auth_database,),
    )
    if cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(auth_database)))
        done.append(f"created database {auth_database}")
    return done


def _strip(cursor: psycopg2.extensions.cursor, role: str) -> list[str]:
    """Take from an existing role what the server's role must not have: memberships (another
    role's privileges) and settings (`SET role = ...` would make its sessions another role's)."""
    role_id = sql.Identifier(role)
    done: list[str] = []
    cursor.execute(_MEMBERSHIPS, (role,))
    memberships = [name for (name,) in cursor.fetchall()]
    kept: list[str] = []
    for name in memberships:
        try:
            cursor.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(name), role_id))
        except psycopg2.Error:
            kept.append(name)
    cursor.execute(_MEMBERSHIPS, (role,))
    kept = sorted(set(kept) | {name for (name,) in cursor.fetchall()})
    if kept:
        raise RoleSetupError(
            f"database role {role} is a member of {', '.join(kept)}, which the master user "
            "cannot revoke: the server's role must be a member of no role; revoke them (as a "
            "superuser or their grantor) or drop the role"
        )
    if memberships:
        done.append(f"revoked {', '.join(memberships)} from role {role}")
    cursor.execute(_SETTINGS, (role,))
    settings = cursor.fetchall()
    for database_name, _ in settings:
        if database_name:
            cursor.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                    role_id, sql.Identifier(database_name)
                )
            )
        else:
            cursor.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(role_id))
    cursor.execute(_SETTINGS, (role,))
    left = cursor.fetchall()
    if left:
        described = "; ".join(
            f"{', '.join(config)} ({f'in database {name}' if name else 'everywhere'})"
            for name, config in left
        )
        raise RoleSetupError(
            f"database role {role} has settings the master user cannot reset: {described}; "
            "reset them (as a superuser) or drop the role"
        )
    if settings:
        done.append(f"reset the settings of role {role}")
    return done


def _close_maintenance_database(cursor: psycopg2.extensions.cursor, master_user: str) -> list[str]:
    """PUBLIC may connect to every database by default: the maintenance one too, where the
    master user owns it (otherwise it may not revoke there)."""
    cursor.execute(
        "SELECT pg_catalog.pg_get_userbyid(datdba) OPERATOR(pg_catalog.=) %s,"
        " pg_catalog.has_database_privilege('public', oid, 'CONNECT')"
        " OR pg_catalog.has_database_privilege('public', oid, 'TEMPORARY')"
        " FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) %s",
        (master_user, MAINTENANCE_DATABASE),
    )
    found = cursor.fetchone()
    if found is None or not found[1]:
        return []
    if not found[0]:
        return [
            f"left PUBLIC's CONNECT on database {MAINTENANCE_DATABASE}: {master_user} does not "
            "own it"
        ]
    cursor.execute(
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(MAINTENANCE_DATABASE)
        )
    )
    return [f"revoked PUBLIC's CONNECT and TEMPORARY on database {MAINTENANCE_DATABASE}"]


def _grant(master: Connection, name: str, role: str, master_user: str) -> list[str]:
    done: list[str] = []
    with master.cursor() as cursor:
        role_id = sql.Identifier(role)
        database_id = sql.Identifier(name)
        # PUBLIC's default CONNECT and TEMPORARY would let any role in; the master user keeps
        # them (the owner's, and granted in case it is not the owner).
        cursor.execute(
            sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(database_id)
        )
        cursor.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}, CURRENT_USER").format(
                database_id, role_id
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
            # Composed, not formatted: a name may hold braces, which format() would parse.
            cursor.execute(
                sql.Composed(
                    [sql.SQL("ALTER FUNCTION "), sql.SQL(signature), sql.SQL(" OWNER TO "), role_id]
                )
            )
        count = len(relations) + len(types) + len(functions)
        done.append(f"{name}: handed {count} objects over to {role}")
    return done


def is_refused_login(error: BaseException) -> bool:
    """A connection refused for its credentials (PostgreSQL's words, which RDS keeps)."""
    return "password authentication failed" in str(error)
