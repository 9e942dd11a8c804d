"""`invoke outdated` and `invoke upgrade`: what is deployed behind the newest published version.

Proton: environments and service instances of our templates. Service Catalog: provisioned
products of our products. A minor upgrade stays within the deployed major; a major upgrade is
only made on request, since it may need new inputs and a review of the release notes.
Service Catalog updates pass every parameter that the new version still has as "use previous
value", so an upgrade never resets an input to its default.

Every read and write of a service is its channel module's (releasing/proton.py,
releasing/servicecatalog.py), the same that publishing uses; this module decides what to move
where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from mlflow_platform.aws import Clients, channel_error
from mlflow_platform.errors import PlatformError
from mlflow_platform.releasing import proton, servicecatalog
from mlflow_platform.releasing.plan import Progress, Waiting
from mlflow_platform.releasing.versioning import parse_label

_AGAIN = "`invoke outdated` shows where it stands"


@dataclass(frozen=True, kw_only=True)
class Deployed:
    channel: str
    kind: str
    """environment, service instance or provisioned product."""
    name: str
    template: str
    current: str
    minor_upgrade: str | None
    """The newest version within the deployed major, when newer than the deployed one."""
    major_upgrade: str | None
    """The newest version of a newer major, when there is one."""
    service: str | None = None
    source: proton.Deployment | servicecatalog.Provisioned = field(repr=False, compare=False)
    """What the channel listed, which its upgrade call takes."""
    artifacts: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Service Catalog: the provisioning artifact id of each version."""

    def target(self, *, major: bool) -> str | None:
        return (self.major_upgrade if major else None) or self.minor_upgrade

    def describe(self) -> dict[str, object]:
        hidden = ("source", "artifacts")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}


def _upgrades(current: str, available: list[str]) -> tuple[str | None, str | None]:
    now = parse_label(current)
    versions = sorted(v for v in map(parse_label, available) if v is not None)
    if now is None or not versions:
        return None, None
    same = [v for v in versions if v[0] == now[0] and v > now]
    newer = [v for v in versions if v[0] > now[0]]
    return (
        f"{same[-1][0]}.{same[-1][1]}" if same else None,
        f"{newer[-1][0]}.{newer[-1][1]}" if newer else None,
    )


def _deployed(
    channel: str,
    source: proton.Deployment | servicecatalog.Provisioned,
    available: Mapping[str, str] | list[str],
) -> Deployed:
    """available: the versions the template has; for Service Catalog, each with its id."""
    minor, major = _upgrades(source.version, list(available))
    return Deployed(
        channel=channel,
        kind=source.kind,
        name=source.name,
        service=source.service,
        template=source.template,
        current=source.version,
        minor_upgrade=minor,
        major_upgrade=major,
        source=source,
        artifacts=available if isinstance(available, Mapping) else {},
    )


def _proton(clients: Clients, templates: Mapping[str, str]) -> list[Deployed]:
    published = {
        name: proton.published_labels(clients, name, kind) for name, kind in templates.items()
    }
    return [
        _deployed(proton.CHANNEL, deployment, published[deployment.template])
        for deployment in proton.deployments(clients, templates)
    ]


def _servicecatalog(clients: Clients, templates: Mapping[str, str]) -> list[Deployed]:
    artifacts: dict[str, dict[str, str]] = {}
    for name in templates:
        product = servicecatalog.product(clients, name)
        if product is not None:
            artifacts[name] = servicecatalog.artifact_ids(product)
    return [
        _deployed(servicecatalog.CHANNEL, provisioned, artifacts[provisioned.template])
        for provisioned in servicecatalog.provisioned_products(clients)
        if provisioned.template in artifacts
    ]


@dataclass(kw_only=True)
class Listing:
    deployed: list[Deployed]
    errors: list[str]

    @property
    def outdated(self) -> list[Deployed]:
        return [d for d in self.deployed if d.minor_upgrade or d.major_upgrade]


def deployed(clients: Clients, templates: Mapping[str, str], channels: tuple[str, ...]) -> Listing:
    listing = Listing(deployed=[], errors=[])
    for channel in channels:
        try:
            reader = _proton if channel == proton.CHANNEL else _servicecatalog
            listing.deployed += reader(clients, templates)
        except Exception as error:
            listing.errors.append(str(channel_error(channel, error)))
    return listing


@dataclass(frozen=True, kw_only=True)
class UpgradeResult:
    item: Deployed
    target: str | None
    status: str
    """upgraded, failed, skipped, or planned (dry run)."""
    message: str = ""

    def describe(self) -> dict[str, object]:
        return {
            **self.item.describe(),
            "target": self.target,
            "status": self.status,
            "message": self.message,
        }


def _apply(clients: Clients, item: Deployed, target: str, waiting: Waiting) -> None:
    if isinstance(item.source, proton.Deployment):
        proton.deploy(clients, item.source, target, waiting)
    else:
        servicecatalog.update(clients, item.source, item.artifacts[target], waiting)


def upgrade(
    clients: Clients,
    items: list[Deployed],
    *,
    major: bool = False,
    dry_run: bool = False,
    progress: Progress = lambda _: None,
    poll_seconds: float = 15.0,
    timeout_seconds: float = 3600.0,
) -> list[UpgradeResult]:
    waiting = Waiting(
        progress=progress,
        poll_seconds=poll_seconds,
        timeout_seconds=timeout_seconds,
        again=_AGAIN,
    )
    results = []
    for item in items:
        target = item.target(major=major)
        if target is None:
            message = (
                f"major {item.major_upgrade} is available: pass --major to move to it"
                if item.major_upgrade
                else "already runs the newest version"
            )
            results.append(UpgradeResult(item=item, target=None, status="skipped", message=message))
            continue
        if dry_run:
            results.append(
                UpgradeResult(
                    item=item,
                    target=target,
                    status="planned",
                    message=f"{item.current} -> {target}",
                )
            )
            continue
        progress(f"{item.channel} {item.kind} {item.name}: {item.current} -> {target}")
        try:
            _apply(clients, item, target, waiting)
            results.append(
                UpgradeResult(
                    item=item,
                    target=target,
                    status="upgraded",
                    message=f"{item.current} -> {target}",
                )
            )
        except Exception as error:
            results.append(
                UpgradeResult(
                    item=item,
                    target=target,
                    status="failed",
                    message=str(channel_error(item.channel, error)),
                )
            )
    return results


def select(
    items: list[Deployed],
    *,
    env: str | None = None,
    service: str | None = None,
    every: bool = False,
) -> list[Deployed]:
    """--env NAME, --service NAME (or SERVICE/INSTANCE) or --all, exactly one of them."""
    if sum(bool(x) for x in (env, service, every)) != 1:
        raise PlatformError("name exactly one of --env NAME, --service NAME or --all")
    if every:
        return items
    if env:
        chosen = [d for d in items if d.name == env and d.kind != "service instance"]
    else:
        chosen = [
            d
            for d in items
            if service in (d.name, f"{d.service}/{d.name}") and d.kind != "environment"
        ]
    if not chosen:
        raise PlatformError(f"nothing deployed from these templates is named {env or service!r}")
    return chosen
