"""One bucket for the platform's access logs: VPC flow logs, load balancer and S3 access logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from aws_cdk.region_info import Fact, FactName, RegionInfo
from constructs import Construct

from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge

FLOW_LOG_PREFIX = "vpc-flow-logs/"
LOAD_BALANCER_PREFIX = "alb"
S3_ACCESS_PREFIX = "s3-access/"
_NO_ACCOUNT = "none"


class AccessLogs(Construct):
    """The bucket and its policy, written out because the stack's region is unknown at synth.

    Load balancer logs are written by a regional Elastic Load Balancing account in regions
    opened before August 2022 and by a service principal in newer ones; a mapping built from
    CDK's region facts decides at deploy time.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        load_balancer_logs: bool,
        retention_days: int = 400,
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only kind ELB log delivery accepts
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=cdk.Duration.days(retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(30),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging its own access would write a log "
            "record for every log record",
        )
        checkov_skips.skip(
            self.bucket,
            "CKV_AWS_18",
            "This is the access-log bucket itself; logging its own access would write a log "
            "record for every log record",
        )
        self._artifact_buckets: list[s3.IBucket] = []
        self._load_balancer_logs = load_balancer_logs
        if load_balancer_logs:
            self._declare_elb_accounts()
        self.policy = s3.CfnBucketPolicy(
            self, "Policy", bucket=self.bucket.bucket_name, policy_document=self._document()
        )

    def _declare_elb_accounts(self) -> None:
        # Two calls into CDK's region facts, not two per region.
        elbv2_accounts = RegionInfo.region_map(FactName.ELBV2_ACCOUNT)
        accounts = cdk.CfnMapping(
            self,
            "ElbLogAccounts",
            mapping={
                region: {"Account": elbv2_accounts.get(region) or _NO_ACCOUNT}
                for region in Fact.regions
            },
        )
        legacy_region = cdk.CfnCondition(
            self,
            "ElbAccountRegion",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(
                    accounts.find_in_map(cdk.Aws.REGION, "Account"), _NO_ACCOUNT
                )
            ),
        )
        self._legacy_region = legacy_region
        self._accounts = accounts

    @property
    def flow_log_destination(self) -> str:
        """Where VPC flow logs go: the prefix this bucket's policy lets log delivery write."""
        return f"{self.bucket.bucket_arn}/{FLOW_LOG_PREFIX}"

    def log_server_access_of(self, bucket: s3.Bucket) -> None:
        """S3 server access logs of `bucket`, written here under its own prefix.

        Set on the L1 bucket: the L2 option would add a second policy to this bucket.
        """
        self._artifact_buckets.append(bucket)
        cfn_bucket = bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=self.bucket.bucket_name,
            log_file_prefix=f"{S3_ACCESS_PREFIX}{bucket.node.id.lower()}/",
        )
        self.policy.policy_document = self._document()

    def _load_balancer_statement(self) -> dict:
        account = cdk.Aws.ACCOUNT_ID
        elb_principal = cdk.Fn.condition_if(
            self._legacy_region.logical_id,
            {
                "AWS": cdk.Fn.join(
                    "",
                    [
                        f"arn:{cdk.Aws.PARTITION}:iam::",
                        self._accounts.find_in_map(cdk.Aws.REGION, "Account"),
                        ":root",
                    ],
                )
            },
            {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
        )
        return {
            "Sid": "LoadBalancerAccessLogs",
            "Effect": "Allow",
            "Principal": elb_principal,
            "Action": "s3:PutObject",
            "Resource": f"{self.bucket.bucket_arn}/{LOAD_BALANCER_PREFIX}/AWSLogs/{account}/*",
        }

    def _document(self) -> dict:
        account = cdk.Aws.ACCOUNT_ID
        arn = self.bucket.bucket_arn
        source_account = {"StringEquals": {"aws:SourceAccount": account}}
        statements: list[dict] = [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ]
        if self._load_balancer_logs:
            statements.append(self._load_balancer_statement())
        statements += [
            {
                "Sid": "FlowLogDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{arn}/{FLOW_LOG_PREFIX}AWSLogs/{account}/*",
                "Condition": {
                    "StringEquals": {
                        "aws:SourceAccount": account,
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    }
                },
            },
            {
                "Sid": "FlowLogAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": arn,
                "Condition": source_account,
            },
        ]
        if self._artifact_buckets:
            statements.append(
                {
                    "Sid": "S3ServerAccessLogs",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/{S3_ACCESS_PREFIX}*",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account},
                        "ArnLike": {
                            "aws:SourceArn": [b.bucket_arn for b in self._artifact_buckets]
                        },
                    },
                }
            )
        return {"Version": "2012-10-17", "Statement": statements}
