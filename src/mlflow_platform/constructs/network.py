"""The MLflow VPC: two Availability Zones, public, private-with-egress and isolated subnets.

Written with L1 resources because the VPC range is an input: CDK's Vpc construct needs a concrete
range to subdivide, while `Fn::Cidr` subdivides the range CloudFormation receives at deploy time.

A VPC given interface endpoints accepts NatGateways=0: then it has no NAT gateway and no route
out of its private subnets, and the endpoints (private DNS on, HTTPS from the VPC only) serve
the AWS APIs its workloads call; S3 is served by the gateway endpoint either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from mlflow_platform.building.nag import acknowledge
from mlflow_platform.constructs.access_logs import AccessLogs
from mlflow_platform.inputs import VPC_PREFIXES

AZ_COUNT = 2
# Eight equal blocks: public, private and isolated for each AZ, two kept spare.
_BLOCKS = 8
_PUBLIC, _PRIVATE, _ISOLATED = 0, 2, 4


@dataclass(frozen=True, kw_only=True)
class NetworkProps:
    vpc_cidr: cdk.CfnParameter
    nat_gateways: cdk.CfnParameter
    access_logs: AccessLogs
    interface_endpoints: tuple[str, ...] = ()
    """Services (`ecr.api`, `logs`...) given interface endpoints when NatGateways is 0; empty:
    the input does not offer 0."""


class Network(Construct):
    def __init__(self, scope: Construct, id: str, *, props: NetworkProps) -> None:
        super().__init__(scope, id)
        cidr = props.vpc_cidr.value_as_string
        self._prefix_conditions = {
            prefix: cdk.CfnCondition(
                self,
                f"VpcPrefix{prefix}",
                expression=cdk.Fn.condition_equals(
                    cdk.Fn.select(1, cdk.Fn.split("/", cidr)), str(prefix)
                ),
            )
            # The largest prefix is what remains when no other matches.
            for prefix in VPC_PREFIXES[:-1]
        }
        # Per prefix: the VPC range in eight blocks, and the condition that picks them (looked
        # up once here, not for each of the twelve subnets).
        self._blocks = {
            prefix: cdk.Fn.cidr(cidr, _BLOCKS, str(32 - prefix - 3)) for prefix in VPC_PREFIXES
        }
        self._prefix_condition_ids = {
            prefix: condition.logical_id for prefix, condition in self._prefix_conditions.items()
        }
        two_nats = cdk.CfnCondition(
            self,
            "TwoNatGateways",
            expression=cdk.Fn.condition_equals(props.nat_gateways.value_as_string, "2"),
        )
        no_nat = has_nat = None
        if props.interface_endpoints:
            no_nat = cdk.CfnCondition(
                self,
                "NoNatGateway",
                expression=cdk.Fn.condition_equals(props.nat_gateways.value_as_string, "0"),
            )
            # A CfnCondition is a condition expression; jsii's Python typing lacks type_hint.
            not_no_nat = cdk.Fn.condition_not(no_nat)  # type: ignore[arg-type]
            has_nat = cdk.CfnCondition(self, "HasNatGateway", expression=not_no_nat)

        vpc = ec2.CfnVPC(
            self, "Vpc", cidr_block=cidr, enable_dns_hostnames=True, enable_dns_support=True
        )
        cdk.Tags.of(vpc).add("Name", f"{cdk.Aws.STACK_NAME}-vpc")
        igw = ec2.CfnInternetGateway(self, "InternetGateway")
        attachment = ec2.CfnVPCGatewayAttachment(
            self, "InternetGatewayAttachment", vpc_id=vpc.ref, internet_gateway_id=igw.ref
        )
        azs = [cdk.Fn.select(i, cdk.Fn.get_azs()) for i in range(AZ_COUNT)]

        public_table = ec2.CfnRouteTable(self, "PublicRouteTable", vpc_id=vpc.ref)
        public_route = ec2.CfnRoute(
            self,
            "PublicDefaultRoute",
            route_table_id=public_table.ref,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.ref,
        )
        public_route.node.add_dependency(attachment)

        public, private, isolated, nats = [], [], [], []
        private_tables, isolated_tables = [], []
        for i, az in enumerate(azs):
            subnet = self._subnet(f"Public{i + 1}", vpc, az, _PUBLIC + i)
            self._associate(f"Public{i + 1}", subnet, public_table)
            public.append(subnet)
            eip = ec2.CfnEIP(self, f"NatIp{i + 1}", domain="vpc")
            nat = ec2.CfnNatGateway(
                self,
                f"NatGateway{i + 1}",
                subnet_id=subnet.ref,
                allocation_id=eip.attr_allocation_id,
            )
            nat.node.add_dependency(public_route)
            if i > 0:
                eip.cfn_options.condition = two_nats
                nat.cfn_options.condition = two_nats
            elif has_nat is not None:
                eip.cfn_options.condition = has_nat
                nat.cfn_options.condition = has_nat
            nats.append(nat)

        for i, az in enumerate(azs):
            subnet = self._subnet(f"Private{i + 1}", vpc, az, _PRIVATE + i)
            table = ec2.CfnRouteTable(self, f"Private{i + 1}RouteTable", vpc_id=vpc.ref)
            nat_id = (
                nats[0].ref
                if i == 0
                else cdk.Fn.condition_if(two_nats.logical_id, nats[i].ref, nats[0].ref).to_string()
            )
            route = ec2.CfnRoute(
                self,
                f"Private{i + 1}DefaultRoute",
                route_table_id=table.ref,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_id,
            )
            if has_nat is not None:
                route.cfn_options.condition = has_nat
            self._associate(f"Private{i + 1}", subnet, table)
            private.append(subnet)
            private_tables.append(table)

        for i, az in enumerate(azs):
            subnet = self._subnet(f"Isolated{i + 1}", vpc, az, _ISOLATED + i)
            table = ec2.CfnRouteTable(self, f"Isolated{i + 1}RouteTable", vpc_id=vpc.ref)
            self._associate(f"Isolated{i + 1}", subnet, table)
            isolated.append(subnet)
            isolated_tables.append(table)

        ec2.CfnVPCEndpoint(
            self,
            "S3GatewayEndpoint",
            vpc_id=vpc.ref,
            service_name=f"com.amazonaws.{cdk.Aws.REGION}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.ref for t in private_tables + isolated_tables],
        )
        ec2.CfnFlowLog(
            self,
            "FlowLog",
            resource_id=vpc.ref,
            resource_type="VPC",
            traffic_type="ALL",
            log_destination_type="s3",
            log_destination=props.access_logs.flow_log_destination,
            max_aggregation_interval=600,
        )

        self.vpc_id = vpc.ref
        self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Attributes",
            vpc_id=vpc.ref,
            vpc_cidr_block=cidr,
            availability_zones=azs,
            public_subnet_ids=[s.ref for s in public],
            public_subnet_route_table_ids=[public_table.ref] * AZ_COUNT,
            private_subnet_ids=[s.ref for s in private],
            private_subnet_route_table_ids=[t.ref for t in private_tables],
            isolated_subnet_ids=[s.ref for s in isolated],
            isolated_subnet_route_table_ids=[t.ref for t in isolated_tables],
        )
        if no_nat is not None:
            self._interface_endpoints(props.interface_endpoints, vpc, cidr, private, no_nat)

    def _interface_endpoints(
        self,
        services: tuple[str, ...],
        vpc: ec2.CfnVPC,
        cidr: str,
        subnets: list[ec2.CfnSubnet],
        condition: cdk.CfnCondition,
    ) -> None:
        """One endpoint a service in each private subnet, with private DNS, so that clients
        reach it by the service's usual name (Amazon VPC User Guide, "Access an AWS service
        using an interface VPC endpoint")."""
        group = ec2.CfnSecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc_id=vpc.ref,
            group_description="Interface VPC endpoints: HTTPS from inside the VPC only",
            security_group_ingress=[
                ec2.CfnSecurityGroup.IngressProperty(
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_ip=cidr,
                    description="HTTPS from the VPC",
                )
            ],
            # An endpoint only answers; the rule CDK writes for "no egress".
            security_group_egress=[
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="icmp",
                    from_port=252,
                    to_port=86,
                    cidr_ip="255.255.255.255/32",
                    description="Disallow all traffic",
                )
            ],
        )
        group.cfn_options.condition = condition
        acknowledge(
            group,
            "AwsSolutions-EC23",
            "The only ingress source is the VPC's own range, an input that cdk-nag cannot read "
            "at synth time; it is never 0.0.0.0/0 (VpcCidr allows /16 to /22 only)",
        )
        for service in services:
            endpoint = ec2.CfnVPCEndpoint(
                self,
                "Endpoint" + "".join(part.capitalize() for part in service.split(".")),
                vpc_id=vpc.ref,
                service_name=f"com.amazonaws.{cdk.Aws.REGION}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.ref for s in subnets],
                security_group_ids=[group.attr_group_id],
            )
            endpoint.cfn_options.condition = condition

    def _subnet(self, name: str, vpc: ec2.CfnVPC, az: str, block: int) -> ec2.CfnSubnet:
        subnet = ec2.CfnSubnet(
            self,
            name,
            vpc_id=vpc.ref,
            availability_zone=az,
            cidr_block=self._block(block),
            map_public_ip_on_launch=False,
        )
        cdk.Tags.of(subnet).add("Name", f"{cdk.Aws.STACK_NAME}-{name.lower()}")
        return subnet

    def _block(self, index: int) -> str:
        """Block `index` of eight, whatever the VPC's prefix length turns out to be."""
        value: object = None
        for prefix in reversed(VPC_PREFIXES):
            block = cdk.Fn.select(index, self._blocks[prefix])
            value = (
                block
                if value is None or prefix not in self._prefix_condition_ids
                else cdk.Fn.condition_if(self._prefix_condition_ids[prefix], block, value)
            )
        return value if isinstance(value, str) else cdk.Token.as_string(value)

    def _associate(self, name: str, subnet: ec2.CfnSubnet, table: ec2.CfnRouteTable) -> None:
        ec2.CfnSubnetRouteTableAssociation(
            self, f"{name}RouteTableAssociation", subnet_id=subnet.ref, route_table_id=table.ref
        )
