"""The way in: an internal Application Load Balancer and the API Gateway VPC link to it.

Nothing here faces the internet. The load balancer accepts traffic only from the VPC link's
security group; services in other VPCs reach it through an HTTP API integrated over that link.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlflow_platform import checkov_skips
from tracking_server import settings

LISTENER_PORT = 80
# Long enough for a large artifact upload or a slow search behind it.
IDLE_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, kw_only=True)
class IngressProps:
    vpc: ec2.IVpc
    service: ecs.FargateService
    access_log_bucket: s3.IBucket
    access_log_prefix: str
    access_log_policy: cdk.CfnResource


class Ingress(Construct):
    def __init__(self, scope: Construct, id: str, *, props: IngressProps) -> None:
        super().__init__(scope, id)
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.vpc_link_security_group = ec2.SecurityGroup(
            self,
            "VpcLinkSecurityGroup",
            vpc=props.vpc,
            description="API Gateway VPC link: out to the MLflow load balancer only",
            allow_all_outbound=False,
        )
        self.load_balancer_security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=props.vpc,
            description="MLflow internal load balancer: in from the VPC link only",
            allow_all_outbound=False,
        )
        self.load_balancer_security_group.add_ingress_rule(
            self.vpc_link_security_group,
            ec2.Port.tcp(LISTENER_PORT),
            "HTTP from the API Gateway VPC link",
        )
        self.vpc_link_security_group.add_egress_rule(
            self.load_balancer_security_group,
            ec2.Port.tcp(LISTENER_PORT),
            "HTTP to the MLflow load balancer",
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=props.vpc,
            vpc_subnets=private,
            internet_facing=False,
            security_group=self.load_balancer_security_group,
            drop_invalid_header_fields=True,
            idle_timeout=cdk.Duration.seconds(IDLE_TIMEOUT_SECONDS),
        )
        # log_access_logs() needs the region at synth time; these attributes do not.
        self.load_balancer.set_attribute("access_logs.s3.enabled", "true")
        self.load_balancer.set_attribute(
            "access_logs.s3.bucket", props.access_log_bucket.bucket_name
        )
        self.load_balancer.set_attribute("access_logs.s3.prefix", props.access_log_prefix)
        self.load_balancer.node.add_dependency(props.access_log_policy)

        self.listener = self.load_balancer.add_listener(
            "Listener",
            port=LISTENER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
        )
        plain = (
            "Plain HTTP inside the MLflow VPC, reachable only from the VPC link's and the "
            "team-user function's security groups; what crosses it in clear is in the README's "
            "threat model, and TLS on this listener is an open point there"
        )
        checkov_skips.skip(self.listener, "CKV_AWS_2", plain)
        checkov_skips.skip(self.listener, "CKV_AWS_103", plain)
        self.target_group = self.listener.add_targets(
            "TrackingServer",
            port=settings.PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[props.service],
            deregistration_delay=cdk.Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=settings.HEALTH_PATH,
                healthy_http_codes="200",
                interval=cdk.Duration.seconds(15),
                timeout=cdk.Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self.vpc_link = apigwv2.VpcLink(
            self,
            "VpcLink",
            vpc=props.vpc,
            subnets=private,
            security_groups=[self.vpc_link_security_group],
        )
