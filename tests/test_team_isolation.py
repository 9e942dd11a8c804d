"""Teams as attackers, in basic mode, against the real server and the deployed function code.

A team controls its stack's inputs (the team name) and may hold `lambda:InvokeFunction` on
the team-user function; any logged-in user can list MLflow's users. None of that may reach
another team's user or a person's account.
"""

from __future__ import annotations

import time

import pytest
import requests
from function_harness import STACK, TEAM_ARN, Stack, invoke
from helpers import create_mlflow_user

# MLflow answers a sign-in as a user that does not exist with 404 (its auth store's
# RESOURCE_DOES_NOT_EXIST), a wrong password with 401.
GONE = (401, 404)
OTHER_STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/team-other/9z8y7x"


def _status(details, username: str, password: str) -> int:
    return requests.get(
        f"{details['tracking_uri']}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=(username, password),
        timeout=30,
    ).status_code


def _admin(details) -> dict[str, str]:
    return {"username": details["username"], "password": details["password"]}


def _team(name: str) -> str:
    """A team name no other test uses (the platform lives for the whole session)."""
    return f"{name}{time.time_ns() % 10**9}"


def _create(monkeypatch, details, team: str, *, stack: Stack, password: str = "t" * 24):
    return invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                  team_secret={"username": f"team/{team}", "password": password},
                  request_type="Create", stack=stack, team=team)  # fmt: skip


@pytest.mark.parametrize("victim", ["person", "admin"])
def test_a_team_named_like_a_person_or_an_admin_cannot_take_their_account(
    platform, monkeypatch, victim
):
    _, details = platform
    if victim == "admin":
        name, password = details["username"], details["password"]
    else:
        name, password = _team("alice"), "alice-password-123"
        create_mlflow_user(details, name, password)
    response = _create(monkeypatch, details, name, stack=Stack())
    assert response is not None and response["Status"] == "SUCCESS", response
    # The team got its own user, in the team namespace; the victim's password still works.
    assert response["PhysicalResourceId"] == f"team/{name}"
    assert _status(details, name, password) == 200
    assert _status(details, name, "t" * 24) == 401
    assert _status(details, f"team/{name}", "t" * 24) == 200


