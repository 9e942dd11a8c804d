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
# S3 User Guide, "Elements of a CORS configuration") and from `invoke ui`'s
# (`invoke_ui_origins`). Its JS bundle downloads with fetch() GETs,
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


# The loopback names `invoke ui` answers (signing_proxy.local_names), any port; and on port 80,
# where a browser leaves the port out, the names alone.
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
INVOKE_UI_ORIGINS = tuple(f"http://{name}:*" for name in _LOOPBACK_NAMES) + tuple(
    f"http://{name}" for name in _LOOPBACK_NAMES
)


def invoke_ui_origins() -> tuple[str, ...]:
    """The pages of `invoke ui` (mlflow_platform/signing_proxy.py): the MLflow UI of an `iam`
    team on a person's own machine, `http://127.0.0.1:8765` by default (`--port`, `--bind`).

    Its pages use presigned URLs as a team API's do: a download navigates to the URL (no CORS),
    but a preview (text, images, tables, PDF) and an upload from the UI are fetch() calls, which
    S3 answers for a page only if its origin is in this rule. Two ways to serve such a page:

    - Admit these origins here (chosen). A presigned URL is the capability: whoever holds it
      can GET or PUT that one object until it expires, with curl as well as a browser, and
      S3 sends no ambient credential (no cookie, no Basic answer) that CORS would protect; CORS
      only decides whether a page's script may read the answer. A page of another local
      server (any port, same names) gets no URL from the platform: the server serves no origin
      but its team API's (request_guard.py) and `invoke ui` none but its own pages, so it holds
      nothing this rule would let it read. The bytes go between the browser and S3, as from a
      team API's page: never through the proxy, the team API or the server.
    - Rewrite presigned URLs in the server's answers to a path of the proxy, which fetches
      them from S3 itself. Every artifact byte would then pass the workstation proxy, which
      reads bodies whole (300 MiB models), must recognise every answer MLflow puts a URL in
      (run, model and logged-model downloads, single and multipart uploads), and must fetch
      only the platform bucket's URLs, never one a response names (server-side request
      forgery with the user's network position); and MLflow's client pointed at the proxy
      would be rerouted through it too. More code on a security boundary, for no capability.

    Each origin holds one `*` at most (Amazon S3 User Guide, "Elements of a CORS
    configuration"), so `http://127.0.0.1:*` admits every port and nothing but loopback: the
    `:` ends the host, so `http://127.0.0.1.example.com` is not admitted. Another loopback
    address given to `--bind` (127.0.0.2) is not admitted: its pages' previews and uploads are
    refused by S3, downloads still work."""
    return INVOKE_UI_ORIGINS


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
                    allowed_origins=[team_api_origin(), *invoke_ui_origins()],
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
