"""AWS Service Catalog, the one place that reads and writes it: products in one portfolio for
publishing, provisioned products for upgrading.

State is read from Service Catalog: the portfolio and products are found by name, each
provisioning artifact's description carries the template's sha256 and its name is the version,
so a rerun recognises what an interrupted run created. Each planned create carries its own
idempotency token, so the SDK's retries of it cannot create a second portfolio, product or
artifact; a token derived from names instead would replay an old answer for something deleted
since (a launch constraint removed in the console, say) and never create it again.

A run with nothing to do reads each product once and one small object in the bucket. The last
step of a publication writes that object, `<prefix>servicecatalog/<name>/published.json`: a
digest of everything it set up (this content, the product's console details, the portfolio,
launch role, principals and policy for older versions) with the product and artifact it set up.
A product that is still that product, with that artifact, under the digest of the present
content and configuration needs nothing; any other gets the full check: product details,
portfolio, principals, constraints and artifacts. A failure at any step leaves the old object
behind, so the next run does the full check and finishes the job. The digest lives in the
bucket, not on the product, because every field of a product is shown to end users.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import botocore.exceptions

from mlflow_platform.aws import ChannelError, Clients
from mlflow_platform.releasing import versioning
from mlflow_platform.releasing.config import PublishConfig, ServiceCatalogConfig
from mlflow_platform.releasing.plan import Plan, Step, Waiting, published_reader, wait_until
from mlflow_platform.releasing.release import Release, document, service_catalog_inputs

CHANNEL = "servicecatalog"
_TYPE = "CLOUD_FORMATION_TEMPLATE"
_SNAKE = re.compile(r"(?<=[a-z])(?=[A-Z])")
MARKER_FILE = "published.json"
# ProductViewSummary field -> UpdateProduct parameter, for what the console shows of a product.
_DETAILS = {
    "Owner": "Owner",
    "ShortDescription": "Description",
    "SupportDescription": "SupportDescription",
    "SupportEmail": "SupportEmail",
    "SupportUrl": "SupportUrl",
    "Distributor": "Distributor",
}
# Record statuses (botocore's servicecatalog model, RecordStatus) of work still under way.
_RECORD_ACTIVE = ("CREATED", "IN_PROGRESS")
_RECORD_DONE = "SUCCEEDED"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:64]


def template_key(config: PublishConfig, release: Release, sha256: str) -> str:
    return config.key(CHANNEL, release.name, f"{sha256}.yaml")


def template_url(clients: Clients, config: PublishConfig, key: str) -> str:
    """Where Service Catalog fetches the template: the S3 client's own endpoint and region."""
    s3 = clients("s3")
    endpoint = s3.meta.endpoint_url.rstrip("/")
    if endpoint.endswith(".amazonaws.com"):
        return f"https://{config.bucket}.s3.{s3.meta.region_name}.amazonaws.com/{key}"
    return f"{endpoint}/{config.bucket}/{key}"


def marker_key(config: PublishConfig, release: Release) -> str:
    return config.key(CHANNEL, release.name, MARKER_FILE)


# Reading


def _pages(client: Any, operation: str, key: str, **kwargs: object) -> list[dict]:
    return [
        item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]
    ]


def product(clients: Clients, name: str) -> dict | None:
    """The product as its administrator sees it, or None when there is none of that name."""
    try:
        return clients("servicecatalog").describe_product_as_admin(Name=name)
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def _summary(product: Mapping) -> Mapping:
    return product["ProductViewDetail"]["ProductViewSummary"]


def artifact_ids(product: Mapping) -> dict[str, str]:
    """Each provisioning artifact's id by its name (the version)."""
    return {a["Name"]: a["Id"] for a in product["ProvisioningArtifactSummaries"]}


def _published(artifact: Mapping) -> versioning.Published | None:
    version = versioning.parse_label(artifact.get("Name", ""))
    if version is None:
        return None  # added by hand: not one of ours, not a version to compare against
    return versioning.Published(
        major=version[0],
        minor=version[1],
        sha256=versioning.described_sha256(artifact.get("Description", "")),
        usable=artifact.get("Active", True) is not False,
    )


