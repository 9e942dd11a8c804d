"""What the environment provides to the services that run in it, named once.

Both templates import this module. The environment publishes each value as a stack output (which
Proton hands to services as `environment.outputs.<Name>`) and as an SSM parameter under a
per-environment prefix (which Service Catalog products read by environment name). The service
declares one parameter per value it consumes; how that parameter is bound depends on the channel
and is decided when the templates are rendered, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ssm as ssm

SSM_ROOT = "/mlflow-platform"


@dataclass(frozen=True, kw_only=True)
class ContractValue:
    name: str
    """Output name in the environment, parameter name in the service."""
    ssm_key: str
    description: str


VPC_LINK_ID = ContractValue(
    name="VpcLinkId",
    ssm_key="vpc-link-id",
    description="API Gateway VPC link into the tracking server's internal load balancer",
)
LISTENER_ARN = ContractValue(
    name="ListenerArn",
    ssm_key="listener-arn",
    description="Internal load balancer listener that the VPC link integration targets",
)
AUTH_MODE = ContractValue(
    name="TrackingAuthMode",
    ssm_key="auth-mode",
    description="How the tracking server authenticates requests: basic or iam",
)

ENVIRONMENT_OUTPUTS: tuple[ContractValue, ...] = (VPC_LINK_ID, LISTENER_ARN, AUTH_MODE)
BY_NAME: Mapping[str, ContractValue] = {value.name: value for value in ENVIRONMENT_OUTPUTS}


def ssm_parameter_name(environment_name: str, value: ContractValue) -> str:
    """The SSM parameter holding `value` for one environment."""
    return f"{SSM_ROOT}/{environment_name}/{value.ssm_key}"


def publish(
    stack: cdk.Stack, *, environment_name: str, values: Mapping[ContractValue, str]
) -> None:
    """Outputs and SSM parameters for every contract value; all of them, or it refuses."""
    missing = [v.name for v in ENVIRONMENT_OUTPUTS if v not in values]
    if missing:
        raise ValueError(f"the environment does not provide contract values {missing}")
    for value in ENVIRONMENT_OUTPUTS:
        cdk.CfnOutput(stack, value.name, value=values[value], description=value.description)
        ssm.StringParameter(
            stack,
            f"Contract{value.name}",
            parameter_name=ssm_parameter_name(environment_name, value),
            string_value=values[value],
            description=value.description,
            simple_name=False,
        )
