"""Runs the team-user function as Lambda receives it, with AWS's side played by botocore.

The code is the inline code of the synthesized environment template (what CloudFormation
deploys), loaded as a module. Secrets Manager and CloudFormation answer through botocore's
Stubber, so every request is checked against the service models; CloudFormation's pre-signed
response URL is an HTTP server on loopback that records what the function PUTs there.
"""

from __future__ import annotations

import http.server
import json
import threading
import types
from dataclasses import dataclass, field

import boto3
from botocore.stub import Stubber

from environment_template.team_users import HANDLER_SOURCE, inline_code

ADMIN_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin"
STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/team-fraud/1a2b3c"
TEAM_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlflow-platform/t/teams/fraud"
LOGICAL_ID = "TeamUserUser1B2C3D4E"
ROLE = "arn:aws:iam::123456789012:role/team-fraud-TeamRole-1A2B3C"
TIME = "2026-11-27T00:00:00Z"


class ResponseCatcher:
    """Records CloudFormation custom-resource responses."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/response"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def deployed_function() -> types.ModuleType:
    """The function's inline code, as the template carries it, as a module."""
    module = types.ModuleType("team_users_function_deployed")
    exec(compile(inline_code(HANDLER_SOURCE), "index.py", "exec"), module.__dict__)
    return module


@dataclass
class Stack:
    """What CloudFormation says of the team's stack when the function asks."""

    stack_id: str = STACK
    user_status: str = "CREATE_IN_PROGRESS"
    user_physical_id: str | None = None
    secrets: list[str] = field(default_factory=lambda: [TEAM_ARN])
    roles: list[str] = field(default_factory=lambda: [ROLE])
    exists: bool = True

    def resources(self) -> list[dict]:
        name = self.stack_id.split("/")[1]
        user = {"StackName": name, "StackId": self.stack_id, "LogicalResourceId": LOGICAL_ID,
                "ResourceType": "Custom::MlflowTeamUser", "Timestamp": TIME,
                "ResourceStatus": self.user_status}  # fmt: skip
        if self.user_physical_id:
            user["PhysicalResourceId"] = self.user_physical_id
        owned = [("AWS::SecretsManager::Secret", arn) for arn in self.secrets] + [
            ("AWS::IAM::Role", arn.rsplit("/", 1)[-1]) for arn in self.roles
        ]  # a role's physical id is its name
        return [user] + [
            {
                "StackName": name,
                "StackId": self.stack_id,
                "LogicalResourceId": f"Owned{i}",
                "PhysicalResourceId": physical_id,
                "ResourceType": kind,
                "Timestamp": TIME,
                "ResourceStatus": "CREATE_COMPLETE",
            }
            for i, (kind, physical_id) in enumerate(owned)
        ]


def invoke(
    monkeypatch,
    *,
    tracking_url: str,
    admin: dict[str, str],
    team_secret: dict[str, str] | None,
    request_type: str,
    stack: Stack,
    team: str = "fraud",
    secret_arn: str = TEAM_ARN,
    principal: str = ROLE,
    physical_id: str | None = None,
    response_url: str | None = None,
) -> dict | None:
    """One custom-resource event; the response CloudFormation receives (None: none sent)."""
    function = deployed_function()
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    clients = {s: session.client(s) for s in ("secretsmanager", "cloudformation")}
    stubs = {s: Stubber(c) for s, c in clients.items()}
    if stack.exists:
        stubs["cloudformation"].add_response(
            "describe_stack_resources",
            {"StackResources": stack.resources()},
            {"StackName": stack.stack_id},
        )
    else:
        stubs["cloudformation"].add_client_error(
            "describe_stack_resources",
            "ValidationError",
            f"Stack with id {stack.stack_id} does not exist",
            400,
        )
    monkeypatch.setattr(function.boto3, "client", lambda service: clients[service])
    for name, value in {
        "TRACKING_URL": tracking_url,
        "ADMIN_SECRET_ARN": ADMIN_ARN,
        "RESPONSE_URL_PATTERN": r"^http://127\.0\.0\.1:",
    }.items():
        monkeypatch.setenv(name, value)
    catcher = ResponseCatcher()
    event = {
        "RequestType": request_type, "ResponseURL": response_url or catcher.url,
        "StackId": stack.stack_id, "RequestId": f"{request_type}-1",
        "LogicalResourceId": LOGICAL_ID, "ResourceType": "Custom::MlflowTeamUser",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
                               "SecretArn": secret_arn, "Team": team, "Principal": principal},
    }  # fmt: skip
    if physical_id:
        event["PhysicalResourceId"] = physical_id

    def answer_secrets() -> None:
        stub = stubs["secretsmanager"]
        if team_secret is not None:
            stub.add_response("get_secret_value", {"SecretString": json.dumps(team_secret)},
                              {"SecretId": secret_arn})  # fmt: skip
        stub.add_response("get_secret_value", {"SecretString": json.dumps(admin)},
                          {"SecretId": ADMIN_ARN})  # fmt: skip

    answer_secrets()
    try:
        with stubs["secretsmanager"], stubs["cloudformation"]:
            function.handler(event)
    finally:
        catcher.close()
    return catcher.received[0] if catcher.received else None