def _read_marker(clients: Clients, config: PublishConfig, release: Release) -> dict | None:
    try:
        body = clients("s3").get_object(Bucket=config.bucket, Key=marker_key(config, release))
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404", "AccessDenied"):
            return None  # never completed here (or not readable): the full check decides
        raise
    try:
        marker = json.loads(body["Body"].read())
    except ValueError:
        return None
    return marker if isinstance(marker, dict) else None


@dataclass(frozen=True, kw_only=True)
class _Portfolio:
    """The configured portfolio as it stands, with who may use it and its constraints."""

    id: str | None
    """None: no portfolio of that name exists yet."""
    principals: frozenset[str] = frozenset()
    constraints: tuple[dict, ...] = ()


def _portfolio(clients: Clients, settings: ServiceCatalogConfig) -> _Portfolio:
    catalog = clients("servicecatalog")
    found = [
        p
        for p in _pages(catalog, "list_portfolios", "PortfolioDetails")
        if p["DisplayName"] == settings.portfolio
    ]
    if len(found) > 1:
        raise ChannelError(
            CHANNEL,
            f"{len(found)} portfolios are named {settings.portfolio!r}: "
            "keep one, or name another in publish.yaml",
        )
    if not found:
        return _Portfolio(id=None)
    portfolio_id = found[0]["Id"]
    # Every principal: one that publish.yaml no longer names loses access.
    principals = _pages(
        catalog, "list_principals_for_portfolio", "Principals", PortfolioId=portfolio_id
    )
    constraints = _pages(
        catalog, "list_constraints_for_portfolio", "ConstraintDetails", PortfolioId=portfolio_id
    )
    return _Portfolio(
        id=portfolio_id,
        principals=frozenset(p["PrincipalARN"] for p in principals),
        constraints=tuple(constraints),
    )


def _artifacts(
    clients: Clients, settings: ServiceCatalogConfig, product: Mapping | None
) -> list[dict]:
    """The product's provisioning artifacts; every field of each where older versions change."""
    if product is None:
        return []
    if settings.older_versions == "keep-active":
        return product.get("ProvisioningArtifactSummaries", [])
    return clients("servicecatalog").list_provisioning_artifacts(
        ProductId=_summary(product)["ProductId"]
    )["ProvisioningArtifactDetails"]


# What a publication sets up


def product_details(config: PublishConfig, release: Release) -> dict[str, str]:
    """What the console shows end users of the product, by ProductViewSummary field.

    The description is the template's own; Distributor (the console's "Vendor") is left empty,
    since the provider already shows as "Provided by".
    """
    support = config.servicecatalog.support
    description = str(release.service_catalog_template.get("Description", release.name))
    return {
        "Owner": config.servicecatalog.provider,
        "ShortDescription": description,
        "SupportDescription": support.description,
        "SupportEmail": support.email,
        "SupportUrl": support.url,
        "Distributor": "",
    }


def state_marker(config: PublishConfig, release: Release) -> str:
    """The digest a completed publication of this content and configuration records."""
    settings = config.servicecatalog
    return _digest(
        settings.portfolio,
        settings.launch_role_arn,
        *sorted(settings.principals),
        settings.older_versions,
        json.dumps(product_details(config, release), sort_keys=True),
        release.service_catalog_sha256,
    )[:32]


def launch_description(role_arn: str) -> str:
    return f"Launch as {role_arn}"


# Writing: each method is the body of one step


