"""Publishing templates as AWS Service Catalog products in one portfolio.

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
from collections.abc import Mapping

import botocore.exceptions

from mlflow_platform import yaml_io
from mlflow_platform.aws import ChannelError, Clients
from mlflow_platform.releasing import versioning
from mlflow_platform.releasing.config import PublishConfig
from mlflow_platform.releasing.plan import Plan, Step, published_reader
from mlflow_platform.releasing.release import Release, service_catalog_inputs

CHANNEL = "servicecatalog"
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
_VERSION = re.compile(r"^([1-9][0-9]*)\.([0-9]+)$")
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


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:64]


def template_key(config: PublishConfig, release: Release, sha256: str) -> str:
    return config.key("servicecatalog", release.name, f"{sha256}.yaml")


def template_url(clients: Clients, config: PublishConfig, key: str) -> str:
    """Where Service Catalog fetches the template: the S3 client's own endpoint and region."""
    s3 = clients("s3")
    endpoint = s3.meta.endpoint_url.rstrip("/")
    if endpoint.endswith(".amazonaws.com"):
        return f"https://{config.bucket}.s3.{s3.meta.region_name}.amazonaws.com/{key}"
    return f"{endpoint}/{config.bucket}/{key}"


def _pages(client, operation: str, key: str, **kwargs) -> list[dict]:
    return [
        item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]
    ]


def _published(artifact: Mapping) -> versioning.Published | None:
    version = _VERSION.match(artifact.get("Name", ""))
    if version is None:
        return None  # added by hand: not one of ours, not a version to compare against
    found = _HASH.search(artifact.get("Description", ""))
    return versioning.Published(
        major=int(version.group(1)),
        minor=int(version.group(2)),
        sha256=found.group(1) if found else None,
        usable=artifact.get("Active", True) is not False,
    )


def _portfolio_steps(
    clients: Clients, config: PublishConfig, portfolio: Mapping | None, principals: set[str]
) -> list[Step]:
    catalog = clients("servicecatalog")
    settings = config.servicecatalog
    steps: list[Step] = []
    if portfolio is None:
        token = uuid.uuid4().hex

        def create(ctx: dict[str, str]) -> None:
            created = catalog.create_portfolio(
                DisplayName=settings.portfolio,
                ProviderName=settings.provider,
                Description="Self-service MLflow: the shared platform and a team's SageMaker API",
                IdempotencyToken=token,
            )
            ctx["portfolio"] = created["PortfolioDetail"]["Id"]

        steps.append(
            Step(
                operation="servicecatalog:CreatePortfolio",
                why=f"portfolio {settings.portfolio!r} does not exist",
                run=create,
            )
        )
    # publish.yaml's principals are the portfolio's: missing ones get access, others lose it.
    changes = [
        ("AssociatePrincipalWithPortfolio", arn, f"give {arn} access")
        for arn in settings.principals
        if arn not in principals
    ] + [
        ("DisassociatePrincipalFromPortfolio", arn, f"remove {arn}'s access: not in publish.yaml")
        for arn in sorted(principals - set(settings.principals))
    ]
    for operation, arn, why in changes:
        call = getattr(catalog, _SNAKE.sub("_", operation).lower())

        def change(ctx: dict[str, str], call=call, arn: str = arn) -> None:
            call(PortfolioId=ctx["portfolio"], PrincipalARN=arn, PrincipalType="IAM")

        steps.append(Step(operation=f"servicecatalog:{operation}", why=why, run=change))
    return steps


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


def marker_key(config: PublishConfig, release: Release) -> str:
    return config.key("servicecatalog", release.name, MARKER_FILE)


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


def _forget_step(clients: Clients, config: PublishConfig, release: Release) -> Step:
    key = marker_key(config, release)

    def forget(ctx: dict[str, str]) -> None:
        clients("s3").delete_object(Bucket=config.bucket, Key=key)

    return Step(
        operation="s3:DeleteObject",
        why=f"forget the record of the last publication ({key}) until this one completes",
        run=forget,
    )


