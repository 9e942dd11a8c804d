"""`invoke bundle`: synth -> render per channel -> verify -> write, in one pass.

Nothing is written unless every check passes. Writes:
- proton/<template>/v<major>/...   Proton bundles in template-sync layout (committed);
- dist/proton/<template>-v<major>.tar.gz   archives for registration through the API;
- dist/servicecatalog/<template>/template.yaml   Service Catalog templates.
proton/specs/ holds the example specs; they are read, never written.
With check=True nothing is written; the committed proton/ is compared with what renders now.

Majors: each template renders into its newest proton/<template>/v<major>/ folder. When the new
schema is not compatible with that folder's (an input removed, a constraint narrowed...), the
render goes to a new v<major + 1>/ folder instead and the older one stays frozen, as published.

Templates are synthesized one at a time so that cfn-lint, in worker processes, checks one
template while the next one synthesizes. A service's registration names the environment major,
so the bundles themselves are assembled once everything is synthesized.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_platform import yaml_io
from mlflow_platform.building import archive, render, verify
from mlflow_platform.building.lint import PRIMARY_REGION, LintFinding, LintPool
from mlflow_platform.errors import PlatformError
from mlflow_platform.paths import DIST, PROTON_DIR, ROOT, catalog_template
from mlflow_platform.releasing import release, versioning
from mlflow_platform.templates import TemplateDefinition, all_templates

SPECS_DIR = PROTON_DIR / "specs"


class BundleCheckError(PlatformError):
    pass


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, kw_only=True)
class Rendered:
    definition: TemplateDefinition
    major: int
    major_reasons: tuple[str, ...] = ()
    """Why this render starts a new major folder (empty when it does not)."""
    template: dict
    bundle: render.ProtonBundle
    archive: bytes
    service_catalog: str

    @property
    def bundle_dir(self) -> Path:
        return PROTON_DIR / self.definition.name / f"v{self.major}"


@dataclass(frozen=True, kw_only=True)
class Channels:
    """A synthesized template rendered for both channels, all but a service's registration:
    what its specs render from and what cfn-lint checks."""

    template: dict
    infrastructure: render.ProtonBundle
    service_catalog: str


def render_channels(definition: TemplateDefinition, template: dict) -> Channels:
    return Channels(
        template=template,
        infrastructure=render.proton_infrastructure(template, kind=definition.kind),
        service_catalog=render.service_catalog_template(template),
    )


@dataclass(kw_only=True)
class BundleResult:
    written: list[Path] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    linted: list[str] = field(default_factory=list)
    new_majors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """proton/<template>/v<major> folders this run starts, and why."""


def spec_files(name: str) -> list[Path]:
    return sorted((SPECS_DIR / name).glob("*.yaml"))


def major_for(
    definition: TemplateDefinition, bundle: render.ProtonBundle, proton_dir: Path = PROTON_DIR
) -> tuple[int, tuple[str, ...]]:
    """The newest folder's major, or the next one when the schema breaks compatibility."""
    found = release.majors(definition.name, proton_dir)
    if not found:
        return 1, ()
    current = proton_dir / definition.name / f"v{found[-1]}" / "schema" / "schema.yaml"
    if not current.is_file():
        return found[-1], ()
    compatibility = versioning.schema_compatibility(
        release.proton_inputs({"schema/schema.yaml": current.read_text()}, definition.kind),
        release.proton_inputs(bundle.files, definition.kind),
    )
    if compatibility.change == "major":
        return found[-1] + 1, compatibility.reasons
    return found[-1], ()


def render_template(
    definition: TemplateDefinition,
    channels: Channels,
    environments: tuple[str, ...],
    *,
    proton_dir: Path = PROTON_DIR,
) -> Rendered:
    """One template's channels, completed: the service's registration, the major, the archive."""
    bundle = render.with_registration(
        channels.infrastructure,
        kind=definition.kind,
        compatible_environments=environments if definition.kind == "service" else (),
    )
    major, reasons = major_for(definition, bundle, proton_dir)
    return Rendered(
        definition=definition,
        major=major,
        major_reasons=reasons,
        template=channels.template,
        bundle=bundle,
        archive=archive.tar_gz(bundle.files),
        service_catalog=channels.service_catalog,
    )


def _spec_renders(
    definition: TemplateDefinition, infrastructure: render.ProtonBundle, problems: list[str]
) -> dict[str, str]:
    """Each example spec rendered as Proton would, by label: what cfn-lint checks next."""
    files = spec_files(definition.name)
    if not files:
        problems.append(f"no example specs in {SPECS_DIR.relative_to(ROOT)}/{definition.name}/")
    texts: dict[str, str] = {}
    try:
        for spec in verify.render_specs(
            kind=definition.kind, bundle=infrastructure, spec_files=files, root=ROOT
        ):
            label = spec.spec + (f" (instance {spec.instance})" if spec.instance else "")
            texts[label] = spec.text
    except verify.VerificationError as error:
        problems += error.problems
    return texts


def compatible_environments(rendered: dict[str, Rendered]) -> tuple[str, ...]:
    """Each environment at the major it renders to: the one a service's new version runs in."""
    return tuple(
        f"{name}:{item.major}"
        for name, item in rendered.items()
        if item.definition.kind == "environment"
    )