@dataclass(frozen=True, kw_only=True)
class _Writes:
    clients: Clients
    config: PublishConfig

    @property
    def catalog(self) -> Any:
        return self.clients("servicecatalog")

    def create_portfolio(self, token: str, ctx: dict[str, str]) -> None:
        settings = self.config.servicecatalog
        created = self.catalog.create_portfolio(
            DisplayName=settings.portfolio,
            ProviderName=settings.provider,
            Description="Self-service MLflow: the shared platform and a team's SageMaker API",
            IdempotencyToken=token,
        )
        ctx["portfolio"] = created["PortfolioDetail"]["Id"]

    def change_access(self, operation: str, arn: str, ctx: dict[str, str]) -> None:
        call = getattr(self.catalog, _SNAKE.sub("_", operation).lower())
        call(PortfolioId=ctx["portfolio"], PrincipalARN=arn, PrincipalType="IAM")

    def forget(self, release: Release, ctx: dict[str, str]) -> None:
        self.clients("s3").delete_object(
            Bucket=self.config.bucket, Key=marker_key(self.config, release)
        )

    def upload(self, release: Release, key: str, ctx: dict[str, str]) -> None:
        self.clients("s3").put_object(
            Bucket=self.config.bucket,
            Key=key,
            Body=release.service_catalog.encode(),
            ContentType="application/x-yaml",
        )

    def create_product(
        self,
        release: Release,
        artifact: dict,
        details: dict[str, str],
        token: str,
        ctx: dict[str, str],
    ) -> None:
        created = self.catalog.create_product(
            Name=release.name,
            ProductType=_TYPE,
            ProvisioningArtifactParameters=artifact,
            IdempotencyToken=token,
            **{_DETAILS[k]: v for k, v in details.items() if v},
        )
        ctx[_product(release)] = _summary(created)["ProductId"]
        ctx[_artifact(release)] = created["ProvisioningArtifactDetail"]["Id"]

    def create_artifact(
        self, release: Release, artifact: dict, token: str, ctx: dict[str, str]
    ) -> None:
        created = self.catalog.create_provisioning_artifact(
            ProductId=ctx[_product(release)], Parameters=artifact, IdempotencyToken=token
        )
        ctx[_artifact(release)] = created["ProvisioningArtifactDetail"]["Id"]

    def update_details(
        self, release: Release, changed: dict[str, str], ctx: dict[str, str]
    ) -> None:
        self.catalog.update_product(
            Id=ctx[_product(release)], **{_DETAILS[k]: v for k, v in changed.items()}
        )

    def delete_constraint(self, constraint_id: str, ctx: dict[str, str]) -> None:
        self.catalog.delete_constraint(Id=constraint_id)

    def associate(self, release: Release, ctx: dict[str, str]) -> None:
        self.catalog.associate_product_with_portfolio(
            ProductId=ctx[_product(release)], PortfolioId=ctx["portfolio"]
        )

    def constrain(self, release: Release, role_arn: str, token: str, ctx: dict[str, str]) -> None:
        self.catalog.create_constraint(
            PortfolioId=ctx["portfolio"],
            ProductId=ctx[_product(release)],
            Type="LAUNCH",
            Parameters=json.dumps({"RoleArn": role_arn}),
            Description=launch_description(role_arn),
            IdempotencyToken=token,
        )

    def update_artifact(
        self, release: Release, artifact_id: str, change: dict, ctx: dict[str, str]
    ) -> None:
        self.catalog.update_provisioning_artifact(
            ProductId=ctx[_product(release)], ProvisioningArtifactId=artifact_id, **change
        )

    def complete(self, release: Release, ctx: dict[str, str]) -> None:
        record = {
            "state": state_marker(self.config, release),
            "product": ctx[_product(release)],
            "artifact": ctx[_artifact(release)],
        }
        self.clients("s3").put_object(
            Bucket=self.config.bucket,
            Key=marker_key(self.config, release),
            Body=json.dumps(record, sort_keys=True).encode(),
            ContentType="application/json",
        )


def _product(release: Release) -> str:
    """The context key of the product's id."""
    return f"product:{release.name}"


def _artifact(release: Release) -> str:
    """The context key of the published provisioning artifact's id."""
    return f"artifact:{release.name}"


# Publishing


def _forget_step(writes: _Writes, release: Release) -> Step:
    return Step(
        operation="s3:DeleteObject",
        why="forget the record of the last publication "
        f"({marker_key(writes.config, release)}) until this one completes",
        run=partial(writes.forget, release),
    )


def _portfolio_steps(writes: _Writes, portfolio: _Portfolio) -> list[Step]:
    settings = writes.config.servicecatalog
    steps: list[Step] = []
    if portfolio.id is None:
        steps.append(
            Step(
                operation="servicecatalog:CreatePortfolio",
                why=f"portfolio {settings.portfolio!r} does not exist",
                run=partial(writes.create_portfolio, uuid.uuid4().hex),
            )
        )
    # publish.yaml's principals are the portfolio's: missing ones get access, others lose it.
    changes = [
        ("AssociatePrincipalWithPortfolio", arn, f"give {arn} access")
        for arn in settings.principals
        if arn not in portfolio.principals
    ] + [
        ("DisassociatePrincipalFromPortfolio", arn, f"remove {arn}'s access: not in publish.yaml")
        for arn in sorted(portfolio.principals - set(settings.principals))
    ]
    steps += [
        Step(
            operation=f"servicecatalog:{operation}",
            why=why,
            run=partial(writes.change_access, operation, arn),
        )
        for operation, arn, why in changes
    ]
    return steps


