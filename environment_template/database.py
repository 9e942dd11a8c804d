"""The backend store: Aurora PostgreSQL Serverless v2 in the isolated subnets.

L1 resources, because RDS-managed master credentials (`ManageMasterUserPassword`) keep the password
out of the template entirely: no `{{resolve:...}}` reference, no rotation Lambda to deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlflow_platform.building.nag import acknowledge

ENGINE = "aurora-postgresql"
# A current release that supports scaling to 0 ACU; cfn-lint flags deprecated ones (W3690).
ENGINE_VERSION = "17.7"
PORT = 5432
DATABASE_NAME = "mlflow"
MASTER_USERNAME = "mlflow"


@dataclass(frozen=True, kw_only=True)
class DatabaseProps:
    vpc: ec2.IVpc
    min_capacity: cdk.CfnParameter
    max_capacity: cdk.CfnParameter
    backup_retention_days: cdk.CfnParameter


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
        self.cluster = rds.CfnDBCluster(
            self,
            "Cluster",
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
        acknowledge(
            self.cluster,
            "AwsSolutions-RDS6",
            "MLflow connects through SQLAlchemy with a password and cannot refresh IAM auth "
            "tokens; the password is RDS-managed in Secrets Manager and only the tracking "
            "service's security group reaches the database",
        )
        self.writer = rds.CfnDBInstance(
            self,
            "Writer",
            engine=ENGINE,
            db_cluster_identifier=self.cluster.ref,
            db_instance_class="db.serverless",
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
        )
        # The cluster owns the storage and its final snapshot; an instance holds no data.
        self.writer.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        self.endpoint = self.cluster.attr_endpoint_address
        self.port = PORT
        self.master_secret = secretsmanager.Secret.from_secret_complete_arn(
            self, "MasterSecret", self.cluster.attr_master_user_secret_secret_arn
        )

    def allow_from(self, peer: ec2.ISecurityGroup) -> None:
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(PORT), "PostgreSQL from the tracking service"
        )
