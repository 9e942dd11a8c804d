"""mlflow-sagemaker-api: wires the parts together; each part lives in its own module."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mlflow_platform import contract
from mlflow_platform.constructs.access_logs import AccessLogs
from mlflow_platform.constructs.network import Network, NetworkProps
from service_template import inputs as service_inputs
from service_template.api import TrackingApi, TrackingApiProps
from service_template.studio import Studio, StudioProps
from service_template.team_role import TeamRole, TeamRoleProps
from service_template.team_user import TeamUser, TeamUserProps

DESCRIPTION = (
    "mlflow-sagemaker-api: one team's SageMaker VPC and HTTP API into a shared MLflow "
    "environment, with the team's SageMaker execution role"
)
TEAM_PARAMETER_ROOT = contract.team_path("${EnvironmentName}", "${TeamName}")
# The team's parameters under that root; the team role may read both.
TRACKING_URI_KEY = "tracking-uri"
CLIENT_ENVIRONMENT_KEY = "client-environment"


class ServiceStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs: object) -> None:
        super().__init__(scope, id, description=DESCRIPTION, **kwargs)  # type: ignore[arg-type]
        inputs = service_inputs.declare(self)
        flow_logs = AccessLogs(self, "FlowLogs", load_balancer_logs=False)
        network = Network(
            self,
            "Network",
            props=NetworkProps(
                vpc_cidr=inputs.vpc_cidr,
                nat_gateways=inputs.nat_gateways,
                access_logs=flow_logs,
            ),
        )
        workloads = ec2.SecurityGroup(
            self,
            "WorkloadSecurityGroup",
            vpc=network.vpc,
            description="SageMaker notebooks and jobs of the team: HTTPS out, and each other "
            "for distributed training",
            allow_all_outbound=False,
        )
        workloads.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")
        workloads.add_ingress_rule(workloads, ec2.Port.all_traffic(), "Distributed training")
        workloads.add_egress_rule(workloads, ec2.Port.all_traffic(), "Distributed training")

        api = TrackingApi(
            self,
            "Tracking",
            props=TrackingApiProps(
                team_name=inputs.team_name.value_as_string,
                throttling_rate_limit=inputs.throttling_rate_limit,
                throttling_burst_limit=inputs.throttling_burst_limit,
                log_retention_days=inputs.log_retention_days,
                tls_server_name=inputs.tls_server_name,
            ),
        )
        tracking_uri = ssm.CfnParameter(
            self,
            "TrackingUriParameter",
            name=cdk.Fn.sub(f"{TEAM_PARAMETER_ROOT}/{TRACKING_URI_KEY}"),
            type="String",
            value=api.url,
            description="MLFLOW_TRACKING_URI for the team's notebooks and jobs",
        )
        # The mapping client_settings.client_environment gives for this team API in the
        # environment's auth mode, as a JSON object string: this API's URL joined with the
        # settings the environment publishes for its mode (a contract value, because a
        # Condition cannot read it).
        client_environment = ssm.CfnParameter(
            self,
            "ClientEnvironmentParameter",
            name=cdk.Fn.sub(f"{TEAM_PARAMETER_ROOT}/{CLIENT_ENVIRONMENT_KEY}"),
            type="String",
            value=cdk.Fn.join(
                "",
                contract.client_environment_json(
                    tracking_uri=api.url, members=contract.read(contract.CLIENT_SETTINGS)
                ),
            ),
            description="Environment variables for the team's notebooks and jobs (a JSON "
            "object): MLFLOW_TRACKING_URI, the artifact settings, the auth provider in iam mode",
        )
        auth_mode_arn = cdk.Fn.sub(
            f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter"
            f"{contract.SSM_ROOT}/${{EnvironmentName}}/{contract.AUTH_MODE.ssm_key}"
        )
        team_user = TeamUser(
            self, "TeamUser", props=TeamUserProps(team_name=inputs.team_name.value_as_string)
        )
        team = TeamRole(
            self,
            "Team",
            props=TeamRoleProps(
                api=api.api,
                readable_parameter_arns=[
                    *(
                        cdk.Fn.sub(
                            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                            f"parameter{TEAM_PARAMETER_ROOT}/{key}"
                        )
                        for key in (TRACKING_URI_KEY, CLIENT_ENVIRONMENT_KEY)
                    ),
                    auth_mode_arn,
                ],
                readable_secret_arn=team_user.secret.ref,
                vpc_id=network.vpc_id,
            ),
        )
        team_user.register(principal_arn=team.role.role_arn)
        private_subnet_ids = network.vpc.select_subnets(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
        ).subnet_ids
        studio = Studio(
            self,
            "Studio",
            props=StudioProps(
                create=inputs.create_studio_domain,
                team_name=inputs.team_name.value_as_string,
                vpc_id=network.vpc_id,
                subnet_ids=private_subnet_ids,
                security_group_id=workloads.security_group_id,
                execution_role_arn=team.role.role_arn,
            ),
        )
        outputs = {
            "TrackingUri": (api.url, "MLFLOW_TRACKING_URI for the team's notebooks and jobs"),
            "TrackingUriParameterName": (tracking_uri.ref, "SSM parameter holding the URI"),
            "ClientEnvironment": (
                client_environment.attr_value,
                "Environment variables for the team's notebooks and jobs, a JSON object",
            ),
            "ClientEnvironmentParameterName": (
                client_environment.ref,
                "SSM parameter holding ClientEnvironment",
            ),
            "TeamRoleArn": (team.role.role_arn, "SageMaker execution role of the team"),
            "TeamCredentialsSecretArn": (
                team_user.secret.ref,
                "Secret with the team's MLflow username and password (basic auth)",
            ),
            "VpcId": (network.vpc_id, "The team's SageMaker VPC"),
            "PrivateSubnetIds": (
                cdk.Fn.join(",", private_subnet_ids),
                "Subnets for SageMaker notebooks, Studio and jobs",
            ),
            "StudioDomainId": (studio.domain_id, "SageMaker Studio domain, or none"),
            "WorkloadSecurityGroupId": (
                workloads.security_group_id,
                "Security group for SageMaker notebooks, Studio and jobs",
            ),
        }  # fmt: skip
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)
