"""The artifact store: the S3 bucket the tracking server writes run artifacts and models to."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlflow_platform.building.nag import acknowledge, logical_id

ARTIFACT_PREFIX = "artifacts"
# Cross-origin requests the MLflow 3.18 UI makes to presigned URLs, from the team API's page
# (`https://<api-id>.execute-api.<region>.<suffix>`; an AllowedOrigin may hold one `*`, Amazon
# S3 User Guide, "Elements of a CORS configuration"). Its JS bundle downloads with fetch() GETs,
# its PDF and CSV viewers with a Range header, and reads Content-Range and Accept-Ranges (pdf.js
# ranges only when Accept-Ranges is readable); it uploads with presigned PUTs, a single PUT with
# the signed Content-Type or a one-part multipart upload whose ETag it reads back. No HEAD, POST
# or DELETE: creating, completing and aborting uploads go through the tracking server.
# Content-Length and Content-Type are CORS-safelisted response headers, readable anyway.
CORS_METHODS = (s3.HttpMethods.GET, s3.HttpMethods.PUT)
CORS_REQUEST_HEADERS = ("Range", "Content-Type")
CORS_EXPOSED_HEADERS = ("ETag", "Content-Range", "Accept-Ranges")
CORS_MAX_AGE_SECONDS = 3600


def team_api_origin() -> str:
    """Every team API's origin in this environment's Region (an HTTP API's default endpoint)."""
    return f"https://*.execute-api.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}"


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
            cors=[
                s3.CorsRule(
                    allowed_origins=[team_api_origin()],
                    allowed_methods=list(CORS_METHODS),
                    allowed_headers=list(CORS_REQUEST_HEADERS),
                    exposed_headers=list(CORS_EXPOSED_HEADERS),
                    max_age=CORS_MAX_AGE_SECONDS,
                )
            ],
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
