"""`iam` mode's caller: the identity API Gateway verified, as an MLflow user.

SigV4 is checked by API Gateway (the routes' AWS_IAM authorization). Each team API overwrites
the CALLER_HEADER on every request with `$context.identity.userArn`, the verified caller, so
what a client sends in that header never arrives. MLflow's auth then runs as in basic mode
(`authorization_function` in its auth config): per-experiment permissions, NO_PERMISSIONS by
default. A caller is:
- the team user whose stack registered that IAM role (team_users.py), or
- the admin, for a principal in MLFLOW_PLATFORM_ADMIN_PRINCIPALS;
anyone else is refused (403). A request without the header did not come through a team API:
the load balancer admits only the VPC link and the team-user function, which signs in as the
admin with Basic credentials; nothing else may sign in that way.
"""

from __future__ import annotations

import os
from typing import Any

from tracking_server.settings import ADMIN_PRINCIPALS, CALLER_HEADER, principal_key

AUTHORIZATION_FUNCTION = "tracking_server.identity:authenticate_request"


def from_team_api(headers: Any, authorization_function: str) -> bool:
    """An iam-mode request through a team API: its Authorization header is the client's SigV4
    signature, which API Gateway verified and passes on, not an MLflow credential."""
    return authorization_function == AUTHORIZATION_FUNCTION and bool(headers.get(CALLER_HEADER))


def _admin_keys() -> frozenset[str]:
    keys = (principal_key(p.strip()) for p in os.environ.get(ADMIN_PRINCIPALS, "").split(","))
    return frozenset(k for k in keys if k)


def _forbidden(message: str) -> Any:
    from flask import make_response

    response = make_response(message + "\n", 403)
    response.mimetype = "text/plain"
    return response


def authenticate_request() -> Any:
    """MLflow's `authorization_function`: an Authorization naming the user, or a response."""
    from flask import request
    from mlflow.server import auth
    from werkzeug.datastructures import Authorization

    from tracking_server import team_users

    caller = request.headers.get(CALLER_HEADER, "")
    if caller:
        key = principal_key(caller) if "," not in caller else None  # one caller, one value
        if key is None:
            return _forbidden(f"caller {caller!r} is not an IAM role or user")
        if key in _admin_keys():
            username = auth.auth_config.admin_username
        else:
            username = team_users.user_for_principal(auth.store, key)
        if username is None:
            return _forbidden(
                f"caller {caller} has no MLflow user: a team's role gets one with its team "
                "stack; admins are listed in the environment"
            )
        return Authorization("basic", {"username": username, "password": ""})
    signed_in = auth.authenticate_request_basic_auth()
    if (
        isinstance(signed_in, Authorization)
        and not auth.store.get_user(signed_in.username or "").is_admin
    ):
        return _forbidden("only requests through a team API, or the admin, are served")
    return signed_in
