"""What the publishing tests share: the names they publish under and the trees they publish."""

from __future__ import annotations

import copy
import socket

from aws_fake import FakeAws, http_response

from mlflow_platform import aws
from mlflow_platform.building import bundle
from mlflow_platform.releasing.publish import publish, releases
from mlflow_platform.templates import TEMPLATES

BUCKET = "platform-bundles"
ROLE = "arn:aws:iam::123456789012:role/ServiceCatalogLaunch"
TEAM = "arn:aws:iam::123456789012:role/DataScience"
ENVIRONMENT, SERVICE = (name for name, _ in TEMPLATES)
DB_CLUSTER = "DatabaseClusterC6094C50"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bucket_exists(s3) -> bool:
    return BUCKET in [b["Name"] for b in s3.list_buckets()["Buckets"]]


class World:
    """A fresh set of clients over the same fake services, as a new `invoke publish` process."""

    def __init__(self, fake: FakeAws) -> None:
        self.fake = fake
        self.failed_uploads = 0
        """Uploads (S3 PutObject) still to fail, as S3 answers an internal error."""

    def clients(self) -> aws.Clients:
        clients = aws.Clients(aws.session())
        self.fake.attach(clients("proton"))
        self.fake.attach(clients("servicecatalog"))
        clients("s3").meta.events.register_first("before-call.s3.PutObject", self._upload)
        return clients

    def _upload(self, **_):
        if self.failed_uploads <= 0:
            return None
        self.failed_uploads -= 1
        error = {"Code": "InternalError", "Message": "We encountered an internal error."}
        return http_response(500), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}}


def write_tree(root, templates: dict[str, dict], majors: dict[str, int] | None = None) -> dict:
    """proton/ and dist/ for these templates, as `invoke bundle` writes them."""
    from mlflow_platform.templates import all_templates

    definitions = {d.name: d for d in all_templates()}
    majors = majors or {}
    environments = (f"{ENVIRONMENT}:{majors.get(ENVIRONMENT, 1)}",)
    for name, template in templates.items():
        item = bundle.render_template(
            definitions[name], bundle.render_channels(definitions[name], template), environments
        )
        folder = root / "proton" / name / f"v{majors.get(name, 1)}"
        for path, text in item.bundle.files.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        catalog = root / "dist" / "servicecatalog" / name / "template.yaml"
        catalog.parent.mkdir(parents=True, exist_ok=True)
        catalog.write_text(item.service_catalog)
    return {"proton_dir": root / "proton", "dist": root / "dist"}


def run(world: World, config, paths, **options):
    clients = world.clients()
    outcomes = publish(
        clients=clients,
        config=config,
        items=releases(**paths),
        targets=options.pop("targets", ("proton", "servicecatalog")),
        poll_seconds=0,
        **options,
    )
    return outcomes, clients.log


def all_ok(outcomes) -> None:
    assert [o.error for o in outcomes] == [None] * len(outcomes)


def proton_versions(fake: FakeAws, kind: str, name: str) -> list[tuple[str, str]]:
    return [
        (f"{v['majorVersion']}.{v['minorVersion']}", v["status"])
        for v in fake.proton[kind][name]["versions"]
    ]


def catalog_artifacts(fake: FakeAws, name: str) -> list[str]:
    (product,) = [p for p in fake.products.values() if p["summary"]["Name"] == name]
    return [a["Name"] for a in product["artifacts"]]


def with_optional_input(template: dict) -> dict:
    """The template with one more input, optional: a compatible change, the next minor."""
    changed = copy.deepcopy(template)
    changed["Parameters"]["ExtraTag"] = {
        "Type": "String",
        "Default": "none",
        "Description": "An optional input added in a minor version.",
    }
    return changed
