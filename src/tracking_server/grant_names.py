"""No name a client chooses becomes a grant pattern.

MLflow's auth app keys the grants on registered models, prompts, scorers and the other
registries by the resource's name, and its grant matching (`permissions.matches`) reads a
grant on `*` as a grant on every resource of the type. The creator of a resource gets MANAGE
on its name, so a team that could name a model `*` held MANAGE on every team's models
(MLflow 3.18 refuses that one name for models and prompts; this holds whatever MLflow's
version). Three layers:

- `refuse_pattern_names`: a create or rename whose grant key would be a pattern is refused
  (400, naming the field, the value and the rule) before MLflow's handler runs, for admins too.
  The routes are found through MLflow's own endpoint table, and the request is read with
  MLflow's own parser, so the guard and the handler read the same name.
- `guard_grants`: the auth store refuses to write a pattern grant on a client-named type for a
  non-admin user, unless an admin asked for it: whatever route a later MLflow adds.
- `remove_pattern_grants`: at every start, MANAGE grants a non-admin user holds through its own
  role on a pattern of a client-named type are deleted and logged: the grant a creator got for
  naming a resource `*` (the damage an older version let in). An admin's deliberate READ, EDIT,
  USE or DENY on `*` stays (MLflow records no grantor; MANAGE on every model is no grant an
  admin gives a user: make that user an admin).

Which types are client-named is derived from MLflow's `permissions.TYPE` (the types whose
grants take both a wildcard and an id); `GRANT_KEYS` says, for each, where its key comes from,
and a test fails when MLflow adds a type that it does not name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

# Every type whose grants may name one resource, and where that name comes from.
GRANT_KEYS: dict[str, str] = {
    "experiment": "the experiment id, which the server assigns",
    "registered_model": "the model's name: registered-models/create `name`, rename `new_name`",
    "prompt": "the prompt's name: registered-models/create `name`, rename `new_name`",
    "scorer": "`<experiment id>/<name>`: scorers/register `experiment_id` and `name`",
    "gateway_secret": "the secret's id, which the server assigns",
    "gateway_endpoint": "the endpoint's id, which the server assigns",
    "gateway_model_definition": "the model definition's id, which the server assigns",
    "mcp_server": "the server's name, which MLflow allows only letters, digits, '.', '-' in",
    "skill": "`[@<organization>/]<name>`, a name MLflow allows only [a-z0-9-] in",
}
CLIENT_NAMED = frozenset(
    {"registered_model", "prompt", "scorer", "mcp_server", "skill"}
)  # the rest are keyed by ids the server assigns
# A resource id no name can be: a key that matches it is a pattern.
_PROBE = "\x00mlflow-platform-probe"


def grantable_types() -> frozenset[str]:
    """The types MLflow keys grants on one resource for (both grains), from MLflow itself."""
    from mlflow.server.auth import permissions

    return frozenset(
        kind
        for kind, grains in permissions.TYPE.items()
        if permissions.PatternKind.ID in grains and permissions.PatternKind.WILDCARD in grains
    )


def is_pattern(resource_type: str, key: str) -> bool:
    """Would a grant keyed `key` apply to a resource of another name?"""
    from mlflow.server.auth import permissions

    return key == "*" or permissions.matches(key, resource_type, _PROBE)


def _refusal(field: str, value: str, resource_type: str) -> Any:
    from flask import jsonify

    kind = resource_type.replace("_", " ")
    response = jsonify(
        {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": (
                f"{field} = {value!r}: MLflow keys {kind} grants by name and reads {value!r} "
                f"as a wildcard, so its creator would manage every {kind}; choose another name"
            ),
        }
    )
    response.status_code = 400
    return response


Named = list[tuple[str, str, str, str]]  # (field, name, grant key, resource type)


def _named_requests() -> dict[str, tuple[Any, Callable[[Any], Named]]]:
    """Path -> (MLflow's request message, the grant keys it would create, and of which type)."""
    from mlflow.protos.model_registry_pb2 import CreateRegisteredModel, RenameRegisteredModel
    from mlflow.protos.service_pb2 import RegisterScorer
    from mlflow.server.auth import permissions
    from mlflow.server.handlers import get_endpoints

    # A registered model's name keys its grants as a model or, once tagged, as a prompt.
    def model(message: Any) -> Named:
        return [
            ("name", message.name, message.name, kind) for kind in ("registered_model", "prompt")
        ]

    def rename(message: Any) -> Named:
        new = message.new_name
        return [("new_name", new, new, kind) for kind in ("registered_model", "prompt")]

    def scorer(message: Any) -> Named:
        key = permissions.canonical_resource_id("scorer", f"{message.experiment_id}/{message.name}")
        return [
            ("name", message.name, message.name, "scorer"),
            ("name", message.name, key, "scorer"),
        ]

    keys: dict[Any, Callable[[Any], Named]] = {
        CreateRegisteredModel: model,
        RenameRegisteredModel: rename,
        RegisterScorer: scorer,
    }
    return {
        path: (request_class, keys[request_class])
        for path, request_class, _ in get_endpoints(lambda request_class: request_class)
        if request_class in keys
    }


def install(flask_app: Any) -> None:
    """The request guard just before MLflow's own checks, so that it answers whatever MLflow's
    version does (the rule is public: a refusal before sign-in tells nothing), and the store
    guard on MLflow's auth store."""
    from mlflow.server import auth

    routes = _named_requests()

    def refuse_pattern_names() -> Any:
        from flask import request
        from mlflow.server.handlers import _get_request_message

        found = routes.get(request.path)
        if found is None or request.method != "POST":
            return None
        request_class, keys_of = found
        try:
            message = _get_request_message(request_class())
        except Exception:
            return None  # MLflow's handler answers a malformed request as it does
        for field, name, key, resource_type in keys_of(message):
            if is_pattern(resource_type, key) or is_pattern(resource_type, name):
                return _refusal(field, name, resource_type)
        return None

    hooks = flask_app.before_request_funcs.setdefault(None, [])
    hooks.insert(hooks.index(auth._before_request), refuse_pattern_names)
    guard_grants(auth.store)


def _sender_is_admin() -> bool:
    """An admin's own request (a deliberate wildcard grant); False outside a Flask request."""
    from flask import has_request_context
    from mlflow.server import auth

    if not has_request_context():
        return False
    try:
        return bool(auth.sender_is_admin())
    except Exception:
        return False


class PatternGrantRefused(Exception):
    pass


def guard_grants(store: Any) -> None:
    """Wrap the auth store's per-user grant writes: a pattern key on a client-named type for
    a non-admin user is refused unless an admin sent the request."""

    def check(username: str, resource_type: str, key: str) -> None:
        if (
            resource_type in CLIENT_NAMED
            and is_pattern(resource_type, key)
            and not store.get_user(username).is_admin
            and not _sender_is_admin()
        ):
            raise PatternGrantRefused(
                f"grant on {resource_type} {key!r} for user {username}: a pattern, which only "
                "an admin may grant"
            )

    for name in ("grant_user_permission", "grant_user_resource_permission"):
        original = getattr(store, name, None)
        if original is None or getattr(original, "_pattern_guarded", False):
            continue

        @functools.wraps(original)
        def single(username, resource_type, resource_pattern, *args, _original=original, **kw):
            check(username, resource_type, resource_pattern)
            return _original(username, resource_type, resource_pattern, *args, **kw)

        single._pattern_guarded = True  # type: ignore[attr-defined]
        setattr(store, name, single)

    batch = getattr(store, "grant_user_permissions", None)
    if batch is not None and not getattr(batch, "_pattern_guarded", False):

        @functools.wraps(batch)
        def many(username, grants, *args, _original=batch, **kw):
            grants = list(grants)
            for resource_type, resource_pattern, _ in grants:
                check(username, resource_type, resource_pattern)
            return _original(username, grants, *args, **kw)

        many._pattern_guarded = True  # type: ignore[attr-defined]
        store.grant_user_permissions = many


_HELD = """
SELECT rp.id, u.username, r.workspace, rp.resource_type, rp.resource_pattern, rp.permission
FROM role_permissions rp
JOIN roles r ON r.id = rp.role_id
JOIN user_role_assignments a ON a.role_id = r.id
JOIN users u ON u.id = a.user_id
WHERE u.is_admin = false AND r.name = :synthetic_prefix || u.id || :synthetic_suffix
ORDER BY rp.id
"""


def remove_pattern_grants(engine: sa.engine.Engine, log: Callable[[str], None]) -> list[dict]:
    """Delete MANAGE pattern grants on client-named types that non-admin users hold through
    their own (per-user) roles; other permissions, and roles an admin made, are an admin's
    choice and stay. Returns what went."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    removed: list[dict] = []
    with engine.begin() as db:
        if not sa.inspect(db).has_table("role_permissions"):
            return removed
        rows = db.execute(
            sa.text(_HELD),
            {
                "synthetic_prefix": SqlAlchemyStore._SYNTHETIC_ROLE_PREFIX,
                "synthetic_suffix": SqlAlchemyStore._SYNTHETIC_ROLE_SUFFIX,
            },
        ).all()
        for row in rows:
            if (
                row.resource_type in CLIENT_NAMED
                and row.permission == "MANAGE"
                and is_pattern(row.resource_type, row.resource_pattern)
            ):
                db.execute(sa.text("DELETE FROM role_permissions WHERE id = :id"), {"id": row.id})
                grant = {
                    "user": row.username,
                    "workspace": row.workspace,
                    "resource_type": row.resource_type,
                    "resource_pattern": row.resource_pattern,
                    "permission": row.permission,
                }
                removed.append(grant)
                log(f"removed a pattern grant a non-admin user held: {json.dumps(grant)}")
    return removed
