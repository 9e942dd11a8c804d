"""Publishing a bundle to AWS Proton: upload, template, version, registration, publish.

State is read from Proton, never remembered locally: each version's description carries the
archive's sha256, so a rerun recognises its own version in any state and finishes it (publishes
a draft, waits for a registration in progress, replaces a failed one) instead of creating a
duplicate. The archive's S3 key is its hash, so the published bundle stays readable for the next
version's compatibility and upgrade-safety checks.
"""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from collections.abc import Mapping

import botocore.exceptions

from mlflow_platform import yaml_io
from mlflow_platform.aws import ChannelError, Clients
from mlflow_platform.releasing import versioning
from mlflow_platform.releasing.config import PublishConfig
from mlflow_platform.releasing.plan import Plan, Progress, Step, published_reader, wait_until
from mlflow_platform.releasing.release import Release, proton_inputs

CHANNEL = "proton"
CUSTOMER_MANAGED = "CUSTOMER_MANAGED"
"""A service bundle without `pipeline_infrastructure/` needs this when its template is created,
and Proton cannot change it afterwards (AWS Proton User Guide, "Register and publish templates";
botocore's UpdateServiceTemplate has no such parameter)."""
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
_USABLE = "PUBLISHED"


def _ops(kind: str) -> Mapping[str, str]:
    return {
        "list": f"list_{kind}_template_versions",
        "get": f"get_{kind}_template_version",
        "create_template": f"create_{kind}_template",
        "create_version": f"create_{kind}_template_version",
        "update_version": f"update_{kind}_template_version",
        "delete_version": f"delete_{kind}_template_version",
    }


def _title(op: str) -> str:
    return "proton:" + "".join(part.title() for part in op.split("_"))


def archive_key(config: PublishConfig, release: Release, sha256: str) -> str:
    return config.key("proton", release.name, f"{sha256}.tar.gz")


def _versions(clients: Clients, release: Release) -> list[dict] | None:
    """Every version of the template, or None when the template does not exist."""
    proton = clients("proton")
    pages = proton.get_paginator(_ops(release.kind)["list"]).paginate(templateName=release.name)
    try:
        return [v for page in pages for v in page["templateVersions"]]
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def _check_pipeline_setting(clients: Clients, release: Release) -> None:
    """Refuse, before anything is uploaded, a service template no version of ours can join."""
    if release.kind != "service":
        return
    template = clients("proton").get_service_template(name=release.name)["serviceTemplate"]
    if template.get("pipelineProvisioning") == CUSTOMER_MANAGED:
        return
    raise ChannelError(
        CHANNEL,
        f"service template {release.name} exists without pipelineProvisioning "
        f"{CUSTOMER_MANAGED}: its bundles have no pipeline, so Proton would refuse every "
        "version, and the setting cannot be changed once a template exists. Delete the "
        f"template (`aws proton delete-service-template --name {release.name}`, after deleting "
        "its versions) and run `invoke publish` again; Service Catalog is not affected",
    )


def _published(summary: Mapping) -> versioning.Published:
    found = _HASH.search(summary.get("description", ""))
    return versioning.Published(
        major=int(summary["majorVersion"]),
        minor=int(summary["minorVersion"]),
        sha256=found.group(1) if found else None,
        usable=summary["status"] == _USABLE,
    )


