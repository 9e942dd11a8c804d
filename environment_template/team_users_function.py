"""Custom resource: a team's MLflow user, with the password from its secret.

Holds the admin credential so that no team stack does. Acts only on what CloudFormation
confirms; the server keeps each team user's owning stack. Inline code: under 4 KB.
"""

import base64
import json
import os
import re
import urllib.error
import urllib.request

import boto3

STATUS = {
    "Create": ("CREATE_IN_PROGRESS",),
    "Update": ("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"),
    "Delete": ("DELETE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"),
}


def secret(arn):
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def unconfirmed(event):
    """Why CloudFormation does not back this event; None when it does."""
    stack, logical, kind = event["StackId"], event["LogicalResourceId"], event["RequestType"]
    try:
        found = boto3.client("cloudformation").describe_stack_resources(StackName=stack)
    except Exception as error:
        return f"stack {stack}: {error}"
    rs = found["StackResources"]
    mine = [r for r in rs if r["LogicalResourceId"] == logical
            and r["ResourceType"] == "Custom::MlflowTeamUser"]  # fmt: skip
    if not mine:
        return f"stack {stack} has no team user {logical}"
    state = mine[0]["ResourceStatus"]
    if state not in STATUS[kind] or (
        kind == "Delete" and state != "DELETE_IN_PROGRESS"
        and mine[0].get("PhysicalResourceId") == event.get("PhysicalResourceId")
    ):  # fmt: skip
        return f"{logical} is {state}: no {kind} under way"
    props = event["ResourceProperties"]
    owned = {(r["ResourceType"], r.get("PhysicalResourceId")) for r in rs}
    arn, role = props["SecretArn"], props["Principal"]
    if kind != "Delete" and ("AWS::SecretsManager::Secret", arn) not in owned:
        return f"stack {stack} does not own secret {arn}"
    # The stack's role, by its whole ARN: a role's physical id is its name, and team roles
    # have no path, so the ARN is arn:<partition>:iam::<account>:role/<name> with the stack's
    # partition and account. A role session's ARN (sts, assumed-role) or another role's is
    # not it. (No IAM call: with NatGateways=0 the function reaches no IAM endpoint.)
    p = stack.split(":")
    roles = {f"arn:{p[1]}:iam::{p[4]}:role/{i}" for t, i in owned if t == "AWS::IAM::Role"}
    if kind != "Delete" and role not in roles:
        return f"stack {stack} does not own role {role}"


def call(action, body):
    admin = secret(os.environ["ADMIN_SECRET_ARN"])
    auth = base64.b64encode(f"{admin['username']}:{admin['password']}".encode()).decode()
    url = os.environ["TRACKING_URL"].rstrip("/") + "/api/2.0/mlflow-platform/team-users/" + action
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Basic {auth}", "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()[:300].decode(errors="replace")
        raise RuntimeError(f"{action}: HTTP {error.code} {text}") from None


def respond(event, status, reason, physical_id):
    url = event.get("ResponseURL", "")
    if not re.match(os.environ["RESPONSE_URL_PATTERN"], url):
        return print(json.dumps({"refused": "response URL", "url": url[:200]}))
    body = json.dumps({
        "Status": status, "Reason": reason, "PhysicalResourceId": physical_id,
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }).encode()  # fmt: skip
    request = urllib.request.Request(url, body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=20):
        pass


def handler(event, context=None):
    pid = event.get("PhysicalResourceId", "none")
    status, reason = "SUCCESS", "ok"
    try:
        kind, owner, props = event["RequestType"], event["StackId"], event["ResourceProperties"]
        refused = unconfirmed(event)
        if refused:
            status, reason = "FAILED", f"not confirmed by CloudFormation: {refused}"
        elif kind == "Delete":
            if pid.startswith("team/"):
                reason = call("delete", {"username": pid, "owner": owner})["result"]
        else:
            name, team = "team/" + props["Team"], secret(props["SecretArn"])
            if team["username"] != name:
                raise RuntimeError(f"the team secret names {team['username']}, not {name}")
            if kind == "Create":
                pid = name  # so that a rollback deletes what this may have made
            done = call("ensure", {"team": props["Team"], "password": team["password"],
                                   "owner": owner, "principal": props["Principal"]})  # fmt: skip
            reason, pid = done["result"], done["username"]
    except Exception as error:
        status, reason = "FAILED", str(error)[:500]
    print(json.dumps({"request": event.get("RequestType"), "stack": event.get("StackId"),
                      "status": status, "reason": reason}))  # fmt: skip
    respond(event, status, reason, pid)
