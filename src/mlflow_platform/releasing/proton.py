"""AWS Proton, the one place that reads and writes it: template versions for publishing,
environments and service instances for upgrading.

Publishing: upload, template, version, registration, publish. State is read from Proton, never
remembered locally: each version's description carries the archive's sha256, so a rerun
recognises its own version in any state and finishes it (publishes a draft, waits for a
registration in progress, replaces a failed one) instead of creating a duplicate. The archive's
S3 key is its hash, so the published bundle stays readable for the next version's compatibility
and upgrade-safety checks.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import botocore.exceptions

from mlflow_platform.aws import ChannelError, Clients
from mlflow_platform.releasing import versioning
from mlflow_platform.releasing.config import PublishConfig
from mlflow_platform.releasing.plan import (
    Plan,
    Progress,
    Run,
    Step,
    Waiting,
    published_reader,
    wait_until,
)
from mlflow_platform.releasing.release import Release, document, proton_inputs

CHANNEL = "proton"
CUSTOMER_MANAGED = "CUSTOMER_MANAGED"
"""A service bundle without `pipeline_infrastructure/` needs this when its template is created,
and Proton cannot change it afterwards (AWS Proton User Guide, "Register and publish templates";
botocore's UpdateServiceTemplate has no such parameter)."""
# Template version statuses (botocore's proton model, TemplateVersionStatus).
PUBLISHED = "PUBLISHED"
DRAFT = "DRAFT"
REGISTERING = "REGISTRATION_IN_PROGRESS"
REGISTRATION_FAILED = "REGISTRATION_FAILED"
# Deployment statuses (botocore's proton model, DeploymentStatus).
DEPLOYING = ("IN_PROGRESS",)
DEPLOYED = "SUCCEEDED"
# Where deployments are listed: operation, result key, what the operator calls them.
_DEPLOYMENTS = (
    ("list_environments", "environments", "environment"),
    ("list_service_instances", "serviceInstances", "service instance"),
)


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


def _label(version: Mapping) -> str:
    return f"{version['majorVersion']}.{version['minorVersion']}"


def archive_key(config: PublishConfig, release: Release, sha256: str) -> str:
    return config.key(CHANNEL, release.name, f"{sha256}.tar.gz")


# Reading


def versions(clients: Clients, name: str, kind: str) -> list[dict] | None:
    """Every version of the template, or None when the template does not exist."""
    pages = clients("proton").get_paginator(_ops(kind)["list"]).paginate(templateName=name)
    try:
        return [v for page in pages for v in page["templateVersions"]]
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def published_labels(clients: Clients, name: str, kind: str) -> list[str]:
    """The versions deployments can move to; none when the template does not exist."""
    return [_label(v) for v in versions(clients, name, kind) or [] if v["status"] == PUBLISHED]


def _published(summary: Mapping) -> versioning.Published:
    return versioning.Published(
        major=int(summary["majorVersion"]),
        minor=int(summary["minorVersion"]),
        sha256=versioning.described_sha256(summary.get("description", "")),
        usable=summary["status"] == PUBLISHED,
    )


def _bundle_files(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


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


# Publishing


@dataclass(frozen=True, kw_only=True)
class _Calls:
    """The writes of one template's publication; each method is the body of one step."""

    clients: Clients
    config: PublishConfig
    release: Release
    decision: versioning.Decision
    waiting: Waiting
    token: str
    """Makes the SDK's retries safe. One per plan, not derived from the content: after a failed
    registration is deleted, the same content must register anew, not replay the old answer."""

    def call(self, op: str, **request: object) -> dict:
        return getattr(self.clients("proton"), _ops(self.release.kind)[op])(**request)

    def step(self, op: str, why: str, run: Run) -> Step:
        return Step(operation=_title(_ops(self.release.kind)[op]), why=why, run=run)

    @property
    def key(self) -> str:
        return archive_key(self.config, self.release, self.release.proton_sha256)

    def ref(self, ctx: dict[str, str]) -> dict[str, str]:
        major, minor = ctx["version"].split(".")
        return {"templateName": self.release.name, "majorVersion": major, "minorVersion": minor}

    def upload(self, ctx: dict[str, str]) -> None:
        self.clients("s3").put_object(
            Bucket=self.config.bucket,
            Key=self.key,
            Body=self.release.archive,
            ContentType="application/gzip",
        )

    def create_template(self, ctx: dict[str, str]) -> None:
        name = self.release.name
        request = {"name": name, "displayName": name, "description": f"MLflow platform: {name}"}
        if self.release.kind == "service":
            request["pipelineProvisioning"] = CUSTOMER_MANAGED
        self.call("create_template", **request)

    def create_version(self, ctx: dict[str, str]) -> None:
        release, decision = self.release, self.decision
        request: dict[str, object] = {
            "templateName": release.name,
            "description": versioning.description(
                release.name, decision.version, release.proton_sha256
            ),
            "source": {"s3": {"bucket": self.config.bucket, "key": self.key}},
            "clientToken": self.token,
        }
        if decision.change == "minor":
            request["majorVersion"] = str(release.major)
        if release.kind == "service":
            request["compatibleEnvironmentTemplates"] = [
                {"templateName": t, "majorVersion": str(m)}
                for t, m in release.compatible_environments
            ]
        created = self.call("create_version", **request)
        ctx["version"] = _label(created[f"{release.kind}TemplateVersion"])

    def wait(self, ctx: dict[str, str]) -> None:
        version = wait_until(
            lambda: self.call("get", **self.ref(ctx))[f"{self.release.kind}TemplateVersion"],
            settled=lambda v: v["status"] != REGISTERING,
            channel=CHANNEL,
            what=f"{self.release.name} {ctx['version']}",
            doing="registering",
            waiting=self.waiting,
        )
        if version["status"] == REGISTRATION_FAILED:
            self.call("delete_version", **self.ref(ctx))
            raise ChannelError(
                CHANNEL,
                f"{self.release.name} {ctx['version']}: registration failed: "
                f"{version.get('statusMessage', 'no message')}. The failed version was deleted",
            )

    def publish(self, ctx: dict[str, str]) -> None:
        self.call("update_version", status=PUBLISHED, **self.ref(ctx))

    def delete(self, version: Mapping, ctx: dict[str, str]) -> None:
        self.call(
            "delete_version",
            templateName=self.release.name,
            majorVersion=version["majorVersion"],
            minorVersion=version["minorVersion"],
        )


def _decide(
    release: Release,
    published: list[versioning.Published],
    previous_files: Callable[[versioning.Published], dict[str, str]],
) -> versioning.Decision:
    return versioning.decide(
        name=release.name,
        local_major=release.major,
        sha256=release.proton_sha256,
        published=published,
        compatibility=lambda p: versioning.schema_compatibility(
            proton_inputs(previous_files(p), release.kind),
            proton_inputs(release.files, release.kind),
        ),
    )


def _own(release: Release, summaries: list[dict]) -> dict | None:
    """A version of this content that an earlier run created and did not publish."""
    for summary in summaries:
        found = _published(summary)
        if (
            found.sha256 == release.proton_sha256
            and found.major == release.major
            and not found.usable
        ):
            return summary
    return None


def _finishing(calls: _Calls, own: Mapping) -> Plan:
    """Finish what an earlier run started: wait for its registration, publish its draft."""
    if own["status"] == DRAFT:
        steps = [
            calls.step(
                "update_version", "publish the draft an earlier run registered", calls.publish
            )
        ]
    else:
        steps = [
            calls.step("get", "wait for registration", calls.wait),
            calls.step("update_version", "publish", calls.publish),
        ]
    decision = calls.decision
    finishing = versioning.Decision(
        change=decision.change,
        version=_label(own),
        reasons=(*decision.reasons, "an earlier run created it; finishing that run"),
        previous=decision.previous,
    )
    return Plan(
        channel=CHANNEL,
        subject=calls.release.name,
        decision=finishing,
        steps=tuple(steps),
        context={"version": finishing.version},
    )


def _registering(calls: _Calls, failed: Mapping | None, exists: bool) -> list[Step]:
    """Upload, the template when it is missing, a new version, its registration, publish."""
    steps = []
    if failed is not None:  # a failed registration an interrupted run left behind
        steps.append(
            calls.step(
                "delete_version",
                f"remove the failed {_label(failed)}",
                partial(calls.delete, failed),
            )
        )
    if exists:
        _check_pipeline_setting(calls.clients, calls.release)
    upload = f"upload s3://{calls.config.bucket}/{calls.key}"
    steps.append(Step(operation="s3:PutObject", why=upload, run=calls.upload))
    if not exists:
        steps.append(
            calls.step("create_template", "the template does not exist yet", calls.create_template)
        )
    decision = calls.decision
    return [
        *steps,
        calls.step(
            "create_version", f"{decision.change} version {decision.version}", calls.create_version
        ),
        calls.step("get", "wait for registration", calls.wait),
        calls.step("update_version", "publish", calls.publish),
    ]


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
    summaries = versions(clients, release.name, release.kind)
    previous_files = published_reader(
        clients,
        config,
        channel=CHANNEL,
        name=release.name,
        key=lambda sha: archive_key(config, release, sha),
        parse=_bundle_files,
    )
    decision = _decide(release, [_published(s) for s in summaries or []], previous_files)
    if decision.change == "none":
        return Plan(channel=CHANNEL, subject=release.name, decision=decision, steps=())
    if decision.previous is not None and not allow_unsafe:
        infrastructure = release.infrastructure_file
        versioning.refuse_unsafe(
            release.name,
            decision.previous,
            document(previous_files(decision.previous)[infrastructure]),
            document(release.files[infrastructure]),
        )
    calls = _Calls(
        clients=clients,
        config=config,
        release=release,
        decision=decision,
        waiting=Waiting(
            progress=progress,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            again="run `invoke publish` again to keep waiting",
        ),
        token=uuid.uuid4().hex,
    )
    own = _own(release, summaries or [])
    if own is not None and own["status"] != REGISTRATION_FAILED:
        return _finishing(calls, own)
    steps = _registering(calls, own, exists=summaries is not None)
    return Plan(channel=CHANNEL, subject=release.name, decision=decision, steps=tuple(steps))


# Upgrading


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """An environment or service instance, as Proton lists it."""

    kind: str
    """environment or service instance."""
    name: str
    service: str | None
    template: str
    version: str


def deployments(clients: Clients, templates: Collection[str]) -> list[Deployment]:
    """Every environment and service instance made from one of these templates."""
    proton = clients("proton")
    found = []
    for operation, key, kind in _DEPLOYMENTS:
        for page in proton.get_paginator(operation).paginate():
            found += [
                Deployment(
                    kind=kind,
                    name=item["name"],
                    service=item.get("serviceName"),
                    template=item["templateName"],
                    version=f"{item['templateMajorVersion']}.{item['templateMinorVersion']}",
                )
                for item in page[key]
                if item["templateName"] in templates
            ]
    return found


def _state(proton: Any, deployment: Deployment) -> dict:
    if deployment.kind == "environment":
        return proton.get_environment(name=deployment.name)["environment"]
    return proton.get_service_instance(name=deployment.name, serviceName=deployment.service or "")[
        "serviceInstance"
    ]


def deploy(clients: Clients, deployment: Deployment, target: str, waiting: Waiting) -> None:
    """Move a deployment to `target` and wait until Proton says how that went."""
    proton = clients("proton")
    major, minor = target.split(".")
    moving = deployment.version.split(".")[0] != major
    version = {
        "deploymentType": "MAJOR_VERSION" if moving else "MINOR_VERSION",
        "templateMajorVersion": major,
        "templateMinorVersion": minor,
    }
    if deployment.kind == "environment":
        proton.update_environment(name=deployment.name, **version)
    else:
        proton.update_service_instance(
            name=deployment.name, serviceName=deployment.service or "", **version
        )
    state = wait_until(
        partial(_state, proton, deployment),
        settled=lambda s: s["deploymentStatus"] not in DEPLOYING,
        channel=CHANNEL,
        what=f"{deployment.kind} {deployment.name}",
        doing="deploying",
        waiting=waiting,
    )
    if state["deploymentStatus"] != DEPLOYED:
        raise ChannelError(
            CHANNEL,
            f"{deployment.kind} {deployment.name}: deployment {state['deploymentStatus']}: "
            f"{state.get('deploymentStatusMessage', 'no message')}",
        )
