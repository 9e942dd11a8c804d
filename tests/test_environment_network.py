"""The MLflow VPC: subnets per tier and AZ laid out from the CIDR input, NAT, endpoints, logs."""

from __future__ import annotations

import ipaddress

import pytest
from cfn_eval import Evaluator
from helpers import of_type, one_of_type


def _subnets(environment: dict, cidr: str) -> dict[str, ipaddress.IPv4Network]:
    evaluator = Evaluator(environment, parameters={"VpcCidr": cidr})
    return {
        name: ipaddress.ip_network(evaluator.eval(subnet["Properties"]["CidrBlock"]))
        for name, subnet in of_type(environment, "AWS::EC2::Subnet").items()
    }


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "10.20.0.0/18", "172.16.4.0/22"])
def test_subnets_fit_the_vpc_and_do_not_overlap(environment, cidr):
    vpc = ipaddress.ip_network(cidr)
    subnets = _subnets(environment, cidr)
    assert len(subnets) == 6
    for name, subnet in subnets.items():
        assert subnet.subnet_of(vpc), name
        assert subnet.prefixlen == vpc.prefixlen + 3, name
    blocks = list(subnets.values())
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            assert not a.overlaps(b)


def test_two_availability_zones_with_three_tiers(environment):
    evaluator = Evaluator(environment)
    tiers: dict[str, set[str]] = {}
    for name, subnet in of_type(environment, "AWS::EC2::Subnet").items():
        tier = next(t for t in ("Public", "Private", "Isolated") if t in name)
        tiers.setdefault(tier, set()).add(evaluator.eval(subnet["Properties"]["AvailabilityZone"]))
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    assert tiers == {t: {"eu-west-1a", "eu-west-1b"} for t in ("Public", "Private", "Isolated")}


def _default_routes(environment: dict) -> dict[str, dict]:
    return {
        name: route["Properties"]
        for name, route in of_type(environment, "AWS::EC2::Route").items()
        if route["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
    }


def _created(template: dict, evaluator: Evaluator, type_name: str) -> dict[str, dict]:
    return {
        name: resource
        for name, resource in of_type(template, type_name).items()
        if "Condition" not in resource or evaluator.condition(resource["Condition"])
    }


@pytest.mark.parametrize(("count", "distinct"), [("0", 0), ("1", 1), ("2", 2)])
def test_nat_gateway_count_follows_the_input(environment, count, distinct):
    evaluator = Evaluator(environment, parameters={"NatGateways": count})
    nats = list(_created(environment, evaluator, "AWS::EC2::NatGateway"))
    assert len(nats) == distinct
    assert len(_created(environment, evaluator, "AWS::EC2::EIP")) == distinct
    private_routes = [
        evaluator.eval(route["Properties"]["NatGatewayId"])
        for name, route in _created(environment, evaluator, "AWS::EC2::Route").items()
        if "Private" in name
    ]
    # No NAT gateway: no route out of the private subnets at all.
    assert len(private_routes) == (2 if distinct else 0)
    assert {r["Ref"] for r in private_routes} == set(nats)


# What the tasks and the team-user function call (environment_template/stack.py); each name is
# the service's endpoint name in the Amazon VPC User Guide's "AWS services that integrate with
# AWS PrivateLink" (com.amazonaws.<region>.<name>).
INTERFACE_SERVICES = {"ecr.api", "ecr.dkr", "logs", "secretsmanager", "cloudformation"}


@pytest.mark.parametrize(("count", "endpoints"), [("0", INTERFACE_SERVICES), ("1", set()),
                                                  ("2", set())])  # fmt: skip
def test_without_nat_interface_endpoints_serve_every_aws_api_called(environment, count, endpoints):
    evaluator = Evaluator(environment, parameters={"NatGateways": count})
    interface = {
        name: endpoint["Properties"]
        for name, endpoint in _created(environment, evaluator, "AWS::EC2::VPCEndpoint").items()
        if endpoint["Properties"]["VpcEndpointType"] == "Interface"
    }
    services = {
        evaluator.eval(p["ServiceName"]).removeprefix("com.amazonaws.eu-west-1.")
        for p in interface.values()
    }
    assert services == endpoints
    private = {n for n in of_type(environment, "AWS::EC2::Subnet") if "Private" in n}
    for props in interface.values():
        assert props["PrivateDnsEnabled"] is True
        assert {s["Ref"] for s in props["SubnetIds"]} == private
    # S3 (artifacts, ECR's image layers, custom-resource responses): the gateway endpoint.
    gateways = [p["Properties"] for p in _created(environment, evaluator, "AWS::EC2::VPCEndpoint")
                .values() if p["Properties"]["VpcEndpointType"] == "Gateway"]  # fmt: skip
    assert len(gateways) == 1


def test_endpoints_admit_https_from_the_vpc_only(environment):
    evaluator = Evaluator(environment, parameters={"NatGateways": "0", "VpcCidr": "10.9.0.0/16"})
    groups = {
        p["Properties"]["SecurityGroupIds"][0]["Fn::GetAtt"][0]
        for p in of_type(environment, "AWS::EC2::VPCEndpoint").values()
        if p["Properties"]["VpcEndpointType"] == "Interface"
    }
    [group] = groups
    props = of_type(environment, "AWS::EC2::SecurityGroup")[group]["Properties"]
    [rule] = props["SecurityGroupIngress"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    assert evaluator.eval(rule["CidrIp"]) == "10.9.0.0/16"
    assert [e["CidrIp"] for e in props["SecurityGroupEgress"]] == ["255.255.255.255/32"]
    assert not any(
        r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
        for r in of_type(environment, "AWS::EC2::SecurityGroupIngress").values()
    )


def test_isolated_subnets_have_no_route_out(environment):
    tables = {name for name in of_type(environment, "AWS::EC2::RouteTable") if "Isolated" in name}
    assert len(tables) == 2
    for route in of_type(environment, "AWS::EC2::Route").values():
        assert route["Properties"]["RouteTableId"]["Ref"] not in tables


def test_s3_gateway_endpoint_serves_private_and_isolated_subnets(environment):
    [endpoint] = [
        e for e in of_type(environment, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]  # fmt: skip
    props = endpoint["Properties"]
    assert props["VpcEndpointType"] == "Gateway"
    assert Evaluator(environment).eval(props["ServiceName"]) == "com.amazonaws.eu-west-1.s3"
    tables = {t["Ref"] for t in props["RouteTableIds"]}
    assert tables == {n for n in of_type(environment, "AWS::EC2::RouteTable") if "Public" not in n}


def test_vpc_flow_logs_capture_all_traffic(environment):
    _, flow_log = one_of_type(environment, "AWS::EC2::FlowLog")
    vpc, _ = one_of_type(environment, "AWS::EC2::VPC")
    assert flow_log["Properties"]["ResourceId"] == {"Ref": vpc}
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["LogDestinationType"] == "s3"
