"""The team's SageMaker execution role: what a notebook or job needs to log to MLflow, no more.

Data access (training data buckets, model images) is the team's own business and is attached by
the team; this role carries only the platform's part.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlflow_platform.building.nag import acknowledge, logical_id


@dataclass(frozen=True, kw_only=True)
class TeamRoleProps:
    api: apigwv2.CfnApi
    readable_parameter_arns: list[str]
    readable_secret_arn: str
    vpc_id: str
    """The team's SageMaker VPC: the only one whose network interfaces the role may touch."""


class TeamRole(Construct):
    def __init__(self, scope: Construct, id: str, *, props: TeamRoleProps) -> None:
        super().__init__(scope, id)
        partition, region, account = cdk.Aws.PARTITION, cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID
        vpc_arn = f"arn:{partition}:ec2:{region}:{account}:vpc/{props.vpc_id}"
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of one team: log to MLflow through the "
            "team's API",
        )
        statements = [
            iam.PolicyStatement(
                sid="InvokeTrackingApi",
                actions=["execute-api:Invoke"],
                resources=[f"arn:{partition}:execute-api:{region}:{account}:{props.api.ref}/*"],
            ),
            iam.PolicyStatement(
                sid="ReadTrackingSettings",
                actions=["ssm:GetParameter", "ssm:GetParameters"],
                resources=props.readable_parameter_arns,
            ),
            iam.PolicyStatement(
                sid="ReadTeamCredentials",
                actions=["secretsmanager:GetSecretValue"],
                resources=[props.readable_secret_arn],
            ),
            iam.PolicyStatement(
                sid="SageMakerLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"],
            ),
            iam.PolicyStatement(
                sid="SageMakerMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            # Every resource these four actions authorize (network-interface, and for
            # CreateNetworkInterface also subnet and security-group) takes ec2:Vpc, an ARN
            # (Service Authorization Reference, "Actions, resources, and condition keys for
            # Amazon EC2"). ec2:Subnet is not defined on security groups, so it would refuse
            # every CreateNetworkInterface; ec2:AuthorizedService names the service a permission
            # is for, and SageMaker documents no value for it (CodeBuild's is
            # codebuild.amazonaws.com), so neither is used.
            iam.PolicyStatement(
                sid="SageMakerNetworkInterfacesInTheTeamVpc",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=["*"],
                conditions={"ArnEquals": {"ec2:Vpc": vpc_arn}},
            ),
            # Describe actions support no resource-level permissions or these keys.
            iam.PolicyStatement(
                sid="SageMakerVpcDescriptions",
                actions=[
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            ),
        ]
        self.policy = policy = iam.Policy(self, "Policy", statements=statements, roles=[self.role])
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
            f"<AWS::AccountId>:<{logical_id(props.api)}>/*]",
            "Every route and method of this team's own API: MLflow's REST API spans every path",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/*]",
            "SageMaker names a log group per job type under /aws/sagemaker/ at run time",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData and EC2's Describe actions have no resource-level "
            "permissions; metrics are limited to the SageMaker namespaces, and creating or "
            "deleting network interfaces and their permissions to the team's VPC (ec2:Vpc), "
            "by condition",
        )
