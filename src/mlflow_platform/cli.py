"""What the invoke tasks share: option help, the error wrapper, and each command's report.

tasks.py parses options, calls the library and hands the result to a report here, so that the
tasks stay thin and every command prints text or `--json` the same way. This module imports
nothing heavy: `invoke --list` and an up-to-date `invoke bundle` must stay instant.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Exit

from mlflow_platform.errors import PlatformError
from mlflow_platform.paths import ROOT

if TYPE_CHECKING:
    from mlflow_platform.building.bundle import BundleResult
    from mlflow_platform.image.push import ImageResult
    from mlflow_platform.releasing.plan import Plan
    from mlflow_platform.releasing.publish import ChannelOutcome
    from mlflow_platform.upgrading import Listing, UpgradeResult

HELP = {
    "profile": "The AWS profile to use (default: the standard AWS configuration: environment, "
    "SSO, a role).",
    "region": "The AWS region (default: the standard AWS configuration).",
    "json": "Print the result as JSON on stdout (progress goes to stderr) instead of lines of "
    "text.",
    "template": "Only this template (repeatable; default: every template).",
    "dry_run": "Read what AWS holds and print what would change; change nothing.",
}


def help_for(*shared: str, **own: str) -> dict[str, str]:
    """The help of a task's options: the shared ones by name, then its own."""
    return {**{name: HELP[name] for name in shared}, **own}


@contextlib.contextmanager
def failing_as(task: str) -> Iterator[None]:
    """A PlatformError (bad input, a refused change, a failed check) ends the task with its
    message and exit code 1; anything else is a bug and keeps its traceback."""
    try:
        yield
    except PlatformError as error:
        raise Exit(f"invoke {task}: {error}", code=1) from None


def progress(*, json: bool, stream: Any = None) -> Callable[[str], None]:
    """Where progress lines go: stderr when stdout carries JSON."""
    out = stream or (sys.stderr if json else sys.stdout)
    return lambda line: print(line, file=out, flush=True)


@dataclass(frozen=True, kw_only=True)
class Report:
    """What a command prints: data for --json, lines for a person, and whether it failed."""

    data: Mapping[str, object]
    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def emit(self, *, json: bool) -> None:
        if json:
            print(jsonlib.dumps(self.data))
        else:
            for line in self.lines:
                print(line)
        if self.failed:
            raise Exit(code=1)


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def synth_report(written: Iterable[Path]) -> Report:
    paths = [_relative(p) for p in written]
    return Report(data={"templates": paths}, lines=[f"wrote {p}" for p in paths])


def bundle_report(result: BundleResult | None, *, check: bool) -> Report:
    """result None: the stamp said nothing the bundles are made from has changed."""
    if result is None:
        data: dict[str, object] = {"up_to_date": True, "checked": check, "written": [],
                                   "specs": [], "linted": [], "new_majors": {}}  # fmt: skip
        return Report(
            data=data, lines=["bundles are up to date: nothing they are made from has changed"]
        )
    written = [] if check else [_relative(p) for p in result.written]
    lines = [f"rendered and linted {spec}" for spec in result.specs]
    lines += [
        f"started {folder}: not compatible with the previous major: {'; '.join(reasons)}"
        for folder, reasons in result.new_majors.items()
    ]
    lines += [f"wrote {path}" for path in written]
    if check:
        lines.append("proton/ matches what the code renders")
    data = {
        "up_to_date": False,
        "checked": check,
        "written": written,
        "specs": result.specs,
        "linted": result.linted,
        "new_majors": result.new_majors,
    }
    return Report(data=data, lines=lines)


def image_report(result: ImageResult, *, dry_run: bool) -> Report:
    verb = "would run" if dry_run else "ran"
    lines = [f"{verb}: {step}" if result.pushed or dry_run else step for step in result.steps]
    data = {"uri": result.uri, "pushed": result.pushed, "dry_run": dry_run,
            "steps": list(result.steps)}  # fmt: skip
    return Report(data=data, lines=[*lines, result.uri])


def local_report(action: str, result: Mapping[str, Any]) -> Report:
    if action == "up":
        # What the local team's notebook sets, as `export` lines (`eval "$(invoke local up)"`
        # sets them; progress goes to standard error then), and the administrator's way in.
        lines = [
            f"# the local team ({result.get('auth_mode', 'basic')} mode), through its team API:"
        ] + [
            f"export {name}={shlex.quote(value)}"
            for name, value in result.get("client_environment", {}).items()
        ] + [
            f"# administrator, straight to the server: {result['tracking_uri']} "
            f"user {result['username']} password {result['password']}"
        ]  # fmt: skip
    elif action == "down":
        lines = ["stopped: " + (", ".join(result["stopped"]) or "nothing was running")]
    else:
        lines = [
            f"{name:<9}{'running' if c['running'] else 'stopped':<9}port {c['port']}"
            for name, c in result.items()
        ] or ["nothing has been started"]
    return Report(data=result, lines=lines)


def _plan_lines(plan: Plan, *, dry_run: bool) -> list[str]:
    decision = plan.decision
    head = f"{plan.channel} {plan.subject}"
    if decision is not None:
        head += f" {decision.version} ({decision.change}: {'; '.join(decision.reasons)})"
    if not plan.steps:
        return [f"{head}: up to date"]
    return [f"{head}: {'would call' if dry_run else 'called'}"] + [
        f"  {step.operation}  {step.why}" for step in plan.steps
    ]


def publish_report(
    outcomes: list[ChannelOutcome], *, calls: Mapping[str, int], dry_run: bool
) -> Report:
    lines: list[str] = []
    for outcome in outcomes:
        for plan in outcome.plans:
            lines += _plan_lines(plan, dry_run=dry_run)
        if outcome.error:
            lines.append(f"FAILED {outcome.error}")
    lines.append(f"{calls['reads']} read and {calls['writes']} write calls")
    data = {"dry_run": dry_run, "channels": [o.describe() for o in outcomes], "calls": calls}
    return Report(data=data, lines=lines, failed=any(o.error for o in outcomes))


def outdated_report(listing: Listing) -> Report:
    lines = []
    for item in listing.outdated:
        where = f"{item.service}/{item.name}" if item.service else item.name
        newer = ", ".join(
            f"{label} {version}"
            for label, version in (("minor", item.minor_upgrade), ("major", item.major_upgrade))
            if version
        )
        lines.append(
            f"{item.channel} {item.kind} {where} ({item.template}): {item.current}, {newer}"
        )
    if not listing.outdated:
        lines.append("everything deployed runs the newest version")
    lines += [f"FAILED {error}" for error in listing.errors]
    data = {"outdated": [d.describe() for d in listing.outdated], "errors": listing.errors}
    return Report(data=data, lines=lines, failed=bool(listing.errors))


def upgrade_report(results: list[UpgradeResult], *, errors: list[str], dry_run: bool) -> Report:
    lines = [
        f"{r.status:<9}{r.item.channel} {r.item.kind} {r.item.name}: {r.message}" for r in results
    ]
    lines += [f"FAILED {error}" for error in errors]
    data = {"dry_run": dry_run, "results": [r.describe() for r in results], "errors": errors}
    return Report(
        data=data, lines=lines, failed=bool(errors) or any(r.status == "failed" for r in results)
    )