def test_a_user_in_the_team_namespace_not_made_for_a_stack_is_refused_and_untouched(
    platform, monkeypatch
):
    """A user of that name from before the namespace was kept (made here in the auth store
    directly, as MLflow's own API now refuses it)."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from tracking_server.settings import from_environ

    local, details = platform
    team = _team("legacy")
    database = from_environ(local.server_environment(local._state(), local._credentials())).database
    store = SqlAlchemyStore()
    store.init_db(database.uri(database.auth_database))
    store.create_user(f"team/{team}", "legacy-password-123")
    response = _create(monkeypatch, details, team, stack=Stack())
    assert response is not None and response["Status"] == "FAILED"
    assert (
        f"team {team}: MLflow user team/{team} exists and was not created for a team"
        in (response["Reason"])
    )
    assert _status(details, f"team/{team}", "legacy-password-123") == 200


def test_a_second_stack_with_the_same_team_name_cannot_take_or_delete_the_first_ones_user(
    platform, monkeypatch
):
    _, details = platform
    team = _team("fraud")
    assert _create(monkeypatch, details, team, stack=Stack())["Status"] == "SUCCESS"
    other = Stack(stack_id=OTHER_STACK)
    taken = _create(monkeypatch, details, team, stack=other, password="o" * 24)
    assert taken["Status"] == "FAILED"
    assert f"team {team}: MLflow user team/{team} belongs to stack {STACK}" in taken["Reason"]
    gone = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                  team_secret=None, request_type="Delete", team=team,
                  stack=Stack(stack_id=OTHER_STACK, user_status="DELETE_IN_PROGRESS"),
                  physical_id=f"team/{team}")  # fmt: skip
    # Its own deletion finishes; the first stack's user is not its to delete.
    assert (gone["Status"], gone["Reason"]) == (
        "SUCCESS",
        f"not this stack's user: team/{team} left as it is",
    )
    assert _status(details, f"team/{team}", "t" * 24) == 200
    assert _status(details, f"team/{team}", "o" * 24) == 401


@pytest.mark.parametrize(
    ("case", "stack", "request_type", "reason"),
    [
        (
            "a Delete while the stack is not deleting it",
            Stack(user_status="CREATE_COMPLETE", user_physical_id="team/{team}"),
            "Delete",
            "is CREATE_COMPLETE: no Delete under way",
        ),
        (
            "an Update while the stack is not updating",
            Stack(user_status="CREATE_COMPLETE", user_physical_id="team/{team}"),
            "Update",
            "is CREATE_COMPLETE: no Update under way",
        ),
        (
            "a stack that does not exist",
            Stack(stack_id=OTHER_STACK, exists=False),
            "Delete",
            "does not exist",
        ),
        (
            "a Create naming a secret the stack does not own",
            Stack(stack_id=OTHER_STACK, secrets=[]),
            "Create",
            f"does not own secret {TEAM_ARN}",
        ),
    ],
)
def test_a_forged_event_changes_nothing_and_is_answered_failed(
    platform, monkeypatch, case, stack, request_type, reason
):
    _, details = platform
    team = _team("victim")
    assert _create(monkeypatch, details, team, stack=Stack())["Status"] == "SUCCESS"
    if stack.user_physical_id:
        stack.user_physical_id = stack.user_physical_id.format(team=team)
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                      team_secret={"username": f"team/{team}", "password": "f" * 24},
                      request_type=request_type, stack=stack, team=team,
                      physical_id=f"team/{team}")  # fmt: skip
    assert response is not None and response["Status"] == "FAILED", case
    assert (
        "not confirmed by CloudFormation" in response["Reason"] and reason in (response["Reason"])
    ), response["Reason"]
    assert _status(details, f"team/{team}", "t" * 24) == 200  # untouched
    assert _status(details, f"team/{team}", "f" * 24) == 401


def test_the_function_answers_only_cloudformations_response_urls(platform, monkeypatch, capsys):
    _, details = platform
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                      team_secret=None, request_type="Delete", team="x",
                      stack=Stack(user_status="CREATE_COMPLETE", user_physical_id="team/x"),
                      response_url="http://10.0.0.5/steal")  # fmt: skip
    assert response is None
    assert '"refused": "response URL"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("users/create", {"username": "team/sneaky", "password": "sneaky-password-1"}),
        ("users/update-password", {"username": "team/{team}", "password": "x" * 20}),
        ("users/update-admin", {"username": "team/{team}", "is_admin": True}),
        ("users/delete", {"username": "team/{team}"}),
        ("users/create-ui", {"username": "team/squat", "password": "squat-password-1"}),
    ],
)
def test_mlflows_own_user_api_refuses_the_team_namespace_even_to_an_admin(
    platform, monkeypatch, path, body
):
    _, details = platform
    team = _team("kept")
    assert _create(monkeypatch, details, team, stack=Stack())["Status"] == "SUCCESS"
    body = {k: v.format(team=team) if isinstance(v, str) else v for k, v in body.items()}
    method = {"users/update-password": "PATCH", "users/update-admin": "PATCH",
              "users/delete": "DELETE"}.get(path, "POST")  # fmt: skip
    as_form = {"data": body} if path.endswith("-ui") else {"json": body}  # the signup page's form
    response = requests.request(
        method, f"{details['tracking_uri']}/api/2.0/mlflow/{path}", **as_form,
        auth=(details["username"], details["password"]), timeout=30,
    )  # fmt: skip
    assert response.status_code == 403, response.text
    assert "belong to team stacks" in response.json()["message"]
    assert _status(details, f"team/{team}", "t" * 24) == 200


def test_only_an_admin_may_call_the_platforms_team_user_api(platform):
    _, details = platform
    person = _team("bob")
    create_mlflow_user(details, person, "bob-password-1234")
    response = requests.post(
        f"{details['tracking_uri']}/api/2.0/mlflow-platform/team-users/ensure",
        json={"team": "bobs", "password": "b" * 20, "owner": STACK},
        auth=(person, "bob-password-1234"),
        timeout=30,
    )
    assert response.status_code == 403
    assert _status(details, "team/bobs", "b" * 20) == 401


def test_a_team_user_follows_its_stack_through_update_rename_and_delete(platform, monkeypatch):
    _, details = platform
    team, renamed = _team("life"), _team("renamed")
    assert _create(monkeypatch, details, team, stack=Stack())["Reason"] == "created"
    assert _status(details, f"team/{team}", "t" * 24) == 200  # now in MLflow's credential cache
    # A new password in the secret (an Update of the stack) re-passwords the user.
    updated = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                     team_secret={"username": f"team/{team}", "password": "n" * 24},
                     request_type="Update", team=team, physical_id=f"team/{team}",
                     stack=Stack(user_status="UPDATE_IN_PROGRESS",
                                 user_physical_id=f"team/{team}"))  # fmt: skip
    assert (updated["Status"], updated["Reason"]) == ("SUCCESS", "updated"), updated
    assert _status(details, f"team/{team}", "n" * 24) == 200
    assert _status(details, f"team/{team}", "t" * 24) == 401
    # A new team name: a new user; CloudFormation then deletes the old one in its cleanup.
    moved = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                   team_secret={"username": f"team/{renamed}", "password": "r" * 24},
                   request_type="Update", team=renamed, physical_id=f"team/{team}",
                   stack=Stack(user_status="UPDATE_IN_PROGRESS",
                               user_physical_id=f"team/{team}"))  # fmt: skip
    assert moved["PhysicalResourceId"] == f"team/{renamed}", moved
    cleanup = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                     team_secret=None, request_type="Delete", team=team,
                     physical_id=f"team/{team}",
                     stack=Stack(user_status="UPDATE_COMPLETE",
                                 user_physical_id=f"team/{renamed}"))  # fmt: skip
    assert (cleanup["Status"], cleanup["Reason"]) == ("SUCCESS", "deleted"), cleanup
    assert _status(details, f"team/{team}", "n" * 24) in GONE
    assert _status(details, f"team/{renamed}", "r" * 24) == 200
    # The stack goes: its user goes.
    deleted = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                     team_secret=None, request_type="Delete", team=renamed,
                     physical_id=f"team/{renamed}",
                     stack=Stack(user_status="DELETE_IN_PROGRESS",
                                 user_physical_id=f"team/{renamed}"))  # fmt: skip
    assert deleted["Status"] == "SUCCESS", deleted
    assert _status(details, f"team/{renamed}", "r" * 24) in GONE


def test_a_wrong_admin_credential_is_reported_to_cloudformation(platform, monkeypatch):
    _, details = platform
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"],
                      admin={"username": details["username"], "password": "wrong-password-1"},
                      team_secret={"username": "team/t2", "password": "p" * 24},
                      request_type="Create", stack=Stack(), team="t2")  # fmt: skip
    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith("ensure: HTTP 401")


def test_a_forged_update_cannot_make_a_user_under_the_victims_stack(platform, monkeypatch):
    """While the victim's stack updates, an event naming another team with the victim's
    secret: refused before anything is made, since the secret names the victim's team."""
    _, details = platform
    victim, junk = _team("vic"), _team("junk")
    assert _create(monkeypatch, details, victim, stack=Stack())["Status"] == "SUCCESS"
    forged = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                    team_secret={"username": f"team/{victim}", "password": "t" * 24},
                    request_type="Update", team=junk, physical_id=f"team/{victim}",
                    stack=Stack(user_status="UPDATE_IN_PROGRESS",
                                user_physical_id=f"team/{victim}"))  # fmt: skip
    assert forged["Status"] == "FAILED"
    assert f"the team secret names team/{victim}, not team/{junk}" in forged["Reason"]
    assert forged["PhysicalResourceId"] == f"team/{victim}"
    assert _status(details, f"team/{junk}", "t" * 24) in GONE
    assert _status(details, f"team/{victim}", "t" * 24) == 200


