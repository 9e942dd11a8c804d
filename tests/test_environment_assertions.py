"""The environment's security properties stated with aws_cdk.assertions' matchers."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template


@pytest.fixture(scope="module")
def template(environment) -> Template:
    return Template.from_json(environment)


def test_load_balancer_is_internal(template):
    template.resource_count_is("AWS::ElasticLoadBalancingV2::LoadBalancer", 1)
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"}
    )


def test_database_is_serverless_v2_encrypted_and_protected(template):
    template.has_resource(
        "AWS::RDS::DBCluster",
        {
            "Properties": Match.object_like(
                {
                    "Engine": "aurora-postgresql",
                    "StorageEncrypted": True,
                    "DeletionProtection": True,
                    "ManageMasterUserPassword": True,
                    "ServerlessV2ScalingConfiguration": Match.any_value(),
                }
            ),
            "DeletionPolicy": "Snapshot",
            "UpdateReplacePolicy": "Snapshot",
        },
    )


def test_no_managed_s3_full_access_and_no_s3_wildcard(template):
    for role in template.find_resources("AWS::IAM::Role").values():
        assert "AmazonS3FullAccess" not in str(role)
    template.all_resources_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.not_(Match.array_with([Match.object_like({"Action": "s3:*"})])),
                "Version": "2012-10-17",
            }
        },
    )


def test_service_has_circuit_breaker_rollback(template):
    template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            ),
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})
            },
        },
    )


def test_container_secrets_come_from_secrets_manager(template):
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [  # the server and its init container
                    Match.object_like(
                        {
                            "Secrets": Match.array_with(
                                [
                                    {
                                        "Name": "MLFLOW_PLATFORM_DB_PASSWORD",
                                        "ValueFrom": Match.any_value(),
                                    }
                                ]
                            ),
                            "Environment": Match.not_(
                                Match.array_with(
                                    [
                                        Match.object_like(
                                            {"Name": Match.string_like_regexp("PASSWORD")}
                                        )
                                    ]
                                )
                            ),
                        }
                    )
                ]
            )
        },
    )
