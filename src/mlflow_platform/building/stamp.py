"""Skip `invoke bundle` when nothing it reads has changed.

The key is the content of every source the bundle is made from (both templates' CDK code, the
tooling, the image sources, the example specs, the project file) and the versions of the tools
that render and check it. The stamp also records a hash of every file the bundle wrote, so an
output edited or deleted by hand is noticed. This module imports nothing heavy: an up-to-date
check must not start CDK's Node process or load cfn-lint.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow_platform.paths import BUILD, ROOT

if TYPE_CHECKING:
    from mlflow_platform.building.bundle import BundleResult

SOURCES = (
    "environment_template",
    "service_template",
    "src/mlflow_platform",
    "src/tracking_server",
    "proton/specs",
    "pyproject.toml",
)
TOOLS = ("aws-cdk-lib", "constructs", "cdk-nag", "cfn-lint", "jinja2", "jsonschema", "pyyaml")
STAMP = BUILD / "bundle-stamp.json"
_SKIPPED = {"__pycache__"}


def _files(entries: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for entry in entries:
        path = ROOT / entry
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [
                p
                for p in path.rglob("*")
                if p.is_file() and not _SKIPPED & set(p.parts) and p.suffix != ".pyc"
            ]
    return sorted(found)


def inputs_key() -> str:
    digest = hashlib.sha256()
    for path in _files(SOURCES):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for tool in TOOLS:
        digest.update(f"{tool}=={metadata.version(tool)}\0".encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def up_to_date(key: str) -> bool:
    """True when the stamp was written for `key` and every output it lists is unchanged."""
    stamp = _stamp()
    outputs: dict[str, str] = stamp.get("outputs", {})
    return (
        stamp.get("inputs") == key
        and bool(outputs)
        and all(_file_hash(ROOT / name) == digest for name, digest in outputs.items())
        and not _unrecorded_bundle_files(outputs)
    )


def _unrecorded_bundle_files(outputs: dict[str, str]) -> list[Path]:
    """Files in a recorded bundle directory that the bundle did not write."""
    # proton/<template>/v<major>/...
    directories = {
        ROOT.joinpath(*Path(name).parts[:3]) for name in outputs if name.startswith("proton/")
    }
    recorded = {ROOT / name for name in outputs}
    return [p for d in directories for p in d.rglob("*") if p.is_file() and p not in recorded]


def record(key: str, outputs: Iterable[Path]) -> None:
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    STAMP.write_text(
        json.dumps(
            {
                "inputs": key,
                "outputs": {p.relative_to(ROOT).as_posix(): _file_hash(p) for p in sorted(outputs)},
            },
            indent=1,
        )
    )


def bundle_unless_up_to_date(
    *, check: bool = False, force: bool = False, progress: Callable[[str], None] = lambda _: None
) -> BundleResult | None:
    """`bundle.build`, or None when the stamp shows it would write (or find) nothing new.

    With check, an up-to-date stamp means the committed bundles are what the code renders:
    the stamp holds the hash of every file rendered from exactly these sources.
    """
    key = inputs_key()
    if not force and up_to_date(key):
        return None
    from mlflow_platform.building import bundle

    if check:
        return bundle.build(check=True, progress=progress)
    STAMP.unlink(missing_ok=True)
    result = bundle.build(progress=progress)
    record(key, result.written)
    return result


def require_committed(*, progress: Callable[[str], None] = lambda _: None) -> None:
    """What `invoke publish` needs: proton/ exactly as the code renders it, never rewritten
    here (what is published is what is committed), and dist/ written beside it. Raises
    BundleCheckError naming the files when the checkout is stale."""
    key = inputs_key()
    if up_to_date(key):
        return
    from mlflow_platform.building import bundle

    result = bundle.build(check=True, write_dist=True, progress=progress)
    record(key, result.written)
