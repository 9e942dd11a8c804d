"""The way in: an internal Application Load Balancer and the API Gateway VPC link to it.

Nothing here faces the internet. The load balancer accepts traffic only from the VPC link's
security group; services in other VPCs reach it through an HTTP API integrated over that link.

With a certificate (CertificateArn and TlsServerName), the one listener is HTTPS on 443 with a
TLS 1.2/1.3 policy, and a private hosted zone of TlsServerName in the VPC resolves that name to
the load balancer, so that clients inside it (the team-user function) verify the certificate by
the name on it. Without, the listener is plain HTTP on 80. One listener either way, switched by
a condition, so its ARN (in the contract) never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlflow_platform.building import checkov_skips
from tracking_server import settings

HTTP_PORT = 80
HTTPS_PORT = 443
# ELB's policy for TLS 1.3 and 1.2 with forward-secret ciphers, its default for new HTTPS
# listeners (Elastic Load Balancing User Guide for ALBs, "Security policies").
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Long enough for a large artifact upload or a slow search behind it.
IDLE_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, kw_only=True)
class IngressProps:
    vpc: ec2.IVpc
    service: ecs.FargateService
    access_log_bucket: s3.IBucket
    access_log_prefix: str
    access_log_policy: cdk.CfnResource
    certificate_arn: str
    tls_server_name: str


class Ingress(Construct):
    def __init__(self, scope: Construct, id: str, *, props: IngressProps) -> None:
        super().__init__(scope, id)
        self.https = cdk.CfnCondition(
            self,
            "Https",
            expression=cdk.Fn.condition_not(cdk.Fn.condition_equals(props.certificate_arn, "")),
        )
        port = cdk.Token.as_number(
            cdk.Fn.condition_if(self.https.logical_id, HTTPS_PORT, HTTP_PORT)
        )
        self.listener_port = ec2.Port(
            protocol=ec2.Protocol.TCP,
            from_port=port,
            to_port=port,
            string_representation="Listener",
        )
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
            self.listener_port,
            "HTTPS (or HTTP without a certificate) from the API Gateway VPC link",
        )
        self.vpc_link_security_group.add_egress_rule(
            self.load_balancer_security_group,
            self.listener_port,
            "HTTPS (or HTTP without a certificate) to the MLflow load balancer",
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
            port=HTTP_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
        )
        listener = self.listener.node.default_child
        assert isinstance(listener, elbv2.CfnListener)
        tls = self.https.logical_id
        listener.add_property_override("Port", port)
        listener.add_property_override("Protocol", cdk.Fn.condition_if(tls, "HTTPS", "HTTP"))
        listener.add_property_override(
            "Certificates",
            cdk.Fn.condition_if(tls, [{"CertificateArn": props.certificate_arn}], cdk.Aws.NO_VALUE),
        )
        listener.add_property_override(
            "SslPolicy", cdk.Fn.condition_if(tls, TLS_POLICY, cdk.Aws.NO_VALUE)
        )
        reason = (
            "HTTPS with a TLS 1.2/1.3 policy when the environment is given a certificate; plain "
            "HTTP inside the MLflow VPC only without one, reachable only from the VPC link's and "
            "the team-user function's groups (the README's threat model says what crosses it)"
        )
        checkov_skips.skip(self.listener, "CKV_AWS_2", reason)
        checkov_skips.skip(self.listener, "CKV_AWS_103", reason)
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
        self._tls_server_name = props.tls_server_name
        self._private_name(props)
        self.vpc_link = apigwv2.VpcLink(
            self,
            "VpcLink",
            vpc=props.vpc,
            subnets=private,
            security_groups=[self.vpc_link_security_group],
        )

    def _private_name(self, props: IngressProps) -> None:
        """TlsServerName resolves to the load balancer inside the VPC (with a certificate)."""
        zone = route53.CfnHostedZone(
            self,
            "TlsZone",
            name=props.tls_server_name,
            vpcs=[
                route53.CfnHostedZone.VPCProperty(
                    vpc_id=props.vpc.vpc_id, vpc_region=cdk.Aws.REGION
                )
            ],
            hosted_zone_config=route53.CfnHostedZone.HostedZoneConfigProperty(
                comment="The MLflow load balancer by the name on its certificate"
            ),
        )
        record = route53.CfnRecordSet(
            self,
            "TlsRecord",
            hosted_zone_id=zone.ref,
            name=props.tls_server_name,
            type="A",
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=self.load_balancer.load_balancer_dns_name,
                hosted_zone_id=self.load_balancer.load_balancer_canonical_hosted_zone_id,
            ),
        )
        for resource in (zone, record):
            resource.cfn_options.condition = self.https

    def tracking_url(self) -> str:
        """How clients inside the VPC call the server: by the certificate's name over HTTPS,
        or by the load balancer's own name over HTTP."""
        return cdk.Fn.condition_if(
            self.https.logical_id,
            cdk.Fn.join("", ["https://", self._tls_server_name]),
            cdk.Fn.join("", ["http://", self.load_balancer.load_balancer_dns_name]),
        ).to_string()
