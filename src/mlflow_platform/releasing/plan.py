"""A channel's publication as a list of steps, so `--dry-run` can print exactly what would run.

Each step names the API operation it calls and why. Steps run in order and share a small
context (ids that earlier steps create), so a plan made before anything is written can also
be carried out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import botocore.exceptions

from mlflow_platform.aws import ChannelError, Clients
from mlflow_platform.releasing.config import PublishConfig
from mlflow_platform.releasing.versioning import Decision, Published

Progress = Callable[[str], None]
Run = Callable[[dict[str, str]], None]
"""A step's body: it reads and adds to the context that the plan's steps share."""
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Step:
    operation: str
    """service:Operation, as in the API reference."""
    why: str
    run: Run = field(repr=False, compare=False)


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


def published_reader(
    clients: Clients,
    config: PublishConfig,
    *,
    channel: str,
    name: str,
    key: Callable[[str], str],
    parse: Callable[[bytes], T],
) -> Callable[[Published], T]:
    """Reads a published version's content, once, from the bucket where it is named by its
    sha256. The compatibility and upgrade-safety checks compare against it; without it they
    cannot, so a version without a sha256 or without its object is an error."""
    found: dict[str, T] = {}

    def read(version: Published) -> T:
        if version.label in found:
            return found[version.label]
        if version.sha256 is None:
            raise ChannelError(
                channel,
                f"{name} {version.label} was not published by this tooling (no sha256 in its "
                "description): its content is unknown, so compatibility cannot be checked",
            )
        where = key(version.sha256)
        try:
            data = clients("s3").get_object(Bucket=config.bucket, Key=where)["Body"].read()
        except botocore.exceptions.ClientError as error:
            raise ChannelError(
                channel,
                f"{name}: cannot read the published {version.label} at "
                f"s3://{config.bucket}/{where} ({error.response['Error']['Code']}), which the "
                "compatibility and upgrade-safety checks compare against",
            ) from None
        found[version.label] = parse(data)
        return found[version.label]

    return read


@dataclass(frozen=True, kw_only=True)
class Waiting:
    """How a step that waits for AWS reports and gives up."""

    progress: Progress
    poll_seconds: float
    timeout_seconds: float
    again: str
    """What the operator runs to keep waiting once the timeout has passed."""


def wait_until(
    read: Callable[[], dict],
    *,
    settled: Callable[[dict], bool],
    channel: str,
    what: str,
    doing: str,
    waiting: Waiting,
) -> dict:
    """Poll `read` until its answer is settled, saying what it waits for at every poll."""
    deadline = time.monotonic() + waiting.timeout_seconds
    while True:
        state = read()
        if settled(state):
            return state
        if time.monotonic() > deadline:
            raise ChannelError(
                channel,
                f"{what}: still {doing} after {waiting.timeout_seconds:.0f} s; {waiting.again}",
            )
        waiting.progress(f"{channel} {what}: {doing}...")
        time.sleep(waiting.poll_seconds)
