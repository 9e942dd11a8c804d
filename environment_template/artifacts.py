"""The artifact store: the S3 bucket the tracking server writes run artifacts and models to."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlflow_platform.building.nag import acknowledge, logical_id

ARTIFACT_PREFIX = "artifacts"


class ArtifactStore(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=cdk.Duration.days(7))
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.destination = f"s3://{self.bucket.bucket_name}/{ARTIFACT_PREFIX}"

    def grant_tracking_server(self, role: iam.IRole) -> None:
        """Exactly what MLflow's artifact proxy does: read, write, list, delete, multipart."""
        objects = self.bucket.arn_for_objects(f"{ARTIFACT_PREFIX}/*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ArtifactObjects",
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                resources=[objects],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ArtifactListing",
                actions=["s3:ListBucket", "s3:GetBucketLocation"],
                resources=[self.bucket.bucket_arn],
            )
        )
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        bucket = self.bucket.node.default_child
        assert isinstance(bucket, s3.CfnBucket)
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{ARTIFACT_PREFIX}/*]",
            "Objects under the artifact prefix of this environment's own bucket; MLflow names "
            "artifact keys by experiment and run id at run time",
        )
