"""`invoke outdated` and `invoke upgrade`: what is deployed behind the newest published version.

Proton: environments and service instances of our templates. Service Catalog: provisioned
products of our products. A minor upgrade stays within the deployed major; a major upgrade is
only made on request, since it may need new inputs and a review of the release notes.
Service Catalog updates pass every parameter that the new version still has as "use previous
value", so an upgrade never resets an input to its default.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import botocore.exceptions

from mlflow_platform.aws import ChannelError, Clients, channel_error
from mlflow_platform.errors import PlatformError
from mlflow_platform.releasing.plan import Progress, wait_until

_VERSION = re.compile(r"^([1-9][0-9]*)\.([0-9]+)$")
_ACTIVE = ("IN_PROGRESS",)
_RECORD_ACTIVE = ("CREATED", "IN_PROGRESS")


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
    ids: tuple[tuple[str, str], ...] = ()
    """Service Catalog ids: provisioned product, product, and the target artifacts."""

    def target(self, *, major: bool) -> str | None:
        return (self.major_upgrade if major else None) or self.minor_upgrade

    def describe(self) -> dict[str, object]:
        found = asdict(self)
        del found["ids"]
        return found


def _parse(label: str) -> tuple[int, int] | None:
    found = _VERSION.match(label)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _upgrades(current: str, available: list[str]) -> tuple[str | None, str | None]:
    now = _parse(current)
    versions = sorted(v for v in map(_parse, available) if v is not None)
    if now is None or not versions:
        return None, None
    same = [v for v in versions if v[0] == now[0] and v > now]
    newer = [v for v in versions if v[0] > now[0]]
    return (
        f"{same[-1][0]}.{same[-1][1]}" if same else None,
        f"{newer[-1][0]}.{newer[-1][1]}" if newer else None,
    )


def _proton(clients: Clients, templates: Mapping[str, str]) -> list[Deployed]:
    proton = clients("proton")
    published: dict[str, list[str]] = {}
    for name, kind in templates.items():
        pages = proton.get_paginator(f"list_{kind}_template_versions").paginate(templateName=name)
        try:
            published[name] = [
                f"{v['majorVersion']}.{v['minorVersion']}"
                for page in pages
                for v in page["templateVersions"]
                if v["status"] == "PUBLISHED"
            ]
        except botocore.exceptions.ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            published[name] = []
    found: list[Deployed] = []
    for operation, key, kind in (
        ("list_environments", "environments", "environment"),
        ("list_service_instances", "serviceInstances", "service instance"),
    ):
        for page in proton.get_paginator(operation).paginate():
            for item in page[key]:
                if item["templateName"] not in templates:
                    continue
                current = f"{item['templateMajorVersion']}.{item['templateMinorVersion']}"
                minor, major = _upgrades(current, published[item["templateName"]])
                found.append(
                    Deployed(
                        channel="proton",
                        kind=kind,
                        name=item["name"],
                        service=item.get("serviceName"),
                        template=item["templateName"],
                        current=current,
                        minor_upgrade=minor,
                        major_upgrade=major,
                    )
                )
    return found


def _search_pages(catalog) -> list[dict]:
    """SearchProvisionedProducts pages (botocore has no paginator for it)."""
    pages: list[dict] = []
    token: str | None = None
    while True:
        extra = {"PageToken": token} if token else {}
        page = catalog.search_provisioned_products(
            AccessLevelFilter={"Key": "Account", "Value": "self"}, PageSize=100, **extra
        )
        pages.append(page)
        token = page.get("NextPageToken")
        if not token:
            return pages


def _servicecatalog(clients: Clients, templates: Mapping[str, str]) -> list[Deployed]:
    catalog = clients("servicecatalog")
    artifacts: dict[str, dict[str, str]] = {}
    for name in templates:
        try:
            product = catalog.describe_product_as_admin(Name=name)
        except botocore.exceptions.ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            continue
        artifacts[name] = {a["Name"]: a["Id"] for a in product["ProvisioningArtifactSummaries"]}
    found: list[Deployed] = []
    pages = _search_pages(catalog)
    for page in pages:
        for item in page["ProvisionedProducts"]:
            product = item.get("ProductName")
            if product not in artifacts:
                continue
            current = item.get("ProvisioningArtifactName", "")
            minor, major = _upgrades(current, list(artifacts[product]))
            ids = [
                ("provisioned", item["Id"]),
                ("product", item["ProductId"]),
                ("current", item["ProvisioningArtifactId"]),
            ]
            ids += [(label, artifacts[product][label]) for label in (minor, major) if label]
            found.append(
                Deployed(
                    channel="servicecatalog",
                    kind="provisioned product",
                    name=item["Name"],
                    template=product,
                    current=current,
                    minor_upgrade=minor,
                    major_upgrade=major,
                    ids=tuple(ids),
                )
            )
    return found


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
            reader = _proton if channel == "proton" else _servicecatalog
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


def _upgrade_proton(
    clients: Clients,
    item: Deployed,
    target: str,
    *,
    progress: Progress,
    poll_seconds: float,
    timeout_seconds: float,
) -> str:
    proton = clients("proton")
    major, minor = target.split(".")
    deployment = "MAJOR_VERSION" if major != item.current.split(".")[0] else "MINOR_VERSION"
    what = f"{item.kind} {item.name}"
    waiting = {
        "channel": "proton",
        "what": what,
        "doing": "deploying",
        "progress": progress,
        "poll_seconds": poll_seconds,
        "timeout_seconds": timeout_seconds,
        "again": "`invoke outdated` shows where it stands",
    }
    if item.kind == "environment":
        proton.update_environment(
            name=item.name,
            deploymentType=deployment,
            templateMajorVersion=major,
            templateMinorVersion=minor,
        )
        state = wait_until(
            lambda: proton.get_environment(name=item.name)["environment"],
            settled=lambda s: s["deploymentStatus"] not in _ACTIVE,
            **waiting,
        )
    else:
        proton.update_service_instance(
            name=item.name,
            serviceName=item.service or "",
            deploymentType=deployment,
            templateMajorVersion=major,
            templateMinorVersion=minor,
        )
        state = wait_until(
            lambda: proton.get_service_instance(name=item.name, serviceName=item.service or "")[
                "serviceInstance"
            ],
            settled=lambda s: s["deploymentStatus"] not in _ACTIVE,
            **waiting,
        )
    if state["deploymentStatus"] != "SUCCEEDED":
        raise ChannelError(
            "proton",
            f"{item.kind} {item.name}: deployment {state['deploymentStatus']}: "
            f"{state.get('deploymentStatusMessage', 'no message')}",
        )
    return f"{item.current} -> {target}"


def _parameter_names(catalog, product: str, artifact: str) -> set[str]:
    detail = catalog.describe_provisioning_artifact(
        ProductId=product,
        ProvisioningArtifactId=artifact,
        IncludeProvisioningArtifactParameters=True,
    )
    return {p["ParameterKey"] for p in detail.get("ProvisioningArtifactParameters", [])}


def _upgrade_servicecatalog(
    clients: Clients,
    item: Deployed,
    target: str,
    *,
    progress: Progress,
    poll_seconds: float,
    timeout_seconds: float,
) -> str:
    catalog = clients("servicecatalog")
    ids = dict(item.ids)
    kept = _parameter_names(catalog, ids["product"], ids["current"]) & _parameter_names(
        catalog, ids["product"], ids[target]
    )
    record = catalog.update_provisioned_product(
        ProvisionedProductId=ids["provisioned"],
        ProductId=ids["product"],
        ProvisioningArtifactId=ids[target],
        ProvisioningParameters=[{"Key": k, "UsePreviousValue": True} for k in sorted(kept)],
        UpdateToken=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ids['provisioned']}/{ids[target]}")),
    )["RecordDetail"]
    state = wait_until(
        lambda: catalog.describe_record(Id=record["RecordId"])["RecordDetail"],
        settled=lambda s: s["Status"] not in _RECORD_ACTIVE,
        channel="servicecatalog",
        what=item.name,
        doing="updating",
        progress=progress,
        poll_seconds=poll_seconds,
        timeout_seconds=timeout_seconds,
        again="`invoke outdated` shows where it stands",
    )
    if state["Status"] != "SUCCEEDED":
        errors = "; ".join(e.get("Description", "") for e in state.get("RecordErrors", []))
        raise ChannelError("servicecatalog", f"{item.name}: update {state['Status']}: {errors}")
    return f"{item.current} -> {target}"


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
        apply = _upgrade_proton if item.channel == "proton" else _upgrade_servicecatalog
        try:
            message = apply(
                clients,
                item,
                target,
                progress=progress,
                poll_seconds=poll_seconds,
                timeout_seconds=timeout_seconds,
            )
            results.append(
                UpgradeResult(item=item, target=target, status="upgraded", message=message)
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
