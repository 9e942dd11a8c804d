"""The inputs of mlflow-sagemaker-api, each declared once as a CloudFormation parameter."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from mlflow_platform import contract
from mlflow_platform.inputs import (
    HOST_NAME,
    HOST_NAME_MAX,
    environment_name_input,
    interface,
    log_retention_input,
    nat_gateways_input,
    number_input,
    string_input,
    vpc_cidr_input,
)

TEAM_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}$"
TLS_SERVER_NAME_PATTERN = rf"^{contract.TLS_OFF}$|^{HOST_NAME}$"


@dataclass(frozen=True, kw_only=True)
class ServiceInputs:
    environment_name: cdk.CfnParameter
    team_name: cdk.CfnParameter
    vpc_cidr: cdk.CfnParameter
    nat_gateways: cdk.CfnParameter
    throttling_rate_limit: cdk.CfnParameter
    throttling_burst_limit: cdk.CfnParameter
    log_retention_days: cdk.CfnParameter
    create_studio_domain: cdk.CfnParameter
    tls_server_name: cdk.CfnParameter


def declare(stack: cdk.Stack) -> ServiceInputs:
    inputs = ServiceInputs(
        environment_name=environment_name_input(
            stack, description="Name of the MLflow environment this team's API connects to"
        ),
        team_name=string_input(
            stack,
            "TeamName",
            default="data-science",
            description="The team's name: it names the team's MLflow user and its parameters",
            allowed_pattern=TEAM_NAME_PATTERN,
            constraint_description="2 to 31 lowercase letters, digits or hyphens, starting "
            "with a letter",
        ),
        vpc_cidr=vpc_cidr_input(stack, default="10.1.0.0/16", vpc="the team's SageMaker VPC"),
        nat_gateways=nat_gateways_input(
            stack, traffic="SageMaker workloads to reach the MLflow API and AWS services"
        ),
        throttling_rate_limit=number_input(
            stack,
            "ThrottlingRateLimit",
            default=200,
            description="Steady-state requests per second the team's API accepts",
            min_value=1,
            max_value=10000,
        ),
        throttling_burst_limit=number_input(
            stack,
            "ThrottlingBurstLimit",
            default=400,
            description="Requests the team's API accepts in a burst above the steady rate",
            min_value=1,
            max_value=5000,
        ),
        log_retention_days=log_retention_input(stack, what="the API's access logs"),
        create_studio_domain=string_input(
            stack,
            "CreateStudioDomain",
            default="false",
            description="true: also create a SageMaker Studio domain in this VPC (VPC-only "
            "network access) with a user profile that uses the team role",
            allowed_values=("false", "true"),
        ),
        # A parameter, not a contract read, because it switches TlsConfig on or off, and
        # Conditions cannot read dynamic references. Proton binds it to the environment's
        # output (proton_schema.PROVIDED), so only Service Catalog users type it.
        tls_server_name=string_input(
            stack,
            "TlsServerName",
            default=contract.TLS_OFF,
            description="The environment's TrackingTlsServerName output (also its SSM "
            "parameter tls-server-name): the name on its load balancer's certificate, which "
            f"this API verifies over HTTPS; {contract.TLS_OFF} when it listens on plain HTTP",
            allowed_pattern=TLS_SERVER_NAME_PATTERN,
            constraint_description=f"{contract.TLS_OFF}, or a lowercase DNS name such as "
            "mlflow.internal.example.com",
            max_length=HOST_NAME_MAX,
        ),
    )
    interface(
        stack,
        [
            (
                "Team",
                [
                    (inputs.team_name, "Team name"),
                    (inputs.environment_name, "MLflow environment"),
                    (inputs.tls_server_name, "The environment's TLS server name"),
                ],
            ),
            (
                "Network",
                [(inputs.vpc_cidr, "VPC CIDR block"), (inputs.nat_gateways, "NAT gateways")],
            ),
            (
                "API",
                [
                    (inputs.throttling_rate_limit, "Requests per second"),
                    (inputs.throttling_burst_limit, "Burst requests"),
                    (inputs.log_retention_days, "Access log retention (days)"),
                ],
            ),
            ("SageMaker", [(inputs.create_studio_domain, "Create a Studio domain")]),
        ],
    )
    return inputs