def _summary(product: Mapping) -> Mapping:
    return product["ProductViewDetail"]["ProductViewSummary"]


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
    catalog = clients("servicecatalog")
    settings = config.servicecatalog
    products = {release.name: _product(clients, release.name) for release in releases}
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
        portfolio_plan = Plan(
            channel=CHANNEL, subject=f"portfolio {settings.portfolio}", decision=None, steps=()
        )
        return [portfolio_plan, *(plan for plan in done if plan)]
    portfolios = [
        p
        for p in _pages(catalog, "list_portfolios", "PortfolioDetails")
        if p["DisplayName"] == settings.portfolio
    ]
    if len(portfolios) > 1:
        raise ChannelError(
            CHANNEL,
            f"{len(portfolios)} portfolios are named {settings.portfolio!r}: "
            "keep one, or name another in publish.yaml",
        )
    portfolio = portfolios[0] if portfolios else None
    principals: set[str] = set()
    constraints: list[dict] = []
    if portfolio is not None:
        # Every principal: one that publish.yaml no longer names loses access.
        principals = {
            p["PrincipalARN"]
            for p in _pages(
                catalog, "list_principals_for_portfolio", "Principals", PortfolioId=portfolio["Id"]
            )
        }
        constraints = _pages(
            catalog,
            "list_constraints_for_portfolio",
            "ConstraintDetails",
            PortfolioId=portfolio["Id"],
        )
    context = {"portfolio": portfolio["Id"]} if portfolio else {}
    portfolio_steps = _portfolio_steps(clients, config, portfolio, principals)
    if portfolio_steps:
        recorded = [r for r in releases if markers[r.name] is not None]
        portfolio_steps[:0] = [_forget_step(clients, config, r) for r in recorded]
    result = [
        Plan(
            channel=CHANNEL,
            subject=f"portfolio {settings.portfolio}",
            decision=None,
            steps=tuple(portfolio_steps),
            context=context,
        )
    ]
    for release, plan in zip(releases, done, strict=True):
        result.append(
            plan
            or _product_plan(
                clients,
                config,
                release,
                products[release.name],
                # Forgotten already, with every other record, when the portfolio changes.
                None if portfolio_steps else markers[release.name],
                constraints,
                allow_unsafe,
            )
        )
    return result


def _product(clients: Clients, name: str) -> dict | None:
    try:
        return clients("servicecatalog").describe_product_as_admin(Name=name)
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def _product_plan(
    clients: Clients,
    config: PublishConfig,
    release: Release,
    product: dict | None,
    marker: Mapping | None,
    constraints: list[dict],
    allow_unsafe: bool,
) -> Plan:
    catalog = clients("servicecatalog")
    settings = config.servicecatalog
    sha = release.service_catalog_sha256
    product_id = (
        product["ProductViewDetail"]["ProductViewSummary"]["ProductId"] if product else None
    )
    summaries: list[dict] = product.get("ProvisioningArtifactSummaries", []) if product else []
    if product_id and settings.older_versions != "keep-active":
        summaries = catalog.list_provisioning_artifacts(ProductId=product_id)[
            "ProvisioningArtifactDetails"
        ]
    published = [(s, p) for s in summaries if (p := _published(s)) is not None]
    old = published_reader(
        clients,
        config,
        channel=CHANNEL,
        name=release.name,
        key=lambda sha: template_key(config, release, sha),
        parse=yaml_io.load,
    )

    decision = versioning.decide(
        name=release.name,
        local_major=release.major,
        sha256=sha,
        published=[p for _, p in published],
        compatibility=lambda p: versioning.schema_compatibility(
            service_catalog_inputs(old(p), release.kind),
            service_catalog_inputs(release.service_catalog_template, release.kind),
        ),
    )
    own = [s for s, p in published if p.sha256 == sha and p.major == release.major]
    if own:
        decision = versioning.Decision(
            change="none",
            version=own[0]["Name"],
            reasons=(f"{own[0]['Name']} has the same content",),
            previous=decision.previous,
        )
    elif decision.previous is not None and not allow_unsafe:
        unsafe = versioning.unsafe_changes(old(decision.previous), release.service_catalog_template)
        if unsafe:
            raise versioning.VersionError(
                f"{release.name}: upgrading from {decision.previous.label} would lose data:\n"
                + "\n".join(f"  {u}" for u in unsafe)
                + "\nchange the template, or pass --allow-unsafe if this is intended"
            )
    key = template_key(config, release, sha)
    details = product_details(config, release)
    artifact = {
        "Name": decision.version,
        "Description": f"{release.name} {decision.version} sha256:{sha}",
        "Info": {"LoadTemplateFromURL": template_url(clients, config, key)},
        "Type": _TYPE,
    }
    steps: list[Step] = []
    context: dict[str, str] = {}
    if product_id:
        context[f"product:{release.name}"] = product_id
    if own:
        context[f"artifact:{release.name}"] = own[0]["Id"]
    else:

        def upload(ctx: dict[str, str]) -> None:
            clients("s3").put_object(
                Bucket=config.bucket,
                Key=key,
                Body=release.service_catalog.encode(),
                ContentType="application/x-yaml",
            )

        steps.append(
            Step(operation="s3:PutObject", why=f"upload s3://{config.bucket}/{key}", run=upload)
        )
        token = uuid.uuid4().hex
        if product_id is None:

            def create_product(ctx: dict[str, str]) -> None:
                created = catalog.create_product(
                    Name=release.name,
                    ProductType=_TYPE,
                    ProvisioningArtifactParameters=artifact,
                    IdempotencyToken=token,
                    **{_DETAILS[k]: v for k, v in details.items() if v},  # type: ignore[arg-type]
                )
                ctx[f"product:{release.name}"] = created["ProductViewDetail"]["ProductViewSummary"][
                    "ProductId"
                ]
                ctx[f"artifact:{release.name}"] = created["ProvisioningArtifactDetail"]["Id"]

            steps.append(
                Step(
                    operation="servicecatalog:CreateProduct",
                    why=f"new product, version {decision.version}",
                    run=create_product,
                )
            )
        else:

            def create_artifact(ctx: dict[str, str]) -> None:
                created = catalog.create_provisioning_artifact(
                    ProductId=ctx[f"product:{release.name}"],
                    Parameters=artifact,
                    IdempotencyToken=token,
                )
                ctx[f"artifact:{release.name}"] = created["ProvisioningArtifactDetail"]["Id"]

            steps.append(
                Step(
                    operation="servicecatalog:CreateProvisioningArtifact",
                    why=f"{decision.change} version {decision.version}",
                    run=create_artifact,
                )
            )
    if product is not None:
        shown = _summary(product)
        changed = {k: v for k, v in details.items() if shown.get(k, "") != v}
        if changed:

            def update_details(ctx: dict[str, str], changed: dict = changed) -> None:
                catalog.update_product(
                    Id=ctx[f"product:{release.name}"],
                    **{_DETAILS[k]: v for k, v in changed.items()},
                )

            steps.append(
                Step(
                    operation="servicecatalog:UpdateProduct",
                    why=f"set what the console shows: {', '.join(sorted(changed))}",
                    run=update_details,
                )
            )
    steps += _constraint_steps(catalog, settings.launch_role_arn, release, product_id, constraints)
    steps += _older_steps(catalog, settings.older_versions, release, summaries, own)
    state = state_marker(config, release)
    if not steps and _completed(config, release, product, marker):
        return Plan(
            channel=CHANNEL, subject=release.name, decision=decision, steps=(), context=context
        )
    if steps and marker is not None:
        # Until this run completes, its record no longer describes the product: a failure and
        # a revert of publish.yaml must not find the old record and skip the repair.
        steps.insert(0, _forget_step(clients, config, release))

    def complete(ctx: dict[str, str]) -> None:
        record = {
            "state": state,
            "product": ctx[f"product:{release.name}"],
            "artifact": ctx[f"artifact:{release.name}"],
        }
        clients("s3").put_object(
            Bucket=config.bucket,
            Key=marker_key(config, release),
            Body=json.dumps(record, sort_keys=True).encode(),
            ContentType="application/json",
        )

    steps.append(
        Step(
            operation="s3:PutObject",
            why=f"record that this publication is complete ({marker_key(config, release)})",
            run=complete,
        )
    )
    return Plan(
        channel=CHANNEL,
        subject=release.name,
        decision=decision,
        steps=tuple(steps),
        context=context,
    )