def test_a_role_of_another_account_is_not_the_stacks_role(platform, monkeypatch):
    _, details = platform
    team = _team("acct")
    foreign = "arn:aws:iam::999999999999:role/team-fraud-TeamRole-1A2B3C"  # same name
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                      team_secret={"username": f"team/{team}", "password": "t" * 24},
                      request_type="Create", stack=Stack(), team=team,
                      principal=foreign)  # fmt: skip
    assert response["Status"] == "FAILED" and f"does not own role {foreign}" in response["Reason"]
    assert _status(details, f"team/{team}", "t" * 24) in GONE


def test_a_role_session_named_like_the_stacks_role_is_not_the_stacks_role(platform, monkeypatch):
    """The attack as reproduced: a stack owning only `mallory-TeamRole-MMM` names a session of
    a person's role whose session name is its own role's name. Only the role's own IAM ARN
    is the stack's role (IAM User Guide, "IAM identifiers": a role session's ARN is
    arn:aws:sts::<account>:assumed-role/<role name>/<session name>)."""
    _, details = platform
    team = _team("mallory")
    owned = "arn:aws:iam::123456789012:role/mallory-TeamRole-MMM"
    session = "arn:aws:sts::123456789012:assumed-role/PersonDataScientistRole/mallory-TeamRole-MMM"
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                      team_secret={"username": f"team/{team}", "password": "t" * 24},
                      request_type="Create", stack=Stack(roles=[owned]), team=team,
                      principal=session)  # fmt: skip
    assert response is not None and response["Status"] == "FAILED", response
    assert f"does not own role {session}" in response["Reason"]
    assert _status(details, f"team/{team}", "t" * 24) in GONE


