"""Team users: MLflow users that belong to a team stack, in a namespace no person can use.

A team's user is `team/<team>`. The platform's own API, for admins (the team-user function is
the only caller), creates, re-passwords and deletes such a user for the stack that owns it,
and keeps the owner (the stack's id) in a table of the auth database beside MLflow's users:
- a name already taken by a user this API did not create (a person, an admin) is refused, and
  that user is untouched;
- a team user owned by another stack is refused, for creation and deletion alike;
- MLflow's own user APIs (create, password, admin flag, delete) refuse every name under
  `team/`, so a team user cannot be made, changed or removed past its owner, and no person can
  take a name a team stack will want.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from tracking_server.settings import ROLE_ARN_RULE, TEAM_USER_PREFIX, role_key

PREFIX = TEAM_USER_PREFIX
TEAM = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
OWNER = re.compile(r"^arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:[0-9]{12}:stack/[^/]+/[^/]+$")
API = "/api/2.0/mlflow-platform/team-users/"
MLFLOW_USER_APIS = frozenset(
    f"/{prefix}/2.0/mlflow/users/{action}"
    for prefix in ("api", "ajax-api")
    for action in ("create", "create-ui", "update-password", "update-admin", "delete")
)

_METADATA = sa.MetaData()
OWNERS = sa.Table(
    "mlflow_platform_team_users",
    _METADATA,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(2048), nullable=False),
    # iam mode: the team role's principal_key, whose signed requests act as this user.
    sa.Column("principal", sa.String(512), nullable=True, unique=True),
)


class Refused(Exception):
    """A request this API will not carry out: 409 with the reason."""


def create_table(engine: sa.engine.Engine) -> None:
    """Run by the entrypoint under the migration lock, before any worker starts."""
    _METADATA.create_all(engine, checkfirst=True)


def username(team: str) -> str:
    return PREFIX + team


def user_for_principal(store: Any, key: str) -> str | None:
    with store.engine.connect() as db:
        return db.execute(
            sa.select(OWNERS.c.username).where(OWNERS.c.principal == key)
        ).scalar_one_or_none()


def ensure(
    store: Any, *, team: str, password: str, owner: str, principal: str | None = None
) -> dict[str, str]:
    """The stack's team user with this password (and, in iam mode, the role that acts as it):
    created, or updated if the stack owns it."""
    name = username(team)
    with store.engine.begin() as db:
        row = db.execute(
            sa.select(OWNERS.c.owner).where(OWNERS.c.username == name).with_for_update()
        ).first()
        if principal is not None and (row is None or row.owner == owner):
            # A stack's role moves to the stack's new user when its team is renamed; the old
            # user goes in CloudFormation's cleanup.
            db.execute(
                OWNERS.update()
                .where(OWNERS.c.principal == principal, OWNERS.c.owner == owner)
                .where(OWNERS.c.username != name)
                .values(principal=None)
            )
        if row is None:
            if store.has_user(name):
                raise Refused(f"team {team}: MLflow user {name} exists and was not created for "
                              "a team stack; it is left as it is")  # fmt: skip
            try:
                with db.begin_nested():
                    db.execute(
                        OWNERS.insert().values(username=name, owner=owner, principal=principal)
                    )
            except sa.exc.IntegrityError:
                raise Refused(f"team {team}: another stack is creating MLflow user {name}; "
                              "choose another team name") from None  # fmt: skip
        elif row.owner != owner:
            raise Refused(f"team {team}: MLflow user {name} belongs to stack {row.owner}; "
                          "choose another team name")  # fmt: skip
        else:
            try:
                with db.begin_nested():
                    db.execute(
                        OWNERS.update().where(OWNERS.c.username == name).values(principal=principal)
                    )
            except sa.exc.IntegrityError:
                raise Refused(
                    f"team {team}: role {principal} acts as another team's user"
                ) from None
        if store.has_user(name):
            store.update_user(name, password=password)
            result = "updated"
        else:
            store.create_user(name, password)
            result = "created"
    _forget_credentials(name)
    return {"username": name, "result": result}


def delete(store: Any, *, name: str, owner: str) -> dict[str, str]:
    """Delete the team user this stack owns; anyone else's is left as it is.

    Not an error: from the stack's side there is nothing of its own to delete (a Create that
    was refused, then rolled back), and its deletion must be able to finish."""
    with store.engine.begin() as db:
        row = db.execute(
            sa.select(OWNERS.c.owner).where(OWNERS.c.username == name).with_for_update()
        ).first()
        if row is None or row.owner != owner:
            kept = store.has_user(name)
            result = f"not this stack's user: {name} left as it is" if kept else "already deleted"
            return {"username": name, "result": result}
        if store.has_user(name):
            store.delete_user(name)
        db.execute(OWNERS.delete().where(OWNERS.c.username == name))
    _forget_credentials(name)
    return {"username": name, "result": "deleted"}


def _forget_credentials(name: str) -> None:
    """MLflow caches a signed-in user's credentials for `auth_cache_ttl_seconds`: forget this
    worker's, as MLflow's own user routes do. (Other tasks' caches expire on their own.)"""
    from mlflow.server import auth

    auth._invalidate_user_auth_cache(name)


def install(flask_app: Any) -> None:
    """The platform's team-user API and the namespace guard, after MLflow's authentication."""
    flask_app.add_url_rule(API + "ensure", "platform_team_user_ensure", _ensure, methods=["POST"])
    flask_app.add_url_rule(API + "delete", "platform_team_user_delete", _delete, methods=["POST"])
    flask_app.before_request(_guard_namespace)


def _error(status: int, code: str, message: str) -> Any:
    from flask import jsonify

    response = jsonify({"error_code": code, "message": message})
    response.status_code = status
    return response


def _guard_namespace() -> Any:
    from flask import request

    if request.path not in MLFLOW_USER_APIS:
        return None
    body = request.get_json(silent=True) if request.is_json else None
    names = [request.args.get("username"), request.form.get("username")]
    names.append(body.get("username") if isinstance(body, dict) else None)
    if any(isinstance(n, str) and n.startswith(PREFIX) for n in names):
        return _error(403, "PERMISSION_DENIED", f"user names under {PREFIX} belong to team "
                      "stacks; a team's user changes with its stack")  # fmt: skip
    return None


def _admin_request() -> tuple[Any, dict] | Any:
    """MLflow's auth store and the JSON body, or the error response for a non-admin."""
    from flask import request
    from mlflow.server import auth

    if not auth.sender_is_admin():
        return _error(403, "PERMISSION_DENIED", "team users are managed by the platform")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "INVALID_PARAMETER_VALUE", "the body must be a JSON object")
    owner = body.get("owner")
    if not isinstance(owner, str) or not OWNER.match(owner):
        return _error(400, "INVALID_PARAMETER_VALUE",
                      f"owner = {owner!r}: must be a CloudFormation stack ARN")  # fmt: skip
    return auth.store, body


