"""The function that gives each team its MLflow user (basic auth), for service stacks to call.

It is the only holder of the admin credential outside the tracking server, and it runs in the
private subnets, beside the load balancer it talks to.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlflow_platform import contract
from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge

HANDLER_SOURCE = Path(__file__).with_name("team_users_function.py")
# CloudFormation's limit for inline (ZipFile) function code.
INLINE_LIMIT = 4096
_INDENT = re.compile(r"^((?:    )+)", re.MULTILINE)


def response_url_pattern(region: str, url_suffix: str) -> str:
    """Where CloudFormation's custom-resource responses go in `region`: its own response
    bucket there, by a virtual-hosted S3 REST endpoint. The function sends nothing anywhere
    else, so a forged event cannot make it call an address, or a bucket, of the sender's.

    CloudFormation keeps one response bucket a Region, `cloudformation-custom-resource-
    response-<region without dashes>` (AWS CloudFormation User Guide, "Access CloudFormation
    using an interface endpoint (AWS PrivateLink)"); its pre-signed URLs name it on S3's
    regional endpoint `s3.<region>`, the legacy `s3-<region>` or the legacy global
    `s3.amazonaws.com` (Amazon S3 User Guide, "Virtual hosting of general purpose buckets";
    all three seen in CloudFormation's events). Other Regions' buckets, any other bucket (a
    name under the same prefix is anyone's to create) and website endpoints (`s3-website`,
    which answer GET only) are refused. Both arguments may be CloudFormation tokens: the
    pattern is then put together by CloudFormation in the Region it deploys to."""
    dashless = cdk.Fn.join("", cdk.Fn.split("-", region))
    suffix = cdk.Fn.join(r"\.", cdk.Fn.split(".", url_suffix))
    return (
        rf"^https://cloudformation-custom-resource-response-{dashless}\.s3"
        rf"(\.{region}|-{region})?\.{suffix}/"
    )


def inline_code(path: Path) -> str:
    """The module as Lambda receives it: the same statements, without docstrings or comments,
    indented by one space a level, to fit CloudFormation's 4 KB."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return _INDENT.sub(lambda m: " " * (len(m.group(1)) // 4), ast.unparse(tree)) + "\n"


@dataclass(frozen=True, kw_only=True)
class TeamUsersProps:
    vpc: ec2.IVpc
    environment_name: str
    tracking_url: str
    admin_secret: secretsmanager.ISecret
    load_balancer_security_group: ec2.ISecurityGroup
    listener_port: ec2.Port
    log_retention_days: cdk.CfnParameter


class TeamUsers(Construct):
    def __init__(self, scope: Construct, id: str, *, props: TeamUsersProps) -> None:
        super().__init__(scope, id)
        code = inline_code(HANDLER_SOURCE)
        if len(code) >= INLINE_LIMIT:
            raise ValueError(f"{HANDLER_SOURCE.name} is {len(code)} characters; inline code "
                             f"must stay under {INLINE_LIMIT}")  # fmt: skip
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="MLflow team-user function: the load balancer and AWS APIs (HTTPS)",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Secrets Manager and CloudFormation"
        )
        self.security_group.connections.allow_to(
            props.load_balancer_security_group, props.listener_port, "MLflow user API"
        )
        log_group = logs.CfnLogGroup(
            self, "Logs", retention_in_days=props.log_retention_days.value_as_number
        )
        log_group.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        checkov_skips.skip(log_group, "CKV_AWS_158", checkov_skips.LOG_GROUP_SERVICE_ENCRYPTION)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline(code),
            timeout=cdk.Duration.seconds(60),
            memory_size=256,
            vpc=props.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            log_group=logs.LogGroup.from_log_group_name(self, "LogGroup", log_group.ref),
            description="Creates, updates and deletes a team's MLflow user for its service stack",
            environment={
                "TRACKING_URL": props.tracking_url,
                "ADMIN_SECRET_ARN": props.admin_secret.secret_arn,
                "RESPONSE_URL_PATTERN": response_url_pattern(cdk.Aws.REGION, cdk.Aws.URL_SUFFIX),
            },
        )
        checkov_skips.skip(
            self.function,
            "CKV_AWS_116",
            "CloudFormation invokes the function for custom resources and waits for its answer; "
            "the function answers FAILED itself on any error, and a lost event shows as the "
            "stack's own timeout, where the operator looks, not in a queue no one reads",
        )
        checkov_skips.skip(
            self.function,
            "CKV_AWS_115",
            "Invoked only for team stacks' custom resources, one event per stack operation; a "
            "reserved concurrency would take from the account's unreserved pool, which new "
            "accounts with a low limit cannot spare (the create would fail)",
        )
        checkov_skips.skip(
            self.function,
            "CKV_AWS_173",
            "Its environment holds no secret: the tracking URL, the admin secret's ARN and the "
            "response URL pattern; Lambda encrypts it at rest with its AWS managed key",
        )
        props.admin_secret.grant_read(self.function)
        teams = (
            f"arn:{cdk.Aws.PARTITION}:secretsmanager:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
            f"secret:{contract.team_path(props.environment_name, '*').lstrip('/')}"
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadTeamSecrets", actions=["secretsmanager:GetSecretValue"], resources=[teams]
            )
        )
        # Read-only: which resources a stack has and where each stands, to check an event
        # against CloudFormation before acting on it.
        stacks = (
            f"arn:{cdk.Aws.PARTITION}:cloudformation:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
            "stack/*/*"
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ConfirmEventsWithCloudFormation",
                actions=["cloudformation:DescribeStackResources"],
                resources=[stacks],
            )
        )
        role = self.function.role
        assert role is not None
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "AWS's managed policy for a function's own log streams, nothing else",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaVPCAccessExecutionRole]",
            "AWS's managed policy for the network interfaces a function in a VPC needs",
        )
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:"
            "<AWS::AccountId>:secret:mlflow-platform/<EnvironmentName>/teams/*]",
            "Only the team secrets of this environment, which service stacks create by name "
            "after this function exists",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:"
            "<AWS::AccountId>:stack/*/*]",
            "DescribeStackResources only (read-only) on this account's stacks in this region: "
            "team stacks are created by Proton or Service Catalog under names this template "
            "cannot know, and each event names its own",
        )