def render_and_verify(
    pool: LintPool, result: BundleResult, progress: Progress = _quiet
) -> dict[str, Rendered]:
    """Every template rendered for both channels; raises VerificationError on any problem."""
    # Imported here: `invoke bundle` with nothing changed answers from its stamp without
    # loading aws-cdk-lib.
    from mlflow_platform.building.synth import synthesize

    problems: list[str] = []
    # Each lint and what it checks.
    lints: dict[Future[list[LintFinding]], str] = {}
    # Template name -> its channels, and the labels of its Service Catalog template and specs.
    synthesized: dict[str, tuple[Channels, str, list[str]]] = {}
    for definition in sorted(all_templates(), key=lambda d: d.kind != "service"):
        channels = render_channels(definition, synthesize([definition]).templates[definition.name])
        progress(f"synthesized {definition.name}: cdk-nag found nothing unacknowledged")
        # The Service Catalog template first, checked in every region: it is the largest lint,
        # and a render equal to it (every input at its default) shares its lint.
        catalog = catalog_template(definition.name).relative_to(ROOT).as_posix()
        submitted = pool.submit({catalog: channels.service_catalog})
        renders = _spec_renders(definition, channels.infrastructure, problems)
        submitted |= pool.submit(renders, regions=PRIMARY_REGION)
        lints |= {future: source for source, future in submitted.items()}
        synthesized[definition.name] = (channels, catalog, list(renders))

    rendered: dict[str, Rendered] = {}
    # Environments come first in all_templates(), so their majors are known to the services.
    for definition in all_templates():
        channels, catalog, specs = synthesized[definition.name]
        result.specs += specs
        result.linted += [catalog, *specs]
        item = render_template(definition, channels, compatible_environments(rendered))
        rendered[definition.name] = item
        if item.major_reasons:
            result.new_majors[str(item.bundle_dir.relative_to(ROOT))] = item.major_reasons
        problems += verify.limit_problems(
            f"proton/{definition.name}/v{item.major}", item.bundle, len(item.archive)
        )
    environment = next(r for r in rendered.values() if r.definition.kind == "environment")
    for item in rendered.values():
        if item.definition.kind == "service":
            problems += verify.contract_problems(
                environment=environment.template,
                service_proton_text="".join(item.bundle.files.values()),
                service_catalog=yaml_io.load(item.service_catalog),
            )
    for done, lint in enumerate(as_completed(lints), 1):
        progress(f"cfn-lint checked {lints[lint]} ({done} of {len(lints)})")
    problems += [f"cfn-lint: {finding}" for lint in lints for finding in lint.result()]
    if problems:
        raise verify.VerificationError(problems)
    return rendered


def bundle_files(rendered: dict[str, Rendered]) -> dict[Path, bytes]:
    return {
        item.bundle_dir / path: text.encode()
        for item in rendered.values()
        for path, text in item.bundle.files.items()
    }


def _dist_files(rendered: dict[str, Rendered]) -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    for name, item in rendered.items():
        files[DIST / "proton" / f"{name}-v{item.major}.tar.gz"] = item.archive
        files[catalog_template(name)] = item.service_catalog.encode()
    return files


def _stale(expected: dict[Path, bytes], rendered: dict[str, Rendered]) -> list[Path]:
    """Files under a bundle directory that the code no longer renders."""
    return sorted(
        path
        for item in rendered.values()
        if item.bundle_dir.exists()
        for path in item.bundle_dir.rglob("*")
        if path.is_file() and path not in expected
    )


def differences(expected: dict[Path, bytes], rendered: dict[str, Rendered]) -> list[str]:
    """How the committed bundle files differ from what renders now."""
    found = [f"{p.relative_to(ROOT)}: not rendered any more" for p in _stale(expected, rendered)]
    for path, data in expected.items():
        if not path.exists():
            found.append(f"{path.relative_to(ROOT)}: missing")
        elif path.read_bytes() != data:
            found.append(f"{path.relative_to(ROOT)}: differs from what the code renders")
    return found


def build(
    *, check: bool = False, write_dist: bool = False, progress: Progress = _quiet
) -> BundleResult:
    """progress hears of each step as it ends: a template synthesized, a template linted.

    check: write nothing to proton/ and fail, naming the files, where it differs from the
    render; with write_dist, then write dist/ (what `invoke publish` needs beside the
    committed bundles).
    """
    result = BundleResult()
    with LintPool() as pool:
        rendered = render_and_verify(pool, result, progress)
    files = bundle_files(rendered)
    if check:
        found = differences(files, rendered)
        if found:
            raise BundleCheckError(
                "the committed Proton bundles are not what the code renders now; run "
                "`invoke bundle` and commit proton/:\n" + "\n".join(f"  {s}" for s in found)
            )
        if not write_dist:
            return result
        result.written += list(files)  # as committed, byte for byte: the stamp records them
        files = {}
    else:
        for path in _stale(files, rendered):
            path.unlink()
    for path, data in {**files, **_dist_files(rendered)}.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        result.written.append(path)
    return result
