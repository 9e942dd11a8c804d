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


@pytest.mark.parametrize(("count", "distinct"), [("1", 1), ("2", 2)])
def test_nat_gateway_count_follows_the_input(environment, count, distinct):
    evaluator = Evaluator(environment, parameters={"NatGateways": count})
    nats = [
        name
        for name, nat in of_type(environment, "AWS::EC2::NatGateway").items()
        if "Condition" not in nat or evaluator.condition(nat["Condition"])
    ]
    assert len(nats) == distinct
    private_routes = [
        evaluator.eval(route["NatGatewayId"])
        for name, route in _default_routes(environment).items()
        if "Private" in name
    ]
    assert len(private_routes) == 2
    assert {r["Ref"] for r in private_routes} == set(nats)


def test_isolated_subnets_have_no_route_out(environment):
    tables = {name for name in of_type(environment, "AWS::EC2::RouteTable") if "Isolated" in name}
    assert len(tables) == 2
    for route in of_type(environment, "AWS::EC2::Route").values():
        assert route["Properties"]["RouteTableId"]["Ref"] not in tables


def test_s3_gateway_endpoint_serves_private_and_isolated_subnets(environment):
    _, endpoint = one_of_type(environment, "AWS::EC2::VPCEndpoint")
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