def _bundle_files(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def plan(
    clients: Clients,
    config: PublishConfig,
    release: Release,
    *,
    allow_unsafe: bool = False,
    poll_seconds: float = 10.0,
    timeout_seconds: float = 900.0,
    progress: Progress = lambda _: None,
) -> Plan:
    ops = _ops(release.kind)
    sha = release.proton_sha256
    summaries = _versions(clients, release)
    published = [_published(s) for s in summaries or []]
    previous = published_reader(
        clients,
        config,
        channel=CHANNEL,
        name=release.name,
        key=lambda sha: archive_key(config, release, sha),
        parse=_bundle_files,
    )

    decision = versioning.decide(
        name=release.name,
        local_major=release.major,
        sha256=sha,
        published=published,
        compatibility=lambda p: versioning.schema_compatibility(
            proton_inputs(previous(p), release.kind), proton_inputs(release.files, release.kind)
        ),
    )
    if decision.change == "none":
        return Plan(channel=CHANNEL, subject=release.name, decision=decision, steps=())
    if decision.previous is not None and not allow_unsafe:
        old = yaml_io.load(previous(decision.previous)[release.infrastructure_file])
        new = yaml_io.load(release.files[release.infrastructure_file])
        unsafe = versioning.unsafe_changes(old, new)
        if unsafe:
            raise versioning.VersionError(
                f"{release.name}: upgrading from {decision.previous.label} would lose data:\n"
                + "\n".join(f"  {u}" for u in unsafe)
                + "\nchange the template, or pass --allow-unsafe if this is intended"
            )
    own = [
        (s, p)
        for s, p in zip(summaries or [], published, strict=True)
        if p.sha256 == sha and p.major == release.major and not p.usable
    ]
    proton = clients("proton")
    steps: list[Step] = []
    key = archive_key(config, release, sha)

    def version_ref(ctx: dict[str, str]) -> dict[str, str]:
        major, minor = ctx["version"].split(".")
        return {"templateName": release.name, "majorVersion": major, "minorVersion": minor}

    def wait(ctx: dict[str, str]) -> None:
        version = wait_until(
            lambda: getattr(proton, ops["get"])(**version_ref(ctx))[
                f"{release.kind}TemplateVersion"
            ],
            settled=lambda v: v["status"] != "REGISTRATION_IN_PROGRESS",
            channel=CHANNEL,
            what=f"{release.name} {ctx['version']}",
            doing="registering",
            progress=progress,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            again="run `invoke publish` again to keep waiting",
        )
        status = version["status"]
        if status == "REGISTRATION_FAILED":
            getattr(proton, ops["delete_version"])(**version_ref(ctx))
            raise ChannelError(
                CHANNEL,
                f"{release.name} {ctx['version']}: registration failed: "
                f"{version.get('statusMessage', 'no message')}. The failed version was deleted",
            )

    def publish(ctx: dict[str, str]) -> None:
        getattr(proton, ops["update_version"])(status=_USABLE, **version_ref(ctx))

    # Makes the SDK's retries safe. One per plan, not derived from the content: after a failed
    # registration is deleted, the same content must register anew, not replay the old answer.
    token = uuid.uuid4().hex

    def create(ctx: dict[str, str]) -> None:
        request: dict[str, object] = {
            "templateName": release.name,
            "description": f"{release.name} {decision.version} sha256:{sha}",
            "source": {"s3": {"bucket": config.bucket, "key": key}},
            "clientToken": token,
        }
        if decision.change == "minor":
            request["majorVersion"] = str(release.major)
        if release.kind == "service":
            request["compatibleEnvironmentTemplates"] = [
                {"templateName": t, "majorVersion": str(m)}
                for t, m in release.compatible_environments
            ]
        created = getattr(proton, ops["create_version"])(**request)
        version = created[f"{release.kind}TemplateVersion"]
        ctx["version"] = f"{version['majorVersion']}.{version['minorVersion']}"

    def upload(ctx: dict[str, str]) -> None:
        clients("s3").put_object(
            Bucket=config.bucket, Key=key, Body=release.archive, ContentType="application/gzip"
        )

    def create_template(ctx: dict[str, str]) -> None:
        request = {
            "name": release.name,
            "displayName": release.name,
            "description": f"MLflow platform: {release.name}",
        }
        if release.kind == "service":
            request["pipelineProvisioning"] = CUSTOMER_MANAGED
        getattr(proton, ops["create_template"])(**request)

    if own and own[0][0]["status"] == "DRAFT":
        steps.append(
            Step(
                operation=_title(ops["update_version"]),
                why="publish the draft an earlier run registered",
                run=publish,
            )
        )
    elif own and own[0][0]["status"] == "REGISTRATION_IN_PROGRESS":
        steps += [
            Step(operation=_title(ops["get"]), why="wait for registration", run=wait),
            Step(operation=_title(ops["update_version"]), why="publish", run=publish),
        ]
    else:
        if own:  # a failed registration an interrupted run left behind
            failed = own[0][0]

            def delete_failed(ctx: dict[str, str], failed: Mapping = failed) -> None:
                getattr(proton, ops["delete_version"])(
                    templateName=release.name,
                    majorVersion=failed["majorVersion"],
                    minorVersion=failed["minorVersion"],
                )

            steps.append(
                Step(
                    operation=_title(ops["delete_version"]),
                    why=f"remove the failed {failed['majorVersion']}.{failed['minorVersion']}",
                    run=delete_failed,
                )
            )
        if summaries is not None:
            _check_pipeline_setting(clients, release)
        steps.append(
            Step(operation="s3:PutObject", why=f"upload s3://{config.bucket}/{key}", run=upload)
        )
        if summaries is None:
            steps.append(
                Step(
                    operation=_title(ops["create_template"]),
                    why="the template does not exist yet",
                    run=create_template,
                )
            )
        steps += [
            Step(
                operation=_title(ops["create_version"]),
                why=f"{decision.change} version {decision.version}",
                run=create,
            ),
            Step(operation=_title(ops["get"]), why="wait for registration", run=wait),
            Step(operation=_title(ops["update_version"]), why="publish", run=publish),
        ]
    context: dict[str, str] = {}
    if own and own[0][0]["status"] != "REGISTRATION_FAILED":
        context["version"] = f"{own[0][0]['majorVersion']}.{own[0][0]['minorVersion']}"
        decision = versioning.Decision(
            change=decision.change,
            version=context["version"],
            reasons=(*decision.reasons, "an earlier run created it; finishing that run"),
            previous=decision.previous,
        )
    return Plan(
        channel=CHANNEL,
        subject=release.name,
        decision=decision,
        steps=tuple(steps),
        context=context,
    )