def _completed(
    config: PublishConfig, release: Release, product: Mapping | None, marker: Mapping | None
) -> Plan | None:
    """The plan of a product that is published as configured (no call needed), or None."""
    if product is None or marker is None:
        return None
    if (marker.get("state"), marker.get("product")) != (
        state_marker(config, release),
        _summary(product)["ProductId"],
    ):
        return None
    sha = release.service_catalog_sha256
    own = [
        a["Name"]
        for a in product.get("ProvisioningArtifactSummaries", [])
        if (p := _published(a)) is not None
        and p.sha256 == sha
        and a.get("Id") == marker.get("artifact")
    ]
    if not own:
        return None
    decision = versioning.Decision(
        change="none", version=own[-1], reasons=(f"{own[-1]} has the same content",), previous=None
    )
    return Plan(channel=CHANNEL, subject=release.name, decision=decision, steps=())


def plans(
    clients: Clients,
    config: PublishConfig,
    releases: list[Release],
    *,
    allow_unsafe: bool = False,
    verify: bool = False,
) -> list[Plan]:
    """The portfolio's own steps first, then one plan for each template.

    verify: check everything even where the product holds the current digest, to repair what
    was changed by hand since.
    """
    settings = config.servicecatalog
    subject = f"portfolio {settings.portfolio}"
    products = {release.name: product(clients, release.name) for release in releases}
    markers = {
        release.name: None
        if products[release.name] is None
        else _read_marker(clients, config, release)
        for release in releases
    }
    done = [
        None
        if verify
        else _completed(config, release, products[release.name], markers[release.name])
        for release in releases
    ]
    if all(done):
        portfolio_plan = Plan(channel=CHANNEL, subject=subject, decision=None, steps=())
        return [portfolio_plan, *(plan for plan in done if plan)]
    writes = _Writes(clients=clients, config=config)
    portfolio = _portfolio(clients, settings)
    portfolio_steps = _portfolio_steps(writes, portfolio)
    if portfolio_steps:
        recorded = [r for r in releases if markers[r.name] is not None]
        portfolio_steps[:0] = [_forget_step(writes, r) for r in recorded]
    result = [
        Plan(
            channel=CHANNEL,
            subject=subject,
            decision=None,
            steps=tuple(portfolio_steps),
            context={"portfolio": portfolio.id} if portfolio.id else {},
        )
    ]
    for release, plan in zip(releases, done, strict=True):
        result.append(
            plan
            or _product_plan(
                writes,
                release,
                products[release.name],
                # Forgotten already, with every other record, when the portfolio changes.
                None if portfolio_steps else markers[release.name],
                portfolio.constraints,
                allow_unsafe,
            )
        )
    return result


def _decide(
    writes: _Writes, release: Release, published: list[versioning.Published]
) -> tuple[versioning.Decision, Callable[[versioning.Published], Mapping]]:
    """The version this content becomes, and the reader of the published templates it was
    compared with (the upgrade-safety check compares with them too)."""
    config = writes.config
    old = published_reader(
        writes.clients,
        config,
        channel=CHANNEL,
        name=release.name,
        key=lambda sha: template_key(config, release, sha),
        parse=document,
    )
    decision = versioning.decide(
        name=release.name,
        local_major=release.major,
        sha256=release.service_catalog_sha256,
        published=published,
        compatibility=lambda p: versioning.schema_compatibility(
            service_catalog_inputs(old(p), release.kind),
            service_catalog_inputs(release.service_catalog_template, release.kind),
        ),
    )
    return decision, old