@pytest.mark.parametrize(
    "principal",
    [
        "arn:aws:iam::123456789012:role/team-fraud-TeamRole-1A2B3C/extra",  # a path, not the role
        "arn:aws:iam::123456789012:role/platform/team-fraud-TeamRole-1A2B3C",
        "arn:aws-cn:iam::123456789012:role/team-fraud-TeamRole-1A2B3C",  # another partition
        "arn:aws:sts::123456789012:role/team-fraud-TeamRole-1A2B3C",
        "team-fraud-TeamRole-1A2B3C",
    ],
)
def test_only_the_whole_arn_of_the_stacks_role_is_its_role(platform, monkeypatch, principal):
    _, details = platform
    team = _team("arn")
    response = invoke(monkeypatch, tracking_url=details["tracking_uri"], admin=_admin(details),
                      team_secret={"username": f"team/{team}", "password": "t" * 24},
                      request_type="Create", stack=Stack(), team=team,
                      principal=principal)  # fmt: skip
    assert response is not None and response["Status"] == "FAILED", response
    assert f"does not own role {principal}" in response["Reason"]


@pytest.mark.parametrize(
    ("principal", "rule"),
    [
        (
            "arn:aws:sts::123456789012:assumed-role/PersonDataScientistRole/mallory-TeamRole-MMM",
            "must be an IAM role's own ARN",
        ),
        ("arn:aws:iam::123456789012:user/mallory", "must be an IAM role's own ARN"),
        ("arn:aws:iam::999999999999:role/team-x-TeamRole-XXX", "the owner stack's account"),
    ],
)
def test_the_server_registers_only_a_role_arn_of_the_owner_stacks_account(
    platform, principal, rule
):
    """Whoever calls the team-user API as the admin: a role session or a user is no team role."""
    _, details = platform
    team = _team("direct")
    response = requests.post(
        f"{details['tracking_uri']}/api/2.0/mlflow-platform/team-users/ensure",
        json={"team": team, "password": "d" * 20, "owner": STACK, "principal": principal},
        auth=(details["username"], details["password"]),
        timeout=30,
    )
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert f"principal = {principal!r}" in message and rule in message, message
    assert _status(details, f"team/{team}", "d" * 20) in GONE


