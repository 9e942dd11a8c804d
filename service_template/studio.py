"""Optional: a SageMaker Studio domain in the team's VPC (VPC-only), with a profile for the team.

Created only when the CreateStudioDomain input is "true"; a condition on an input, never on a
contract value.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlflow_platform.building import checkov_skips


@dataclass(frozen=True, kw_only=True)
class StudioProps:
    create: cdk.CfnParameter
    team_name: str
    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str
    execution_role_arn: str


class Studio(Construct):
    def __init__(self, scope: Construct, id: str, *, props: StudioProps) -> None:
        super().__init__(scope, id)
        enabled = cdk.CfnCondition(
            self,
            "Enabled",
            expression=cdk.Fn.condition_equals(props.create.value_as_string, "true"),
        )
        user_settings = sagemaker.CfnDomain.UserSettingsProperty(
            execution_role=props.execution_role_arn,
            security_groups=[props.security_group_id],
        )
        self.domain = sagemaker.CfnDomain(
            self,
            "Domain",
            domain_name=cdk.Fn.join("-", ["mlflow", props.team_name]),
            auth_mode="IAM",
            app_network_access_type="VpcOnly",
            vpc_id=props.vpc_id,
            subnet_ids=props.subnet_ids,
            default_user_settings=user_settings,
        )
        # Notebooks live on the domain's EFS volume: the domain stays when the stack goes.
        self.domain.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        checkov_skips.skip(
            self.domain,
            "CKV_AWS_187",
            "The domain's EFS volume is encrypted at rest with the AWS managed key SageMaker uses "
            "when no key is given; a customer managed key would add a key policy for SageMaker "
            "and EFS to keep in step, no reader fewer (IAM and the VPC decide who reaches it)",
        )
        self.profile = sagemaker.CfnUserProfile(
            self,
            "Profile",
            domain_id=self.domain.attr_domain_id,
            user_profile_name=props.team_name,
            user_settings=sagemaker.CfnUserProfile.UserSettingsProperty(
                execution_role=props.execution_role_arn,
                security_groups=[props.security_group_id],
            ),
        )
        self.profile.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        for resource in (self.domain, self.profile):
            resource.cfn_options.condition = enabled
        self.domain_id = cdk.Fn.condition_if(
            enabled.logical_id, self.domain.attr_domain_id, "none"
        ).to_string()