def _ensure() -> Any:
    checked = _admin_request()
    if not isinstance(checked, tuple):
        return checked
    store, body = checked
    team, password, principal = body.get("team"), body.get("password"), body.get("principal")
    key = None
    if principal is not None:
        # The role's own ARN only: a session ARN names a role by name and anyone's session
        # name, so it proves nothing about which role the stack owns.
        key = role_key(principal) if isinstance(principal, str) else None
        if key is None:
            return _error(400, "INVALID_PARAMETER_VALUE",
                          f"principal = {principal!r}: {ROLE_ARN_RULE}")  # fmt: skip
        if key.split(":")[0] != body["owner"].split(":")[4]:
            return _error(400, "INVALID_PARAMETER_VALUE", f"principal = {principal!r}: must "
                          f"be a role of the owner stack's account ({body['owner']})")  # fmt: skip
    if not isinstance(team, str) or not TEAM.match(team):
        return _error(400, "INVALID_PARAMETER_VALUE",
                      f"team = {team!r}: must match {TEAM.pattern}")  # fmt: skip
    if not isinstance(password, str) or len(password) < 12:
        return _error(400, "INVALID_PARAMETER_VALUE", "password: at least 12 characters")
    try:
        return ensure(store, team=team, password=password, owner=body["owner"], principal=key)
    except Refused as refused:
        return _error(409, "RESOURCE_ALREADY_EXISTS", str(refused))


def _delete() -> Any:
    checked = _admin_request()
    if not isinstance(checked, tuple):
        return checked
    store, body = checked
    name = body.get("username")
    if not isinstance(name, str) or not name.startswith(PREFIX):
        return _error(400, "INVALID_PARAMETER_VALUE",
                      f"username = {name!r}: must be a team user ({PREFIX}<team>)")  # fmt: skip
    return delete(store, name=name, owner=body["owner"])