def launch_description(role_arn: str) -> str:
    return f"Launch as {role_arn}"


def _constraint_steps(
    catalog,
    role_arn: str,
    release: Release,
    product_id: str | None,
    constraints: list[dict],
) -> list[Step]:
    launch = [
        c
        for c in constraints
        if c["Type"] == "LAUNCH" and product_id is not None and c.get("ProductId") == product_id
    ]
    wanted = launch_description(role_arn)
    if any(c.get("Description") == wanted for c in launch):
        return []
    steps: list[Step] = []
    for stale in launch:

        def delete(ctx: dict[str, str], stale: Mapping = stale) -> None:
            catalog.delete_constraint(Id=stale["ConstraintId"])

        steps.append(
            Step(
                operation="servicecatalog:DeleteConstraint",
                why=f"replace launch constraint {stale['ConstraintId']} (other role)",
                run=delete,
            )
        )

    def associate(ctx: dict[str, str]) -> None:
        catalog.associate_product_with_portfolio(
            ProductId=ctx[f"product:{release.name}"], PortfolioId=ctx["portfolio"]
        )

    token = uuid.uuid4().hex

    def constrain(ctx: dict[str, str]) -> None:
        catalog.create_constraint(
            PortfolioId=ctx["portfolio"],
            ProductId=ctx[f"product:{release.name}"],
            Type="LAUNCH",
            Parameters=json.dumps({"RoleArn": role_arn}),
            Description=wanted,
            IdempotencyToken=token,
        )

    steps += [
        Step(
            operation="servicecatalog:AssociateProductWithPortfolio",
            why="add the product to the portfolio",
            run=associate,
        ),
        Step(
            operation="servicecatalog:CreateConstraint", why=f"launch as {role_arn}", run=constrain
        ),
    ]
    return steps


def _older_steps(
    catalog,
    policy: str,
    release: Release,
    summaries: list[dict],
    own: list[dict],
) -> list[Step]:
    if policy == "keep-active":
        return []
    steps: list[Step] = []
    keep = own[0]["Id"] if own else None
    for artifact in summaries:
        if artifact["Id"] == keep:
            continue
        if policy == "deprecate" and artifact.get("Guidance") == "DEPRECATED":
            continue
        if policy == "deactivate" and artifact.get("Active") is False:
            continue
        change = {"Guidance": "DEPRECATED"} if policy == "deprecate" else {"Active": False}

        def update(
            ctx: dict[str, str], artifact: Mapping = artifact, change: dict = change
        ) -> None:
            catalog.update_provisioning_artifact(
                ProductId=ctx[f"product:{release.name}"],
                ProvisioningArtifactId=artifact["Id"],
                **change,
            )

        steps.append(
            Step(
                operation="servicecatalog:UpdateProvisioningArtifact",
                why=f"{policy} {artifact.get('Name', artifact['Id'])}",
                run=update,
            )
        )
    return steps