def _resolve(value, region: str, url_suffix: str):
    """A template value as CloudFormation resolves it in `region` (Ref of the pseudo
    parameters, Fn::Join and Fn::Split: all the function's environment uses)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_resolve(v, region, url_suffix) for v in value]
    [(name, arguments)] = value.items()
    if name == "Ref":
        return {"AWS::Region": region, "AWS::URLSuffix": url_suffix}[arguments]
    delimiter, items = arguments
    items = _resolve(items, region, url_suffix)
    if name == "Fn::Split":
        return items.split(delimiter)
    assert name == "Fn::Join", name
    return delimiter.join(items)


def _response_url_pattern(environment: dict, region: str) -> str:
    """The pattern the deployed function gets in `region`, from the synthesized template."""
    from helpers import of_type

    [function] = [
        f for f in of_type(environment, "AWS::Lambda::Function").values()
        if "RESPONSE_URL_PATTERN" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]  # fmt: skip
    raw = function["Properties"]["Environment"]["Variables"]["RESPONSE_URL_PATTERN"]
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return _resolve(raw, region, suffix)


# CloudFormation's response bucket in each Region is cloudformation-custom-resource-response-
# <Region without dashes> (AWS CloudFormation User Guide, "Access CloudFormation using an
# interface endpoint (AWS PrivateLink)"); S3 reaches it by the REST endpoints of "Virtual
# hosting of general purpose buckets" in the Amazon S3 User Guide: s3.<region>, the legacy
# s3-<region>, and the legacy global s3.amazonaws.com.
@pytest.mark.parametrize(
    ("region", "url", "answered"),
    [
        ("us-east-1",
         "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?b=c", True),
        ("us-east-1",
         "https://cloudformation-custom-resource-response-useast1.s3.us-east-1.amazonaws.com/a",
         True),
        ("us-west-2",
         "https://cloudformation-custom-resource-response-uswest2.s3-us-west-2.amazonaws.com/a",
         True),
        ("eu-west-1",
         "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/a",
         True),
        ("cn-north-1",
         "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn"
         "/a", True),
        # A bucket anyone may create under the same prefix.
        ("us-east-1",
         "https://cloudformation-custom-resource-response-attacker.s3.amazonaws.com/a", False),
        ("us-east-1",
         "https://cloudformation-custom-resource-response-useast1x.s3.amazonaws.com/a", False),
        # Another Region's response bucket, by its own or this Region's endpoint.
        ("us-east-1",
         "https://cloudformation-custom-resource-response-uswest2.s3.us-west-2.amazonaws.com/a",
         False),
        ("us-east-1",
         "https://cloudformation-custom-resource-response-useast1.s3.us-west-2.amazonaws.com/a",
         False),
        # Website endpoints serve GET only and are no response URL.
        ("us-east-1",
         "https://cloudformation-custom-resource-response-useast1.s3-website-us-east-1"
         ".amazonaws.com/a", False),
        ("eu-west-1",
         "https://cloudformation-custom-resource-response-euwest1.s3-website.eu-west-1"
         ".amazonaws.com/a", False),
        ("us-east-1",
         "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.evil.com/a",
         False),
        ("us-east-1", "https://ec2-203-0-113-5.compute-1.amazonaws.com/steal", False),
        ("us-east-1", "https://attacker-bucket.s3.amazonaws.com/steal", False),
        ("us-east-1", "https://a1b2c3.execute-api.us-east-1.amazonaws.com/steal", False),
        ("us-east-1",
         "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a", False),
    ],
)  # fmt: skip
def test_responses_go_only_to_cloudformations_response_urls(environment, region, url, answered):
    import re

    assert bool(re.match(_response_url_pattern(environment, region), url)) is answered


def test_the_registered_role_has_no_path_so_its_arn_follows_from_its_name(service):
    """The function builds the stack's role ARN from the role's name (its physical id): a
    path would make the role's real ARN another one, and the stack's own Create would fail."""
    from helpers import one_of_type

    _, user = one_of_type(service, "Custom::MlflowTeamUser")
    logical, attribute = user["Properties"]["Principal"]["Fn::GetAtt"]
    assert attribute == "Arn"
    assert service["Resources"][logical]["Properties"].get("Path", "/") == "/"