def _creation_steps(
    writes: _Writes, release: Release, product_id: str | None, decision: versioning.Decision
) -> list[Step]:
    """Upload the template and make it a new product, or a new version of the product."""
    config = writes.config
    key = template_key(config, release, release.service_catalog_sha256)
    artifact = {
        "Name": decision.version,
        "Description": versioning.description(
            release.name, decision.version, release.service_catalog_sha256
        ),
        "Info": {"LoadTemplateFromURL": template_url(writes.clients, config, key)},
        "Type": _TYPE,
    }
    upload = Step(
        operation="s3:PutObject",
        why=f"upload s3://{config.bucket}/{key}",
        run=partial(writes.upload, release, key),
    )
    token = uuid.uuid4().hex
    if product_id is None:
        details = product_details(config, release)
        create = Step(
            operation="servicecatalog:CreateProduct",
            why=f"new product, version {decision.version}",
            run=partial(writes.create_product, release, artifact, details, token),
        )
    else:
        create = Step(
            operation="servicecatalog:CreateProvisioningArtifact",
            why=f"{decision.change} version {decision.version}",
            run=partial(writes.create_artifact, release, artifact, token),
        )
    return [upload, create]


def _details_steps(writes: _Writes, release: Release, product: Mapping | None) -> list[Step]:
    """Set what the console shows where the product shows something else."""
    if product is None:
        return []
    shown = _summary(product)
    details = product_details(writes.config, release)
    changed = {k: v for k, v in details.items() if shown.get(k, "") != v}
    if not changed:
        return []
    return [
        Step(
            operation="servicecatalog:UpdateProduct",
            why=f"set what the console shows: {', '.join(sorted(changed))}",
            run=partial(writes.update_details, release, changed),
        )
    ]


def _constraint_steps(
    writes: _Writes, release: Release, product_id: str | None, constraints: tuple[dict, ...]
) -> list[Step]:
    """Launch as the configured role: stale launch constraints replaced, the product added."""
    role_arn = writes.config.servicecatalog.launch_role_arn
    launch = [
        c
        for c in constraints
        if c["Type"] == "LAUNCH" and product_id is not None and c.get("ProductId") == product_id
    ]
    if any(c.get("Description") == launch_description(role_arn) for c in launch):
        return []
    steps = [
        Step(
            operation="servicecatalog:DeleteConstraint",
            why=f"replace launch constraint {stale['ConstraintId']} (other role)",
            run=partial(writes.delete_constraint, stale["ConstraintId"]),
        )
        for stale in launch
    ]
    return [
        *steps,
        Step(
            operation="servicecatalog:AssociateProductWithPortfolio",
            why="add the product to the portfolio",
            run=partial(writes.associate, release),
        ),
        Step(
            operation="servicecatalog:CreateConstraint",
            why=f"launch as {role_arn}",
            run=partial(writes.constrain, release, role_arn, uuid.uuid4().hex),
        ),
    ]


def _older_steps(
    writes: _Writes, release: Release, artifacts: list[dict], keep: str | None
) -> list[Step]:
    """Deprecate or deactivate every version but the published one, as configured."""
    policy = writes.config.servicecatalog.older_versions
    if policy == "keep-active":
        return []
    steps: list[Step] = []
    for artifact in artifacts:
        if artifact["Id"] == keep:
            continue
        if policy == "deprecate" and artifact.get("Guidance") == "DEPRECATED":
            continue
        if policy == "deactivate" and artifact.get("Active") is False:
            continue
        change = {"Guidance": "DEPRECATED"} if policy == "deprecate" else {"Active": False}
        steps.append(
            Step(
                operation="servicecatalog:UpdateProvisioningArtifact",
                why=f"{policy} {artifact.get('Name', artifact['Id'])}",
                run=partial(writes.update_artifact, release, artifact["Id"], change),
            )
        )
    return steps


