"""`invoke publish`: every requested channel planned from what it holds, then carried out.

Everything that can be checked offline (configuration, bundles) is checked before the first
AWS call. Channels are independent: one failing is reported and the next still runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow_platform.aws import ChannelError, Clients, channel_error
from mlflow_platform.errors import PlatformError
from mlflow_platform.releasing import proton, release, servicecatalog
from mlflow_platform.releasing.config import Channel, PublishConfig
from mlflow_platform.releasing.plan import Plan, Progress, run
from mlflow_platform.templates import named


@dataclass(kw_only=True)
class ChannelOutcome:
    channel: str
    plans: list[Plan] = field(default_factory=list)
    error: str | None = None
    done: bool = False

    def describe(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "ok": self.error is None,
            "error": self.error,
            "applied": self.done,
            "plans": [p.describe() for p in self.plans],
        }


def releases(names: list[str] | None = None, **paths) -> list[release.Release]:
    return [release.load(name, kind, **paths) for name, kind in named(names).items()]


def _plans(
    channel: Channel,
    clients: Clients,
    config: PublishConfig,
    items: list[release.Release],
    allow_unsafe: bool,
    progress: Progress,
    poll_seconds: float,
    verify: bool,
) -> list[Plan]:
    if channel == proton.CHANNEL:
        return [
            proton.plan(
                clients,
                config,
                item,
                allow_unsafe=allow_unsafe,
                poll_seconds=poll_seconds,
                progress=progress,
            )
            for item in items
        ]
    return servicecatalog.plans(clients, config, items, allow_unsafe=allow_unsafe, verify=verify)


def publish(
    *,
    clients: Clients,
    config: PublishConfig,
    items: list[release.Release],
    targets: tuple[Channel, ...],
    dry_run: bool = False,
    allow_unsafe: bool = False,
    verify: bool = False,
    progress: Progress = lambda _: None,
    poll_seconds: float = 10.0,
) -> list[ChannelOutcome]:
    outcomes = []
    for channel in targets:
        outcome = ChannelOutcome(channel=channel)
        outcomes.append(outcome)
        try:
            outcome.plans = _plans(
                channel, clients, config, items, allow_unsafe, progress, poll_seconds, verify
            )
            if not dry_run:
                run(outcome.plans, {}, progress)
                outcome.done = True
        except PlatformError as error:
            outcome.error = str(error) if isinstance(error, ChannelError) else f"{channel}: {error}"
        except Exception as error:  # SDK errors: translated so they name the channel
            outcome.error = str(channel_error(channel, error, bucket=config.bucket))
    return outcomes
