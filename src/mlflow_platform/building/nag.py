"""cdk-nag's AwsSolutions pack: acknowledging a finding, and reading what it found.

Every acknowledgement names one rule (one finding for rules such as IAM5 that report several) on
one construct, with the reason it is acceptable here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from constructs import IConstruct

from mlflow_platform.errors import PlatformError

PACK = "AwsSolutions"
_MIN_REASON = 40


@dataclass(frozen=True, kw_only=True)
class Finding:
    rule: str
    description: str
    path: str

    def __str__(self) -> str:
        return f"{self.rule} at {self.path}: {self.description}"


class NagFindingsError(PlatformError):
    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        lines = "\n".join(f"  {f}" for f in findings)
        super().__init__(
            f"cdk-nag {PACK} reported {len(findings)} unacknowledged finding(s):\n{lines}\n"
            "Fix the resource, or acknowledge the finding next to it with a specific reason."
        )


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """rule is the pack's id, e.g. "AwsSolutions-IAM5[Resource::*]"."""
    if len(reason) < _MIN_REASON:
        raise ValueError(f"acknowledgement of {rule}: give a specific reason, not {reason!r}")
    cdk.Validations.of(construct).acknowledge(
        cdk.Acknowledgment(id=f"{PACK}::{rule}", reason=reason)
    )


def logical_id(element: cdk.CfnElement) -> str:
    """The logical id as cdk-nag prints it inside a finding id, e.g. `<Bucket1234.Arn>`."""
    return cdk.Stack.of(element).resolve(element.logical_id)


def findings_from_report(outdir: Path) -> list[Finding]:
    """The violations in CDK's validation report, as written by a failed synth."""
    report = outdir / "validation-report.json"
    if not report.exists():
        return []
    data = json.loads(report.read_text())
    return [
        Finding(
            rule=violation["ruleName"],
            description=violation["description"],
            path=construct["constructPath"],
        )
        for plugin in data.get("pluginReports", [])
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]
