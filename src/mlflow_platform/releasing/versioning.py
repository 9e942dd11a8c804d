"""What a new template version is, compared with the published one (step 6 of the spine).

- Same content: nothing to publish.
- Every spec valid for the old schema stays valid for the new one: the next minor version.
  Adding an optional input, widening a range or an enumeration, changing a default or a
  description is compatible.
- Anything else is the next major version: an input removed or renamed, a new required input,
  a type changed, a range or enumeration narrowed, a pattern changed.

Upgrade safety: a new version must not delete or replace a stateful resource. Replacement is
read from cfn-lint's bundled resource schemas (createOnlyProperties), and spreads: a resource
whose create-only property refers to a replaced resource is replaced too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from mlflow_platform.errors import PlatformError

STATEFUL_TYPES = frozenset({
    "AWS::RDS::DBCluster",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::EC2::VPC",
    "AWS::SageMaker::Domain",
})  # fmt: skip
SCHEMA_REGION = "us-east-1"
LABEL = re.compile(r"^([1-9][0-9]*)\.([0-9]+)$")
"""A version as both channels name it: Proton's major.minor, a Service Catalog artifact's Name."""
_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


def _stateful(resource: Mapping) -> bool:
    """An Aurora member instance holds no data (its cluster does); a standalone one does."""
    if resource["Type"] == "AWS::RDS::DBInstance":
        return "DBClusterIdentifier" not in resource.get("Properties", {})
    return resource["Type"] in STATEFUL_TYPES


Change = Literal["none", "minor", "major"]


@dataclass(frozen=True)
class Compatibility:
    change: Change
    reasons: tuple[str, ...] = field(default=())


def _props(body: Mapping) -> Mapping[str, Mapping]:
    return body.get("properties", {})


def schema_compatibility(old: Mapping, new: Mapping) -> Compatibility:
    """Compare two input bodies (the `types.<Input>` objects of two Proton schemas)."""
    if old == new:
        return Compatibility("none")
    breaking: list[str] = []
    compatible: list[str] = []
    old_props, new_props = _props(old), _props(new)
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(set(old_props) - set(new_props)):
        breaking.append(f"input {name} was removed")
    for name in sorted(set(new_props) - set(old_props)):
        if name in new_required:
            breaking.append(f"input {name} was added as required")
        else:
            compatible.append(f"input {name} was added, optional")
    for name in sorted(new_required - old_required - (set(new_props) - set(old_props))):
        breaking.append(f"input {name} became required")
    for name in sorted(set(old_props) & set(new_props)):
        breaking += [f"input {name}: {r}" for r in _narrowed(old_props[name], new_props[name])]
        if old_props[name] != new_props[name] and not _narrowed(old_props[name], new_props[name]):
            compatible.append(f"input {name} changed compatibly")
    if breaking:
        return Compatibility("major", tuple(breaking))
    return Compatibility("minor", tuple(compatible) or ("the schema's wording changed",))


def _narrowed(old: Mapping, new: Mapping) -> list[str]:
    reasons = []
    if old.get("type") != new.get("type"):
        reasons.append(f"type {old.get('type')} became {new.get('type')}")
    if "enum" in new:
        lost = [v for v in old.get("enum", []) if v not in new["enum"]]
        if "enum" not in old:
            reasons.append(f"now limited to {new['enum']}")
        elif lost:
            reasons.append(f"no longer accepts {lost}")
    if new.get("pattern") != old.get("pattern") and "pattern" in new:
        reasons.append(f"pattern changed to {new['pattern']}")
    for bound, tighter in (("minimum", max), ("minLength", max), ("maximum", min),
                           ("maxLength", min)):  # fmt: skip
        if bound in new and (bound not in old or tighter(old[bound], new[bound]) != old[bound]):
            reasons.append(f"{bound} {old.get(bound, 'none')} became {new[bound]}")
    return reasons


def _at(node: object, pointer: str) -> object:
    for part in pointer.strip("/").split("/")[1:]:  # drop the leading "properties"
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _refs(node: object) -> set[str]:
    if isinstance(node, Mapping):
        found: set[str] = set()
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*map(_refs, node)) if node else set()
    return set()


def _create_only(resource_type: str) -> list[str]:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type)
    except Exception:
        return []
    return list(schema.schema.get("createOnlyProperties", []))


def unsafe_changes(old: Mapping, new: Mapping) -> list[str]:
    """Each stateful resource the new template would delete or replace, and why."""
    old_resources: Mapping[str, Mapping] = old.get("Resources", {})
    new_resources: Mapping[str, Mapping] = new.get("Resources", {})
    why: dict[str, str] = {}
    for name, resource in new_resources.items():
        before = old_resources.get(name)
        if before is None:
            continue
        if before["Type"] != resource["Type"]:
            why[name] = f"its type changes from {before['Type']} to {resource['Type']}"
            continue
        for pointer in _create_only(resource["Type"]):
            if _at(before.get("Properties", {}), pointer) != _at(
                resource.get("Properties", {}), pointer
            ):
                why[name] = f"create-only property {pointer.split('/', 2)[2]} changes"
                break
    changed = True
    while changed:  # replacement spreads through create-only references
        changed = False
        for name, resource in new_resources.items():
            if name in why or name not in old_resources:
                continue
            for pointer in _create_only(resource["Type"]):
                hit = _refs(_at(resource.get("Properties", {}), pointer)) & set(why)
                if hit:
                    why[name] = (
                        f"create-only property {pointer.split('/', 2)[2]} refers to "
                        f"{sorted(hit)[0]}, which is replaced"
                    )
                    changed = True
                    break
    problems = [
        f"{name} ({resource['Type']}) would be deleted: it is not in the new template"
        for name, resource in old_resources.items()
        if _stateful(resource) and name not in new_resources
    ]
    problems += [
        f"{name} ({new_resources[name]['Type']}) would be replaced: {reason}"
        for name, reason in why.items()
        if _stateful(new_resources[name]) or _stateful(old_resources[name])
    ]
    return sorted(problems)


class VersionError(PlatformError):
    pass


def refuse_unsafe(name: str, previous: Published, old: Mapping, new: Mapping) -> None:
    """Raise when moving from `previous` (template `old`) to `new` deletes or replaces data."""
    unsafe = unsafe_changes(old, new)
    if unsafe:
        raise VersionError(
            f"{name}: upgrading from {previous.label} would lose data:\n"
            + "\n".join(f"  {u}" for u in unsafe)
            + "\nchange the template, or pass --allow-unsafe if this is intended"
        )


def parse_label(label: str) -> tuple[int, int] | None:
    """(major, minor) of a label such as "1.2"; None for any other name."""
    found = LABEL.match(label)
    return (int(found.group(1)), int(found.group(2))) if found else None


def description(name: str, version: str, sha256: str) -> str:
    """A version's description in either channel: it carries the content's sha256, so a rerun
    recognises its own version and the published content can be found by its hash."""
    return f"{name} {version} sha256:{sha256}"


def described_sha256(text: str) -> str | None:
    """The sha256 that `description` wrote, or None for a version made by other means."""
    found = _SHA256.search(text)
    return found.group(1) if found else None


@dataclass(frozen=True, kw_only=True)
class Published:
    """One version a channel holds, as read back from the service."""

    major: int
    minor: int
    sha256: str | None
    usable: bool
    """Published (Proton) or active (Service Catalog): what deployments can move to."""

    @property
    def label(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True, kw_only=True)
class Decision:
    change: Change
    version: str
    reasons: tuple[str, ...]
    previous: Published | None

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def decide(
    *,
    name: str,
    local_major: int,
    sha256: str,
    published: list[Published],
    compatibility: Callable[[Published], Compatibility],
) -> Decision:
    """The version the local content becomes, against what the channel has published.

    The local major is the newest bundle folder: a breaking change starts a new folder (and a
    new major) when it is rendered, so publishing only confirms that the schema agrees.
    """
    usable = sorted((p for p in published if p.usable), key=lambda p: (p.major, p.minor))
    latest = usable[-1] if usable else None
    if latest is None:
        return Decision(
            change="major",
            version=f"{local_major}.0",
            reasons=("nothing is published yet",),
            previous=None,
        )
    if latest.sha256 == sha256:
        return Decision(
            change="none",
            version=latest.label,
            reasons=(f"{latest.label} has the same content",),
            previous=latest,
        )
    if local_major < latest.major:
        raise VersionError(
            f"{name}: the newest bundle folder is v{local_major}, but major {latest.major} is "
            "already published; publish from the revision that holds the newer folder"
        )
    if local_major > latest.major + 1:
        raise VersionError(
            f"{name}: the newest bundle folder is v{local_major}, but the newest published major "
            f"is {latest.major}: majors are published in order"
        )
    if local_major == latest.major + 1:
        return Decision(
            change="major",
            version=f"{local_major}.0",
            reasons=(f"bundle folder v{local_major} starts a new major after {latest.label}",),
            previous=latest,
        )
    compatible = compatibility(latest)
    if compatible.change == "major":
        raise VersionError(
            f"{name}: not compatible with the published {latest.label}: "
            + "; ".join(compatible.reasons)
            + f". This needs major {latest.major + 1}: run `invoke bundle`, which starts "
            f"proton/{name}/v{latest.major + 1}/, review and commit it, then publish"
        )
    minor = 1 + max(p.minor for p in published if p.major == latest.major)
    return Decision(
        change="minor",
        version=f"{latest.major}.{minor}",
        reasons=compatible.reasons if compatible.change == "minor" else ("the template changed",),
        previous=latest,
    )
