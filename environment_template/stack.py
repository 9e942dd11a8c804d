"""mlflow-environment: wires the parts together; each part lives in its own module."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from environment_template import inputs as environment_inputs
from environment_template.artifacts import ArtifactStore
from environment_template.auth_secrets import AuthSecrets
from environment_template.database import DATABASE_NAME, Database, DatabaseProps
from environment_template.ingress import Ingress, IngressProps
from environment_template.team_users import TeamUsers, TeamUsersProps
from environment_template.tracking_service import TrackingService, TrackingServiceProps
from mlflow_platform import contract
from mlflow_platform.constructs.access_logs import (
    LOAD_BALANCER_PREFIX,
    AccessLogs,
)
from mlflow_platform.constructs.network import Network, NetworkProps
from tracking_server import settings

DESCRIPTION = (
    "mlflow-environment: a shared MLflow tracking server (ECS Fargate) with an Aurora PostgreSQL "
    "Serverless v2 backend store and an S3 artifact store, private behind an internal load "
    "balancer and an API Gateway VPC link"
)

# What the tracking tasks and the team-user function call, for NatGateways=0. ECR's API and
# registry (image pulls; layers come from S3), CloudWatch Logs (awslogs driver) and Secrets
# Manager (ECS secrets; the function's admin and team secrets): Fargate platform 1.4 makes
# these calls through the task's own network interface (Amazon ECS Developer Guide, "Amazon
# ECS interface VPC endpoints (AWS PrivateLink)"). CloudFormation: the function's
# DescribeStackResources. S3 (artifacts, image layers, the function's responses to
# CloudFormation's pre-signed URLs) goes through the gateway endpoint. Nothing calls STS: task
# and function credentials come from ECS and Lambda.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "cloudformation")


class EnvironmentStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs: object) -> None:
        super().__init__(scope, id, description=DESCRIPTION, **kwargs)  # type: ignore[arg-type]
        inputs = environment_inputs.declare(self)
        access_logs = AccessLogs(self, "AccessLogs", load_balancer_logs=True)
        network = Network(
            self,
            "Network",
            props=NetworkProps(
                vpc_cidr=inputs.vpc_cidr,
                nat_gateways=inputs.nat_gateways,
                access_logs=access_logs,
                interface_endpoints=INTERFACE_ENDPOINTS,
            ),
        )
        artifacts = ArtifactStore(self, "Artifacts")
        access_logs.log_server_access_of(artifacts.bucket)
        database = Database(
            self,
            "Database",
            props=DatabaseProps(
                vpc=network.vpc,
                min_capacity=inputs.database_min_capacity,
                max_capacity=inputs.database_max_capacity,
                backup_retention_days=inputs.database_backup_retention_days,
                monitoring_interval=inputs.database_monitoring_interval,
                performance_insights_retention=inputs.database_performance_insights_retention,
            ),
        )
        auth = AuthSecrets(self, "Auth")
        tracking = TrackingService(
            self,
            "Tracking",
            props=TrackingServiceProps(
                vpc=network.vpc,
                image_uri=inputs.image_uri,
                cpu=inputs.task_cpu,
                memory=inputs.task_memory,
                min_tasks=inputs.min_tasks,
                max_tasks=inputs.max_tasks,
                log_retention_days=inputs.log_retention_days,
                auth_mode=inputs.auth_mode.value_as_string,
                database_host=database.endpoint,
                database_port=database.port,
                database_name=DATABASE_NAME,
                database_secret=database.server_secret,
                database_master_secret=database.master_secret,
                admin_secret=auth.admin,
                server_key_secret=auth.server_key,
                gateway_key_secret=auth.gateway_key,
                ai_gateway=inputs.ai_gateway.value_as_string,
                artifacts_destination=artifacts.destination,
            ),
        )
        artifacts.grant_tracking_server(tracking.task_definition.task_role)
        database.allow_from(tracking.security_group)
        tracking.allow_to_database(database.security_group, database.port)
        ingress = Ingress(
            self,
            "Ingress",
            props=IngressProps(
                vpc=network.vpc,
                service=tracking.service,
                access_log_bucket=access_logs.bucket,
                access_log_prefix=LOAD_BALANCER_PREFIX,
                access_log_policy=access_logs.policy,
                certificate_arn=inputs.certificate_arn.value_as_string,
                tls_server_name=inputs.tls_server_name.value_as_string,
            ),
        )
        tracking_host = ingress.load_balancer.load_balancer_dns_name
        tracking.container.add_environment(
            settings.ADMIN_PRINCIPALS, inputs.admin_principals.value_as_string
        )
        hosts = settings.cloud_hosts(
            load_balancer_dns_name=tracking_host,
            region=cdk.Aws.REGION,
            url_suffix=cdk.Aws.URL_SUFFIX,
        )
        tls_server_name = inputs.tls_server_name.value_as_string
        # With a certificate, the team-user function calls the server by the name on it.
        tracking.container.add_environment(
            settings.ALLOWED_HOSTS,
            cdk.Fn.condition_if(
                ingress.https.logical_id, cdk.Fn.join(",", [hosts, tls_server_name]), hosts
            ).to_string(),
        )
        team_users = TeamUsers(
            self,
            "TeamUsers",
            props=TeamUsersProps(
                vpc=network.vpc,
                environment_name=inputs.environment_name.value_as_string,
                tracking_url=ingress.tracking_url(),
                admin_secret=auth.admin,
                load_balancer_security_group=ingress.load_balancer_security_group,
                listener_port=ingress.listener_port,
                log_retention_days=inputs.log_retention_days,
            ),
        )
        iam_auth = cdk.CfnCondition(
            self,
            "IamAuth",
            expression=cdk.Fn.condition_equals(inputs.auth_mode.value_as_string, "iam"),
        )
        contract.publish(
            self,
            environment_name=inputs.environment_name.value_as_string,
            values={
                contract.VPC_LINK_ID: ingress.vpc_link.vpc_link_id,
                contract.LISTENER_ARN: ingress.listener.listener_arn,
                contract.AUTH_MODE: inputs.auth_mode.value_as_string,
                contract.ROUTE_AUTHORIZATION: cdk.Fn.condition_if(
                    iam_auth.logical_id, "AWS_IAM", "NONE"
                ).to_string(),
                contract.TEAM_USERS: team_users.function.function_arn,
                contract.TRACKING_HOST: tracking_host,
                contract.ENVIRONMENT_NAME: inputs.environment_name.value_as_string,
                contract.TLS_SERVER_NAME: cdk.Fn.condition_if(
                    ingress.https.logical_id, tls_server_name, contract.TLS_OFF
                ).to_string(),
                contract.CLIENT_SETTINGS: cdk.Fn.condition_if(
                    iam_auth.logical_id,
                    contract.client_settings_members("iam"),
                    contract.client_settings_members("basic"),
                ).to_string(),
            },
        )
