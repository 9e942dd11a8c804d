"""An `iam` platform with two teams behind a team API stand-in, for a test module of its own.

The same set-up as tests/test_iam_mode.py: the local platform in iam mode, each team
registered by the team-user function's deployed code for its stack and role, and the SigV4
gateway (tests/sigv4_gateway.py) that verifies each signature and overwrites the caller
header, as a team API does. A module that uses `iam_teams` starts its own platform (~15 s).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from function_harness import Stack, invoke

from mlflow_platform.local.platform import LocalPlatform
from tracking_server import settings

ACCOUNT = "123456789012"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform/MlflowAdmins"
ROLES = {
    "a": f"arn:aws:iam::{ACCOUNT}:role/team-a-TeamRole-AAA",
    "b": f"arn:aws:iam::{ACCOUNT}:role/team-b-TeamRole-BBB",
}
KEYS = {
    "a": ("AKIAEXAMPLESPELLA001", "team-a-secret-key"),
    "b": ("AKIAEXAMPLESPELLB002", "team-b-secret-key"),
}


def session_arn(role: str) -> str:
    """What `$context.identity.userArn` is for a SageMaker job running as `role`."""
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/SageMaker"


@dataclass(frozen=True)
class IamTeams:
    details: dict
    """The platform's connection details (the admin's credentials among them)."""
    gateway_url: str
    users: dict[str, str]
    """Team ("a", "b") to its MLflow user."""
    keys: dict[str, tuple[str, str]]
    """Team to the access key and secret its requests are signed with."""


@pytest.fixture(scope="module")
def iam_teams():
    from sigv4_gateway import Caller, Gateway, port_of

    from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME

    state = Path(tempfile.mkdtemp(prefix="mlflow-iam-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    monkeypatch = pytest.MonkeyPatch()
    gateway = None
    try:
        details = local.up(
            server_env={settings.AUTH_MODE: "iam", settings.ADMIN_PRINCIPALS: ADMIN_ROLE}
        )
        admin = {"username": details["username"], "password": details["password"]}
        suffix = str(time.time_ns() % 10**6)
        users = {}
        for team, role in ROLES.items():
            stack_id = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/team-{team}/{team * 8}"
            users[team] = f"team/{team}{suffix}"
            response = invoke(
                monkeypatch,
                tracking_url=details["tracking_uri"],
                admin=admin,
                team_secret={"username": users[team], "password": "s" * 24},
                request_type="Create",
                stack=Stack(stack_id=stack_id, roles=[role]),
                team=f"{team}{suffix}",
                principal=role,
            )
            assert response is not None and response["Status"] == "SUCCESS", response
        monkeypatch.undo()  # the function's AWS clients were stubbed for these calls only
        gateway = Gateway(
            target_port=port_of(details["tracking_uri"]),
            host=LOAD_BALANCER_DNS_NAME,
            callers={
                key: Caller(secret, session_arn(ROLES[team]))
                for team, (key, secret) in KEYS.items()
            },
        )
        yield IamTeams(details=details, gateway_url=gateway.url, users=users, keys=KEYS)
    finally:
        if gateway is not None:
            gateway.close()
        monkeypatch.undo()
        local.down()
        shutil.rmtree(state, ignore_errors=True)
