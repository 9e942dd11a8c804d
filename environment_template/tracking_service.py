"""The MLflow tracking server: an ECS Fargate service in the private subnets."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge, logical_id
from mlflow_platform.image import tag as image
from tracking_server import settings

CONTAINER_NAME = "tracking-server"
# The init container: the same image with the entrypoint's set-up command. It alone receives the
# master user's secret, sets the server's database role up and exits; the server container
# starts only once it exited 0 (dependsOn, condition SUCCESS).
SETUP_CONTAINER_NAME = "database-setup"
SETUP_COMMAND = [settings.SETUP_DATABASE]
# The Dockerfile's user (and group); set here too so the task definition says it, whatever the
# image declares.
CONTAINER_USER = "10001:10001"
# The root filesystem is read-only; the server writes only temporary files (its auth config,
# Python's and MLflow's scratch files), on a task volume (Fargate task storage) mounted here.
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
CPU_TARGET_PERCENT = 70
ECR_DOMAIN = "amazonaws.com"


def s3_settings() -> dict[str, str]:
    """Where the server's S3 client signs for, stated rather than discovered.

    The server presigns every artifact URL that a client or a browser then uses from the team's
    VPC. botocore signs for its configured region (the credential scope), which it reads from
    AWS_DEFAULT_REGION, not AWS_REGION (mlflow/mlflow#11828: AWS_REGION=eu-west-1 alone, URLs
    signed for us-east-1); the SDKs of the other languages read AWS_REGION. Without an endpoint
    botocore presigns for the legacy global host `<bucket>.s3.amazonaws.com`, which a bucket
    outside us-east-1 may answer with a redirect for a while after it is made. So the task
    names its Region both ways and S3's regional endpoint, virtual-hosted: every URL goes to
    `<bucket>.s3.<region>.<suffix>`, signed for that Region.
    """
    return {
        "AWS_REGION": cdk.Aws.REGION,
        "AWS_DEFAULT_REGION": cdk.Aws.REGION,
        "MLFLOW_S3_ENDPOINT_URL": f"https://s3.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}",
        "MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE": "virtual",
    }


@dataclass(frozen=True, kw_only=True)
class TrackingServiceProps:
    vpc: ec2.IVpc
    image_uri: cdk.CfnParameter
    cpu: cdk.CfnParameter
    memory: cdk.CfnParameter
    min_tasks: cdk.CfnParameter
    max_tasks: cdk.CfnParameter
    log_retention_days: cdk.CfnParameter
    auth_mode: str
    database_host: str
    database_port: int
    database_name: str
    database_secret: secretsmanager.ISecret  # the server's own role
    database_master_secret: secretsmanager.ISecret  # only to set that role up
    admin_secret: secretsmanager.ISecret
    server_key_secret: secretsmanager.ISecret
    gateway_key_secret: secretsmanager.ISecret
    ai_gateway: str
    artifacts_destination: str


class TrackingService(Construct):
    def __init__(self, scope: Construct, id: str, *, props: TrackingServiceProps) -> None:
        super().__init__(scope, id)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=props.vpc,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )
        self.log_group = logs.CfnLogGroup(
            self, "Logs", retention_in_days=props.log_retention_days.value_as_number
        )
        self.log_group.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        checkov_skips.skip(
            self.log_group, "CKV_AWS_158", checkov_skips.LOG_GROUP_SERVICE_ENCRYPTION
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=props.cpu.value_as_number,
            memory_limit_mib=props.memory.value_as_number,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        image_uri = self._image_uri(props.image_uri)
        self._grant_image_pull(image_uri)
        logging = ecs.LogDriver.aws_logs(
            stream_prefix="mlflow",
            log_group=logs.LogGroup.from_log_group_name(self, "LogGroup", self.log_group.ref),
        )
        server_image = ecs.ContainerImage.from_registry(image_uri)
        database_environment = {
            settings.DB_HOST: props.database_host,
            settings.DB_PORT: str(props.database_port),
            settings.DB_NAME: props.database_name,
            # Anything that writes to a temporary or home directory writes to the volume.
            "TMPDIR": SCRATCH_PATH,
            "HOME": SCRATCH_PATH,
        }
        server_role_secrets = {
            settings.DB_USERNAME: ecs.Secret.from_secrets_manager(
                props.database_secret, "username"
            ),
            settings.DB_PASSWORD: ecs.Secret.from_secrets_manager(
                props.database_secret, "password"
            ),
        }
        # Non-essential: it exits when done; an exit other than 0 keeps the server from
        # starting, so the task stops and the service starts another.
        self.setup_container = self.task_definition.add_container(
            "DatabaseSetup",
            container_name=SETUP_CONTAINER_NAME,
            image=server_image,
            command=SETUP_COMMAND,
            essential=False,
            readonly_root_filesystem=True,
            user=CONTAINER_USER,
            logging=logging,
            environment=database_environment,
            secrets={
                **server_role_secrets,
                settings.DB_MASTER_USERNAME: ecs.Secret.from_secrets_manager(
                    props.database_master_secret, "username"
                ),
                settings.DB_MASTER_PASSWORD: ecs.Secret.from_secrets_manager(
                    props.database_master_secret, "password"
                ),
            },
        )
        self.container = container = self.task_definition.add_container(
            "Server",
            container_name=CONTAINER_NAME,
            image=server_image,
            essential=True,
            readonly_root_filesystem=True,
            user=CONTAINER_USER,
            port_mappings=[ecs.PortMapping(container_port=settings.PORT)],
            logging=logging,
            environment={
                settings.AUTH_MODE: props.auth_mode,
                **database_environment,
                settings.ARTIFACTS_DESTINATION: props.artifacts_destination,
                **s3_settings(),
                settings.AI_GATEWAY: props.ai_gateway,
            },
            secrets={
                **server_role_secrets,
                settings.ADMIN_USERNAME: ecs.Secret.from_secrets_manager(
                    props.admin_secret, "username"
                ),
                settings.ADMIN_PASSWORD: ecs.Secret.from_secrets_manager(
                    props.admin_secret, "password"
                ),
                settings.SECRET_KEY: ecs.Secret.from_secrets_manager(props.server_key_secret),
                settings.GATEWAY_KEK: ecs.Secret.from_secrets_manager(props.gateway_key_secret),
            },
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-m", "tracking_server.healthcheck"],
                interval=cdk.Duration.seconds(30),
                timeout=cdk.Duration.seconds(5),
                retries=3,
                start_period=cdk.Duration.seconds(120),
            ),
        )
        container.add_container_dependencies(
            ecs.ContainerDependency(
                container=self.setup_container, condition=ecs.ContainerDependencyCondition.SUCCESS
            )
        )
        self.container = container
        # A bind mount with no host: Fargate task storage, removed with the task (Amazon ECS
        # Developer Guide, "Use bind mounts with Amazon ECS").
        self.task_definition.add_volume(name=SCRATCH_VOLUME)
        for each in (self.setup_container, container):
            each.add_mount_points(
                ecs.MountPoint(
                    container_path=SCRATCH_PATH, source_volume=SCRATCH_VOLUME, read_only=False
                )
            )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "Only non-secret settings are plain environment variables (auth mode, database host, "
            "port and name, artifact location and S3 region and endpoint, allowed hosts); every "
            "credential is an ECS secret "
            "read from Secrets Manager",
        )
        execution_policy = self.task_definition.obtain_execution_role().node.try_find_child(
            "DefaultPolicy"
        )
        assert execution_policy is not None
        acknowledge(
            execution_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; image pulls are "
            "limited to the one repository named by the image URI",
        )
        acknowledge(
            execution_policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            f"<AWS::AccountId>:log-group:<{logical_id(self.log_group)}>:*]",
            "Log streams of this service's own log group; ECS names a stream per task at run time",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="MLflow tracking server tasks: tracking port from the load balancer only",
            allow_all_outbound=False,
        )
        # Out: AWS endpoints only (ECR, CloudWatch Logs, Secrets Manager, S3), all HTTPS; the
        # database rule is added by allow_to_database. DNS to the VPC resolver is not filtered
        # by security groups (Amazon VPC User Guide, "Security group rules").
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS endpoints"
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=props.min_tasks.value_as_number,
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # Database migrations run when a task starts.
            health_check_grace_period=cdk.Duration.seconds(180),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=props.min_tasks.value_as_number,
            max_capacity=props.max_tasks.value_as_number,
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=CPU_TARGET_PERCENT,
            scale_in_cooldown=cdk.Duration.seconds(120),
            scale_out_cooldown=cdk.Duration.seconds(60),
        )

    def allow_to_database(self, database: ec2.ISecurityGroup, port: int) -> None:
        """PostgreSQL to the database's security group, and nothing else but HTTPS."""
        self.security_group.add_egress_rule(
            database, ec2.Port.tcp(port), "PostgreSQL to the backend store"
        )

    def _image_uri(self, parameter: cdk.CfnParameter) -> str:
        """The input, or the image built from this template version's sources."""
        use_default = cdk.CfnCondition(
            self,
            "DefaultImage",
            expression=cdk.Fn.condition_equals(parameter.value_as_string, ""),
        )
        default = (
            f"{cdk.Aws.ACCOUNT_ID}.dkr.ecr.{cdk.Aws.REGION}.{ECR_DOMAIN}/"
            f"{image.REPOSITORY}:{image.image_tag()}"
        )
        return cdk.Fn.condition_if(
            use_default.logical_id, default, parameter.value_as_string
        ).to_string()

    def _grant_image_pull(self, image_uri: str) -> None:
        """Pull from exactly the image's repository, parsed out of the URI at deploy time.

        `<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]`; Fn::Split takes
        only a literal delimiter, which is why the ImageUri pattern admits this domain alone.
        """
        account = cdk.Fn.select(0, cdk.Fn.split(".", image_uri))
        region = cdk.Fn.select(3, cdk.Fn.split(".", image_uri))
        path = cdk.Fn.select(1, cdk.Fn.split(f".{ECR_DOMAIN}/", image_uri))
        repository = cdk.Fn.select(0, cdk.Fn.split("@", cdk.Fn.select(0, cdk.Fn.split(":", path))))
        role = self.task_definition.obtain_execution_role()
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PullTrackingServerImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[
                    f"arn:{cdk.Aws.PARTITION}:ecr:{region}:{account}:repository/{repository}"
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EcrAuthorizationToken",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            )
        )
