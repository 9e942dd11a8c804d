"""The backend store: Aurora PostgreSQL Serverless v2 in the isolated subnets.

L1 resources, because RDS-managed master credentials (`ManageMasterUserPassword`) keep the password
out of the template entirely: no `{{resolve:...}}` reference, no rotation Lambda to deploy.

- TLS is required by the cluster (`rds.force_ssl=1` in its parameter group) and the server
  verifies the certificate (sslmode=verify-full against the RDS CA bundle in its image).
- The server connects as its own role (`mlflow_server`, password in a secret of its own that
  nothing rotates); the RDS-managed master secret, rotated every 7 days, serves only to create
  that role and keep it in step (src/tracking_server/database_role.py), so a rotation never
  touches a running or starting task.
- Enhanced Monitoring and Performance Insights on every instance, as inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge
from tracking_server import settings

ENGINE = "aurora-postgresql"
# A current release that supports scaling to 0 ACU; cfn-lint flags deprecated ones (W3690).
ENGINE_VERSION = "17.7"
PORT = 5432
DATABASE_NAME = "mlflow"
MASTER_USERNAME = "mlflow"
# The parameter group family of ENGINE_VERSION ("aurora-postgresql17" for 17.x).
PARAMETER_GROUP_FAMILY = f"{ENGINE}{ENGINE_VERSION.split('.')[0]}"
# "Requiring an SSL/TLS connection to an Aurora PostgreSQL DB cluster" (Aurora User Guide).
CLUSTER_PARAMETERS = {"rds.force_ssl": "1"}
# AWS's managed policy for the Enhanced Monitoring role ("Setting up and enabling Enhanced
# Monitoring", Amazon RDS User Guide).
MONITORING_POLICY = "service-role/AmazonRDSEnhancedMonitoringRole"


@dataclass(frozen=True, kw_only=True)
class DatabaseProps:
    vpc: ec2.IVpc
    min_capacity: cdk.CfnParameter
    max_capacity: cdk.CfnParameter
    backup_retention_days: cdk.CfnParameter
    monitoring_interval: cdk.CfnParameter
    performance_insights_retention: cdk.CfnParameter


class Database(Construct):
    def __init__(self, scope: Construct, id: str, *, props: DatabaseProps) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="MLflow backend store: PostgreSQL from the tracking service only",
            allow_all_outbound=False,
        )
        subnets = rds.CfnDBSubnetGroup(
            self,
            "Subnets",
            db_subnet_group_description="Isolated subnets of the MLflow VPC",
            subnet_ids=props.vpc.select_subnets(
                subnet_type=ec2.SubnetType.PRIVATE_ISOLATED
            ).subnet_ids,
        )
        parameters = rds.CfnDBClusterParameterGroup(
            self,
            "Parameters",
            description="MLflow backend store: TLS required for every connection",
            family=PARAMETER_GROUP_FAMILY,
            parameters=CLUSTER_PARAMETERS,
        )
        self.cluster = rds.CfnDBCluster(
            self,
            "Cluster",
            db_cluster_parameter_group_name=parameters.ref,
            engine=ENGINE,
            engine_version=ENGINE_VERSION,
            database_name=DATABASE_NAME,
            master_username=MASTER_USERNAME,
            manage_master_user_password=True,
            port=PORT,
            db_subnet_group_name=subnets.ref,
            vpc_security_group_ids=[self.security_group.security_group_id],
            serverless_v2_scaling_configuration=rds.CfnDBCluster.ServerlessV2ScalingConfigurationProperty(
                min_capacity=props.min_capacity.value_as_number,
                max_capacity=props.max_capacity.value_as_number,
            ),
            storage_encrypted=True,
            deletion_protection=True,
            backup_retention_period=props.backup_retention_days.value_as_number,
            copy_tags_to_snapshot=True,
            enable_cloudwatch_logs_exports=["postgresql"],
        )
        self.cluster.apply_removal_policy(cdk.RemovalPolicy.SNAPSHOT)
        no_iam_auth = (
            "MLflow connects through SQLAlchemy with a password and cannot refresh IAM auth "
            "tokens; the server uses its own role, whose password is in its own secret, over "
            "TLS that the cluster requires and the server verifies; the RDS-managed master "
            "password only sets that role up, and only the tracking service reaches the database"
        )
        acknowledge(self.cluster, "AwsSolutions-RDS6", no_iam_auth)
        checkov_skips.skip(self.cluster, "CKV_AWS_162", no_iam_auth)
        self.server_secret = secretsmanager.Secret(
            self,
            "ServerRole",
            description="MLflow tracking server's own database role (created by its entrypoint)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{settings.SERVER_DB_ROLE}"}}',
                generate_string_key="password",
                password_length=32,
                exclude_punctuation=True,
            ),
        )
        # The database, in a final snapshot too, keeps the role; the secret must outlive it.
        self.server_secret.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        acknowledge(
            self.server_secret,
            "AwsSolutions-SMG4",
            "Each task sets the role's password from this secret when it starts; a scheduled "
            "rotation would change it under the running tasks, whose new connections would then "
            "fail. It is changed by updating the secret and redeploying the service",
        )
        checkov_skips.skip(self.server_secret, "CKV_AWS_149", checkov_skips.SECRET_AWS_MANAGED_KEY)
        self._add_writer(props)
        self.endpoint = self.cluster.attr_endpoint_address
        self.port = PORT
        self.master_secret = secretsmanager.Secret.from_secret_complete_arn(
            self, "MasterSecret", self.cluster.attr_master_user_secret_secret_arn
        )

    def _add_writer(self, props: DatabaseProps) -> None:
        """The writer, with Enhanced Monitoring and Performance Insights as the inputs say
        (0 turns either off; RDS refuses a role or a retention period with it off)."""
        monitoring_on = cdk.CfnCondition(
            self,
            "MonitoringOn",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(props.monitoring_interval.value_as_number, 0)
            ),
        )
        insights_on = cdk.CfnCondition(
            self,
            "PerformanceInsightsOn",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(props.performance_insights_retention.value_as_number, 0)
            ),
        )
        monitoring_role = iam.Role(
            self,
            "MonitoringRole",
            assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(MONITORING_POLICY)],
            description="RDS Enhanced Monitoring of the MLflow backend store",
        )
        acknowledge(
            monitoring_role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{MONITORING_POLICY}]",
            "AWS's own policy for the Enhanced Monitoring role, as the RDS User Guide sets it up: "
            "it writes only to the RDSOSMetrics log group and AWS keeps it in step with RDS",
        )
        self.insights_key = kms.Key(
            self,
            "PerformanceInsightsKey",
            description="Performance Insights data of the MLflow backend store (SQL text)",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        no_value = cdk.Aws.NO_VALUE
        self.writer = rds.CfnDBInstance(
            self,
            "Writer",
            engine=ENGINE,
            db_cluster_identifier=self.cluster.ref,
            db_instance_class="db.serverless",
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            monitoring_interval=props.monitoring_interval.value_as_number,
            monitoring_role_arn=cdk.Fn.condition_if(
                monitoring_on.logical_id, monitoring_role.role_arn, no_value
            ).to_string(),
            enable_performance_insights=cdk.Fn.condition_if(insights_on.logical_id, True, False),
            performance_insights_retention_period=cdk.Token.as_number(
                cdk.Fn.condition_if(
                    insights_on.logical_id,
                    props.performance_insights_retention.value_as_number,
                    no_value,
                )
            ),
            performance_insights_kms_key_id=cdk.Fn.condition_if(
                insights_on.logical_id, self.insights_key.key_arn, no_value
            ).to_string(),
        )
        # The cluster owns the storage and its final snapshot; an instance holds no data.
        self.writer.apply_removal_policy(cdk.RemovalPolicy.DESTROY)

    def allow_from(self, peer: ec2.ISecurityGroup) -> None:
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(PORT), "PostgreSQL from the tracking service"
        )
