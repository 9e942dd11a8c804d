"""checkov's CloudFormation checks: a finding the platform accepts, skipped where it arises.

checkov reads `Metadata: checkov: skip: [{id, comment}]` on the resource it flags (checkov
documentation, "Suppressing and skipping policies", CloudFormation). Each skip names one check
on one resource with the reason it is acceptable here, beside any cdk-nag acknowledgement of the
same resource, so a reader sees both scanners' exceptions in one place.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

_MIN_REASON = 40
METADATA_KEY = "checkov"

# Reasons shared by every resource of a kind.
SECRET_AWS_MANAGED_KEY = (
    "Encrypted with Secrets Manager's AWS managed key; who may read it is decided by IAM on the "
    "secret, and a customer managed key would add a key policy to keep in step, no reader fewer"
)
LOG_GROUP_SERVICE_ENCRYPTION = (
    "CloudWatch Logs encrypts every log group at rest; a customer managed key would add a key "
    "policy for the logs service to keep in step, no reader fewer (IAM decides who reads)"
)


def skip(construct: IConstruct, check: str, reason: str) -> None:
    """check is checkov's id, e.g. "CKV_AWS_158"; construct an L1 resource or an L2 wrapping one."""
    if len(reason) < _MIN_REASON:
        raise ValueError(f"checkov skip of {check}: give a specific reason, not {reason!r}")
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise ValueError(f"checkov skip of {check}: {construct.node.path} is not a resource")
    entry = resource.get_metadata(METADATA_KEY) or {"skip": []}
    if any(existing["id"] == check for existing in entry["skip"]):
        raise ValueError(f"checkov skip of {check}: already skipped on {construct.node.path}")
    entry["skip"].append({"id": check, "comment": reason})
    resource.add_metadata(METADATA_KEY, entry)
