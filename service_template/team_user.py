"""The team's MLflow credentials: a generated secret, and the environment's function that makes
it a user of the tracking server (basic auth; in iam mode the function does nothing)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlflow_platform import contract
from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge
from tracking_server.settings import TEAM_USER_PREFIX

RESOURCE_TYPE = "Custom::MlflowTeamUser"


@dataclass(frozen=True, kw_only=True)
class TeamUserProps:
    team_name: str


class TeamUser(Construct):
    def __init__(self, scope: Construct, id: str, *, props: TeamUserProps) -> None:
        super().__init__(scope, id)
        # The name the environment's function may read: mlflow-platform/<env>/teams/<team>.
        self.secret = secretsmanager.CfnSecret(
            self,
            "Credentials",
            name=cdk.Fn.sub(contract.team_path("${EnvironmentName}", "${TeamName}").lstrip("/")),
            description="The team's MLflow user (MLFLOW_TRACKING_USERNAME / _PASSWORD)",
            generate_secret_string=secretsmanager.CfnSecret.GenerateSecretStringProperty(
                secret_string_template=cdk.Fn.sub(
                    json.dumps({"username": TEAM_USER_PREFIX + "${TeamName}"})
                ),
                generate_string_key="password",
                password_length=32,
                exclude_punctuation=True,
            ),
        )
        # The user goes when the stack goes (the function deletes it), so the secret goes too.
        self.secret.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The password must match the team's MLflow user; a scheduled rotation would change "
            "the secret alone. Rotate by updating the stack, which sets both",
        )
        checkov_skips.skip(self.secret, "CKV_AWS_149", checkov_skips.SECRET_AWS_MANAGED_KEY)
        self.team_name = props.team_name

    def register(self, *, principal_arn: str) -> cdk.CustomResource:
        """The team's user, made by the environment's function; in iam mode, signed requests
        of `principal_arn` (the team role) act as it. Separate from the secret because the
        team role reads the secret."""
        self.user = cdk.CustomResource(
            self,
            "User",
            service_token=contract.read(contract.TEAM_USERS),
            resource_type=RESOURCE_TYPE,
            properties={
                "SecretArn": self.secret.ref,
                "Team": self.team_name,
                "Principal": principal_arn,
            },
        )
        return self.user
