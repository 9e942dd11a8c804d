"""Secrets for MLflow's built-in auth: the admin credential and the server's session key; and the
key that encrypts the AI gateway's stored provider keys (MLflow's KEK passphrase).

Both exist in either auth mode, so switching AuthMode is an in-place update of the service and
never creates or deletes a secret; the tracking server reads them only in basic mode. They are
retained when the stack is deleted: the auth database in a final snapshot still expects them.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge

ADMIN_USERNAME = "admin"


class AuthSecrets(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.admin = secretsmanager.Secret(
            self,
            "Admin",
            description="MLflow tracking server administrator (basic auth)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{ADMIN_USERNAME}"}}',
                generate_string_key="password",
                password_length=32,
                exclude_punctuation=True,
            ),
        )
        self.server_key = secretsmanager.Secret(
            self,
            "ServerKey",
            description="MLflow tracking server session signing key (basic auth)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        self.gateway_key = secretsmanager.Secret(
            self,
            "GatewayKey",
            description="MLflow AI gateway key-encryption passphrase (MLflow's KEK passphrase)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        for secret in (self.admin, self.server_key, self.gateway_key):
            secret.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
            checkov_skips.skip(secret, "CKV_AWS_149", checkov_skips.SECRET_AWS_MANAGED_KEY)
        acknowledge(
            self.admin,
            "AwsSolutions-SMG4",
            "MLflow stores a hash of the admin password in its auth database on first start; a "
            "scheduled rotation would change the secret but not the user and lock the "
            "administrator out. Change it through MLflow's user API, then update the secret",
        )
        acknowledge(
            self.server_key,
            "AwsSolutions-SMG4",
            "The key signs the UI's session cookies; every task must use the same key, so it is "
            "replaced with a redeployment of all tasks together rather than on a schedule",
        )
        acknowledge(
            self.gateway_key,
            "AwsSolutions-SMG4",
            "The passphrase wraps the data keys of the gateway's stored provider keys; a new one "
            "needs MLflow's KEK rotation (mlflow crypto rotate-kek with the old and new "
            "passphrase) before the tasks get it, which a scheduled rotation cannot do",
        )
