"""Runs the team-user function's own code as Lambda would, with CloudFormation's side faked.

Secrets Manager answers through botocore's Stubber (every request checked against the service
model); CloudFormation's pre-signed response URL is an HTTP server on loopback that records
what the function PUTs there.
"""

from __future__ import annotations

import http.server
import json
import threading

import boto3
from botocore.stub import Stubber

ADMIN_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin"
TEAM_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team"


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


def invoke_team_user_function(
    monkeypatch,
    *,
    tracking_url: str,
    admin: dict[str, str],
    team: dict[str, str],
    request_type: str,
    physical_id: str | None = None,
) -> dict:
    """One custom-resource event through `handler`; the response CloudFormation receives."""
    from environment_template import team_users_function as function

    client = boto3.session.Session().client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    secrets = [(ADMIN_ARN, admin)] + ([] if request_type == "Delete" else [(TEAM_ARN, team)])
    for arn, value in secrets:
        stubber.add_response(
            "get_secret_value", {"SecretString": json.dumps(value)}, {"SecretId": arn}
        )
    monkeypatch.setattr(function.boto3, "client", lambda service: client)
    monkeypatch.setenv("AUTH_MODE", "basic")
    monkeypatch.setenv("TRACKING_URL", tracking_url)
    monkeypatch.setenv("ADMIN_SECRET_ARN", ADMIN_ARN)
    catcher = ResponseCatcher()
    event = {
        "RequestType": request_type, "ResponseURL": catcher.url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/team/1",
        "RequestId": request_type, "LogicalResourceId": "TeamUser",
        "ResourceProperties": {"SecretArn": TEAM_ARN, "Username": team["username"]},
    }  # fmt: skip
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    try:
        with stubber:
            function.handler(event)
        stubber.assert_no_pending_responses()
    finally:
        catcher.close()
    (response,) = catcher.received
    return response
