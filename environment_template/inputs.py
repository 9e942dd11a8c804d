"""The inputs of mlflow-environment, each declared once as a CloudFormation parameter."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from mlflow_platform.inputs import (
    HOST_NAME,
    HOST_NAME_MAX,
    environment_name_input,
    format_number,
    interface,
    log_retention_input,
    nat_gateways_input,
    number_input,
    require_at_most,
    require_pairs,
    string_input,
    vpc_cidr_input,
)
from tracking_server import settings

ECR_IMAGE_PATTERN = (
    r"^$|^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/"
    r"[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
)
CERTIFICATE_ARN_PATTERN = (
    r"^$|^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
TLS_SERVER_NAME_PATTERN = rf"^$|^{HOST_NAME}$"
_PRINCIPAL = r"arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=.@_/-]+"
ADMIN_PRINCIPALS_PATTERN = rf"^$|^{_PRINCIPAL}(,{_PRINCIPAL})*$"
# Fargate's valid CPU units -> memory (MiB) combinations for Linux tasks.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
MIN_ACU = (0, 0.5, 1, 2, 4, 8, 16, 32, 64)
MAX_ACU = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# AWS::RDS::DBInstance (CloudFormation resource reference): MonitoringInterval's valid values,
# and PerformanceInsightsRetentionPeriod's (7, a number of months from 1 to 23 times 31, or 731).
# 0 turns either off.
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
PERFORMANCE_INSIGHTS_RETENTION = (0, 7, *(31 * month for month in range(1, 24)), 731)


@dataclass(frozen=True, kw_only=True)
class EnvironmentInputs:
    environment_name: cdk.CfnParameter
    vpc_cidr: cdk.CfnParameter
    nat_gateways: cdk.CfnParameter
    auth_mode: cdk.CfnParameter
    admin_principals: cdk.CfnParameter
    ai_gateway: cdk.CfnParameter
    image_uri: cdk.CfnParameter
    task_cpu: cdk.CfnParameter
    task_memory: cdk.CfnParameter
    min_tasks: cdk.CfnParameter
    max_tasks: cdk.CfnParameter
    log_retention_days: cdk.CfnParameter
    database_min_capacity: cdk.CfnParameter
    database_max_capacity: cdk.CfnParameter
    database_backup_retention_days: cdk.CfnParameter
    certificate_arn: cdk.CfnParameter
    tls_server_name: cdk.CfnParameter
    database_monitoring_interval: cdk.CfnParameter
    database_performance_insights_retention: cdk.CfnParameter


def declare(stack: cdk.Stack) -> EnvironmentInputs:
    inputs = EnvironmentInputs(
        environment_name=environment_name_input(
            stack, description="Name of this MLflow environment; services find it by this name"
        ),
        vpc_cidr=vpc_cidr_input(stack, default="10.0.0.0/16", vpc="the MLflow VPC"),
        nat_gateways=nat_gateways_input(
            stack,
            traffic="the tracking service's outbound traffic (ECR, logs, Secrets Manager)",
            without_nat="interface endpoints in both zones serve the AWS APIs the tasks and "
            "the team-user function call, at an hourly price each",
        ),
        auth_mode=string_input(
            stack,
            "AuthMode",
            default="basic",
            description="basic: MLflow's own users and per-experiment permissions; iam: API "
            "Gateway IAM authorization with SigV4-signed requests",
            allowed_values=settings.AUTH_MODES,
        ),
        admin_principals=string_input(
            stack,
            "AdminPrincipals",
            default="",
            description="iam mode: IAM roles or users (ARNs, comma-separated) whose signed "
            "requests act as the MLflow admin; every other caller is a team's role",
            allowed_pattern=ADMIN_PRINCIPALS_PATTERN,
            constraint_description="empty, or IAM role or user ARNs separated by commas, such "
            "as arn:aws:iam::123456789012:role/MlflowAdmins",
            max_length=2048,
        ),
        ai_gateway=string_input(
            stack,
            "AiGateway",
            default="off",
            description="MLflow's AI gateway (provider keys, LLM endpoints): off answers every "
            "gateway route with 403; on serves it, provider keys encrypted with a generated "
            "secret. Off until it cannot be steered to call a URL a team chooses",
            allowed_values=settings.AI_GATEWAY_MODES,
        ),
        image_uri=string_input(
            stack,
            "ImageUri",
            default="",
            description="Tracking-server image in ECR; empty means the image this template "
            "version was built with, in this account's mlflow-tracking-server repository",
            allowed_pattern=ECR_IMAGE_PATTERN,
            constraint_description="empty, or an ECR image URI such as "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow-tracking-server:v1",
        ),
        task_cpu=number_input(
            stack,
            "TaskCpu",
            default=1024,
            description="CPU units of one tracking-server task: 256, 512, 1024 (1 vCPU), 2048 "
            "or 4096",
            # A range: the FargateMemoryForCpu rules hold the valid values and their memory.
            min_value=min(FARGATE_MEMORY),
            max_value=max(FARGATE_MEMORY),
        ),
        task_memory=number_input(
            stack,
            "TaskMemory",
            default=4096,
            description="Memory (MiB) of one tracking-server task; must be valid for TaskCpu "
            "on Fargate",
            min_value=512,
            max_value=30720,
        ),
        min_tasks=number_input(
            stack,
            "MinTasks",
            default=2,
            description="Tracking-server tasks kept running (also the initial count)",
            allowed_values=range(1, 11),
        ),
        max_tasks=number_input(
            stack,
            "MaxTasks",
            default=6,
            description="Most tracking-server tasks that CPU autoscaling may run",
            allowed_values=range(1, 21),
        ),
        log_retention_days=log_retention_input(stack, what="the tracking server's logs"),
        database_min_capacity=number_input(
            stack,
            "DatabaseMinCapacity",
            default=0.5,
            description="Least Aurora Serverless v2 capacity (ACU); 0 lets the database pause "
            "when idle",
            allowed_values=MIN_ACU,
        ),
        database_max_capacity=number_input(
            stack,
            "DatabaseMaxCapacity",
            default=4,
            description="Most Aurora Serverless v2 capacity (ACU)",
            allowed_values=MAX_ACU,
        ),
        database_backup_retention_days=number_input(
            stack,
            "DatabaseBackupRetentionDays",
            default=7,
            description="Days of automated database backups (point-in-time recovery window)",
            min_value=1,
            max_value=35,
        ),
        certificate_arn=string_input(
            stack,
            "CertificateArn",
            default="",
            description="ACM certificate of the internal load balancer (in this account and "
            "Region, publicly trusted: team APIs and the team-user function verify it against "
            "public CAs): given, it listens on HTTPS (443) only; empty, on plain HTTP (80) "
            "inside the VPC",
            allowed_pattern=CERTIFICATE_ARN_PATTERN,
            constraint_description="empty, or an ACM certificate ARN such as "
            "arn:aws:acm:eu-west-1:123456789012:certificate/"
            "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
            max_length=2048,
        ),
        tls_server_name=string_input(
            stack,
            "TlsServerName",
            default="",
            description="With a certificate: a name on it (lowercase), which team APIs verify "
            "and which resolves to the load balancer inside the MLflow VPC (a private hosted "
            "zone of that name); empty without a certificate",
            allowed_pattern=TLS_SERVER_NAME_PATTERN,
            constraint_description="empty, or a lowercase DNS name of two labels or more, "
            "such as mlflow.internal.example.com",
            max_length=HOST_NAME_MAX,
        ),
        database_monitoring_interval=number_input(
            stack,
            "DatabaseMonitoringInterval",
            default=60,
            description="Seconds between RDS Enhanced Monitoring samples of the database's "
            "operating system (CloudWatch Logs); 0 turns it off",
            allowed_values=MONITORING_INTERVALS,
        ),
        database_performance_insights_retention=number_input(
            stack,
            "DatabasePerformanceInsightsRetention",
            default=7,
            description="Days of Performance Insights history, encrypted with the stack's own "
            "KMS key: 7 (free tier), a number of months times 31, or 731; 0 turns it off",
            allowed_values=PERFORMANCE_INSIGHTS_RETENTION,
        ),
    )
    _require_together(stack, inputs.certificate_arn, inputs.tls_server_name)
    require_pairs(
        stack,
        "FargateMemoryForCpu",
        key=inputs.task_cpu,
        dependent=inputs.task_memory,
        allowed={
            format_number(cpu): [format_number(m) for m in memory]
            for cpu, memory in FARGATE_MEMORY.items()
        },
        description="With {key} {key_value}, Fargate accepts {dependent} of {allowed}",
    )
    require_at_most(
        stack, "DatabaseCapacityRange",
        lower=inputs.database_min_capacity, upper=inputs.database_max_capacity,
    )  # fmt: skip
    require_at_most(stack, "TaskCountRange", lower=inputs.min_tasks, upper=inputs.max_tasks)
    interface(
        stack,
        [
            (
                "Environment",
                [
                    (inputs.environment_name, "Environment name"),
                    (inputs.auth_mode, "Auth mode"),
                    (inputs.admin_principals, "Admin IAM principals (iam mode)"),
                    (inputs.ai_gateway, "MLflow AI gateway"),
                ],
            ),
            (
                "Network",
                [(inputs.vpc_cidr, "VPC CIDR block"), (inputs.nat_gateways, "NAT gateways")],
            ),
            (
                "Load balancer TLS",
                [
                    (inputs.certificate_arn, "Certificate ARN"),
                    (inputs.tls_server_name, "Name on the certificate"),
                ],
            ),
            (
                "Tracking server",
                [
                    (inputs.image_uri, "Image URI"),
                    (inputs.task_cpu, "Task CPU units"),
                    (inputs.task_memory, "Task memory (MiB)"),
                    (inputs.min_tasks, "Minimum tasks"),
                    (inputs.max_tasks, "Maximum tasks"),
                    (inputs.log_retention_days, "Log retention (days)"),
                ],
            ),
            (
                "Database",
                [
                    (inputs.database_min_capacity, "Minimum capacity (ACU)"),
                    (inputs.database_max_capacity, "Maximum capacity (ACU)"),
                    (inputs.database_backup_retention_days, "Backup retention (days)"),
                    (inputs.database_monitoring_interval, "Enhanced Monitoring interval (s)"),
                    (
                        inputs.database_performance_insights_retention,
                        "Performance Insights retention (days)",
                    ),
                ],
            ),
        ],
    )
    return inputs


def _require_together(stack: cdk.Stack, first: cdk.CfnParameter, second: cdk.CfnParameter) -> None:
    """Both inputs given, or neither: a certificate is no use without the name to verify."""
    for given, missing in ((first, second), (second, first)):
        cdk.CfnRule(
            stack,
            f"{missing.node.id}With{given.node.id}",
            rule_condition=cdk.Fn.condition_not(cdk.Fn.condition_equals(given.value_as_string, "")),
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_not(
                        cdk.Fn.condition_equals(missing.value_as_string, "")
                    ),
                    assert_description=f"{given.node.id} is given, so {missing.node.id} must be "
                    "given too (both, or neither for plain HTTP)",
                )
            ],
        )
