"""A channel's publication as a list of steps, so `--dry-run` can print exactly what would run.

Each step names the API operation it calls and why. Steps run in order and share a small
context (ids that earlier steps create), so a plan made before anything is written can also
be carried out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import botocore.exceptions

from mlflow_platform.aws import ChannelError, Clients
from mlflow_platform.publish_config import PublishConfig
from mlflow_platform.versioning import Decision, Published

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Step:
    operation: str
    """service:Operation, as in the API reference."""
    why: str
    run: Callable[[dict[str, str]], None] = field(repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class Plan:
    channel: str
    subject: str
    """The template name, or the portfolio for Service Catalog's shared steps."""
    decision: Decision | None
    steps: tuple[Step, ...]
    context: dict[str, str] = field(default_factory=dict)
    """What the steps start from, such as the version an earlier run created."""

    def describe(self) -> dict[str, object]:
        decision = self.decision
        return {
            "channel": self.channel,
            "subject": self.subject,
            "version": decision.version if decision else None,
            "change": decision.change if decision else None,
            "reasons": list(decision.reasons) if decision else [],
            "calls": [{"operation": s.operation, "why": s.why} for s in self.steps],
        }


def run(plans: list[Plan], context: dict[str, str], progress: Progress) -> None:
    for plan in plans:
        context.update(plan.context)
        for step in plan.steps:
            progress(f"{plan.channel} {plan.subject}: {step.operation} ({step.why})")
            step.run(context)


def read_published(
    clients: Clients,
    config: PublishConfig,
    *,
    channel: str,
    name: str,
    version: Published,
    key: Callable[[str], str],
) -> bytes:
    """A published version's content, from the bucket where it is named by its sha256.

    The compatibility and upgrade-safety checks compare against it; without it they cannot.
    """
    if version.sha256 is None:
        raise ChannelError(
            channel,
            f"{name} {version.label} was not published by this tooling (no sha256 in its "
            "description): its content is unknown, so compatibility cannot be checked",
        )
    where = key(version.sha256)
    try:
        return clients("s3").get_object(Bucket=config.bucket, Key=where)["Body"].read()
    except botocore.exceptions.ClientError as error:
        raise ChannelError(
            channel,
            f"{name}: cannot read the published {version.label} at s3://{config.bucket}/{where} "
            f"({error.response['Error']['Code']}), which the compatibility and upgrade-safety "
            "checks compare against",
        ) from None
