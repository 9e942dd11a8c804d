"""A channel's publication as a list of steps, so `--dry-run` can print exactly what would run.

Each step names the API operation it calls and why. Steps run in order and share a small
context (ids that earlier steps create), so a plan made before anything is written can also
be carried out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlflow_platform.versioning import Decision

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
