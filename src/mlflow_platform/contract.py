"""What the environment provides to the services that run in it, named once.

Both templates import this module. The environment publishes each value as a stack output (which
Proton hands to services as `environment.outputs.<Name>`) and as an SSM parameter under a
per-environment prefix. The service reads each value with `read()`, an SSM dynamic reference by
environment name: that is the native form, deployable as is and what Service Catalog products
use. Rendering for Proton replaces each such reference with `{{ environment.outputs.<Name> }}`.

Dynamic references resolve in resource properties only, never in Conditions, so a service never
branches on a contract value; the environment publishes values ready to use instead (the route
authorization type rather than only the auth mode).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow_platform import client_settings

if TYPE_CHECKING:  # the names are read by rendering and publishing, which need no CDK
    import aws_cdk as cdk

SSM_ROOT = "/mlflow-platform"
ENVIRONMENT_NAME_PARAMETER = "EnvironmentName"


@dataclass(frozen=True, kw_only=True)
class ContractValue:
    name: str
    """Output name in the environment: Proton's `environment.outputs.<name>`."""
    ssm_key: str
    description: str
    example: str
    """A value of the right shape, for rendering example service specs."""


VPC_LINK_ID = ContractValue(
    name="VpcLinkId",
    ssm_key="vpc-link-id",
    description="API Gateway VPC link into the tracking server's internal load balancer",
    example="a1b2c3",
)
LISTENER_ARN = ContractValue(
    name="ListenerArn",
    ssm_key="listener-arn",
    description="Internal load balancer listener that the VPC link integration targets",
    example="arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/mlflow/"
    "0123456789abcdef/0123456789abcdef",
)
AUTH_MODE = ContractValue(
    name="TrackingAuthMode",
    ssm_key="auth-mode",
    description="How the tracking server authenticates requests: basic or iam",
    example="basic",
)

ROUTE_AUTHORIZATION = ContractValue(
    name="RouteAuthorizationType",
    ssm_key="route-authorization-type",
    description="Authorization type of the routes in front of the tracking server: AWS_IAM in "
    "iam mode, NONE in basic mode (the tracking server authenticates)",
    example="NONE",
)
TEAM_USERS = ContractValue(
    name="TeamUserFunctionArn",
    ssm_key="team-user-function-arn",
    description="Custom-resource function that creates a team's MLflow user (basic auth)",
    example="arn:aws:lambda:eu-west-1:123456789012:function:mlflow-team-users",
)
TRACKING_HOST = ContractValue(
    name="TrackingHost",
    ssm_key="tracking-host",
    description="Host header the tracking server accepts: its internal load balancer's DNS "
    "name, which team APIs send whatever domain a client called",
    example="internal-mlflow-0123456789.eu-west-1.elb.amazonaws.com",
)
ENVIRONMENT_NAME = ContractValue(
    name="MlflowEnvironmentName",
    ssm_key="environment-name",
    description="Name of the environment: the prefix of its SSM parameters",
    example="mlflow",
)

TLS_SERVER_NAME = ContractValue(
    name="TrackingTlsServerName",
    ssm_key="tls-server-name",
    description="Name on the load balancer's certificate, which team APIs verify over HTTPS; "
    "none when the load balancer has no certificate and listens on HTTP",
    example="none",
)
# The TlsServerName of a plain-HTTP listener (an SSM parameter cannot be empty).
TLS_OFF = "none"

# The one setting of client_settings.client_environment that differs from team to team.
TRACKING_URI = "MLFLOW_TRACKING_URI"


def client_settings_members(auth_mode: str) -> str:
    """CLIENT_SETTINGS in this auth mode: `client_environment` without the tracking URI, as
    JSON object members (the environment cannot condition on a team's URL, a team stack cannot
    condition on a value it reads from SSM, so each supplies its part)."""
    settings = client_settings.client_environment(tracking_uri="", auth_mode=auth_mode)
    del settings[TRACKING_URI]
    return json.dumps(settings, separators=(",", ":"))[1:-1]


def client_environment_json(*, tracking_uri: str, members: str) -> list[str]:
    """The parts that Fn::Join (delimiter "") makes the team's client environment of: a JSON
    object string of `client_environment`, the URL (a token) first, then CLIENT_SETTINGS."""
    return ["{" + json.dumps(TRACKING_URI) + ':"', tracking_uri, '",', members, "}"]


CLIENT_SETTINGS = ContractValue(
    name="ClientSettings",
    ssm_key="client-settings",
    description="What every team's clients set beside their own MLFLOW_TRACKING_URI (the "
    "artifact settings, and in iam mode the SigV4 auth provider): the members of a JSON "
    "object, without its braces, which each team stack joins with its API's URL",
    example=client_settings_members("basic"),
)

ENVIRONMENT_OUTPUTS: tuple[ContractValue, ...] = (
    VPC_LINK_ID,
    LISTENER_ARN,
    AUTH_MODE,
    ROUTE_AUTHORIZATION,
    TEAM_USERS,
    TRACKING_HOST,
    ENVIRONMENT_NAME,
    TLS_SERVER_NAME,
    CLIENT_SETTINGS,
)
BY_NAME: Mapping[str, ContractValue] = {value.name: value for value in ENVIRONMENT_OUTPUTS}
BY_SSM_KEY: Mapping[str, ContractValue] = {value.ssm_key: value for value in ENVIRONMENT_OUTPUTS}
# What read() writes into a template, as rendering finds it again.
SSM_REFERENCE = re.compile(
    r"\{\{resolve:ssm:" + re.escape(SSM_ROOT) + r"/\$\{"
    + ENVIRONMENT_NAME_PARAMETER + r"\}/([a-z0-9-]+)\}\}"
)  # fmt: skip


def team_path(environment_name: str, team_name: str) -> str:
    """Where a team's own parameters live; without the leading slash, its secret's name."""
    return f"{SSM_ROOT}/{environment_name}/teams/{team_name}"


def ssm_parameter_name(environment_name: str, value: ContractValue) -> str:
    """The SSM parameter holding `value` for one environment."""
    return f"{SSM_ROOT}/{environment_name}/{value.ssm_key}"


def publish(
    stack: cdk.Stack, *, environment_name: str, values: Mapping[ContractValue, str]
) -> None:
    """Outputs and SSM parameters for every contract value; all of them, or it refuses."""
    import aws_cdk as cdk
    from aws_cdk import aws_ssm as ssm

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


def read_text(value: ContractValue) -> str:
    """The Fn::Sub text of the dynamic reference that read() writes."""
    return f"{{{{resolve:ssm:{SSM_ROOT}/${{{ENVIRONMENT_NAME_PARAMETER}}}/{value.ssm_key}}}}}"


def read(value: ContractValue) -> str:
    """The value of the environment named by the stack's EnvironmentName parameter."""
    import aws_cdk as cdk

    return cdk.Fn.sub(read_text(value))
