"""CloudFormation custom resource: a team's MLflow user, with the password from its secret.

Runs in the environment's VPC, the only place that reaches the tracking server, and holds the
admin credential so that no team stack ever does. Inline Lambda code: the standard library and
boto3 only, under 4 KB.
"""

import base64
import json
import os
import urllib.error
import urllib.request

import boto3

USERS = "/api/2.0/mlflow/users/"


def secret(arn):
    value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return json.loads(value)


class Users:
    def __init__(self, url, username, password):
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method, path, body):
        request = urllib.request.Request(
            self.url + USERS + path, json.dumps(body).encode(), self.headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def ensure(self, username, password):
        """Create the user, or set its password if it exists: the secret is the truth."""
        status, body = self.call("POST", "create", {"username": username, "password": password})
        if status == 200:
            return "created"
        if b"RESOURCE_ALREADY_EXISTS" not in body:
            raise RuntimeError(f"creating MLflow user {username}: HTTP {status} {body[:200]!r}")
        status, body = self.call(
            "PATCH", "update-password", {"username": username, "password": password}
        )
        if status != 200:
            raise RuntimeError(f"updating MLflow user {username}: HTTP {status} {body[:200]!r}")
        return "updated"

    def delete(self, username):
        status, body = self.call("DELETE", "delete", {"username": username})
        if status not in (200, 404) and b"RESOURCE_DOES_NOT_EXIST" not in body:
            raise RuntimeError(f"deleting MLflow user {username}: HTTP {status} {body[:200]!r}")


def respond(event, status, reason, physical_id):
    body = json.dumps({
        "Status": status, "Reason": reason, "PhysicalResourceId": physical_id,
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }).encode()  # fmt: skip
    request = urllib.request.Request(event["ResponseURL"], body, method="PUT",
                                     headers={"Content-Type": ""})  # fmt: skip
    with urllib.request.urlopen(request, timeout=20):
        pass


def handler(event, context=None):
    physical_id = event.get("PhysicalResourceId", "none")
    status, reason = "SUCCESS", "ok"
    try:
        if os.environ["AUTH_MODE"] != "basic":
            reason = "the environment uses iam auth: MLflow has no users"
        else:
            admin = secret(os.environ["ADMIN_SECRET_ARN"])
            users = Users(os.environ["TRACKING_URL"], admin["username"], admin["password"])
            if event["RequestType"] == "Delete":
                if physical_id != "none":
                    users.delete(physical_id)
            else:
                team = secret(event["ResourceProperties"]["SecretArn"])
                reason = users.ensure(team["username"], team["password"])
                if event["RequestType"] == "Update" and physical_id not in (
                    "none",
                    team["username"],
                ):
                    users.delete(physical_id)
                physical_id = team["username"]
    except Exception as error:
        status, reason = "FAILED", str(error)[:500]
    print(json.dumps({"request": event["RequestType"], "status": status, "reason": reason}))
    respond(event, status, reason, physical_id)