def _product_plan(
    writes: _Writes,
    release: Release,
    product: dict | None,
    marker: Mapping | None,
    constraints: tuple[dict, ...],
    allow_unsafe: bool,
) -> Plan:
    config = writes.config
    product_id = _summary(product)["ProductId"] if product else None
    artifacts = _artifacts(writes.clients, config.servicecatalog, product)
    published = [(a, p) for a in artifacts if (p := _published(a)) is not None]
    decision, old = _decide(writes, release, [p for _, p in published])
    sha = release.service_catalog_sha256
    own = next((a for a, p in published if p.sha256 == sha and p.major == release.major), None)
    context = {_product(release): product_id} if product_id else {}
    steps: list[Step] = []
    if own is not None:
        context[_artifact(release)] = own["Id"]
        decision = versioning.Decision(
            change="none",
            version=own["Name"],
            reasons=(f"{own['Name']} has the same content",),
            previous=decision.previous,
        )
    else:
        if decision.previous is not None and not allow_unsafe:
            versioning.refuse_unsafe(
                release.name,
                decision.previous,
                old(decision.previous),
                release.service_catalog_template,
            )
        steps += _creation_steps(writes, release, product_id, decision)
    steps += _details_steps(writes, release, product)
    steps += _constraint_steps(writes, release, product_id, constraints)
    steps += _older_steps(writes, release, artifacts, own["Id"] if own else None)
    if not steps and _completed(config, release, product, marker):
        return Plan(
            channel=CHANNEL, subject=release.name, decision=decision, steps=(), context=context
        )
    if steps and marker is not None:
        # Until this run completes, its record no longer describes the product: a failure and
        # a revert of publish.yaml must not find the old record and skip the repair.
        steps.insert(0, _forget_step(writes, release))
    steps.append(
        Step(
            operation="s3:PutObject",
            why=f"record that this publication is complete ({marker_key(config, release)})",
            run=partial(writes.complete, release),
        )
    )
    return Plan(
        channel=CHANNEL,
        subject=release.name,
        decision=decision,
        steps=tuple(steps),
        context=context,
    )


# Upgrading


@dataclass(frozen=True, kw_only=True)
class Provisioned:
    """A provisioned product, as SearchProvisionedProducts lists it."""

    kind: ClassVar[str] = "provisioned product"
    service: ClassVar[None] = None
    id: str
    name: str
    template: str
    """The product's name, which is the template's."""
    product_id: str
    version: str
    """The provisioning artifact's name."""
    artifact_id: str


def provisioned_products(clients: Clients) -> list[Provisioned]:
    """Every provisioned product of this account (botocore has no paginator for the search)."""
    catalog = clients("servicecatalog")
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
            break
    return [
        Provisioned(
            id=item["Id"],
            name=item["Name"],
            template=item.get("ProductName", ""),
            product_id=item["ProductId"],
            version=item.get("ProvisioningArtifactName", ""),
            artifact_id=item["ProvisioningArtifactId"],
        )
        for page in pages
        for item in page["ProvisionedProducts"]
    ]


def _parameter_names(catalog: Any, product_id: str, artifact_id: str) -> set[str]:
    detail = catalog.describe_provisioning_artifact(
        ProductId=product_id,
        ProvisioningArtifactId=artifact_id,
        IncludeProvisioningArtifactParameters=True,
    )
    return {p["ParameterKey"] for p in detail.get("ProvisioningArtifactParameters", [])}


def update(clients: Clients, provisioned: Provisioned, artifact_id: str, waiting: Waiting) -> None:
    """Move a provisioned product to another version, every parameter the new version still has
    keeping its value ("use previous value"), and wait until Service Catalog says how it went."""
    catalog = clients("servicecatalog")
    kept = _parameter_names(catalog, provisioned.product_id, provisioned.artifact_id)
    kept &= _parameter_names(catalog, provisioned.product_id, artifact_id)
    record = catalog.update_provisioned_product(
        ProvisionedProductId=provisioned.id,
        ProductId=provisioned.product_id,
        ProvisioningArtifactId=artifact_id,
        ProvisioningParameters=[{"Key": k, "UsePreviousValue": True} for k in sorted(kept)],
        UpdateToken=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{provisioned.id}/{artifact_id}")),
    )["RecordDetail"]
    state = wait_until(
        lambda: catalog.describe_record(Id=record["RecordId"])["RecordDetail"],
        settled=lambda s: s["Status"] not in _RECORD_ACTIVE,
        channel=CHANNEL,
        what=provisioned.name,
        doing="updating",
        waiting=waiting,
    )
    if state["Status"] != _RECORD_DONE:
        errors = "; ".join(e.get("Description", "") for e in state.get("RecordErrors", []))
        raise ChannelError(CHANNEL, f"{provisioned.name}: update {state['Status']}: {errors}")
