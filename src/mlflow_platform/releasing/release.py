"""What `invoke publish` offers each channel: the committed bundles, read back from disk.

Publishing reads the reviewed files (proton/<template>/v<major>/ and the Service Catalog
template in dist/), never a fresh synth, so what reaches AWS is exactly what was committed and
checked. The newest major folder is the one that is published; older majors are frozen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from mlflow_platform import yaml_io
from mlflow_platform.building import archive
from mlflow_platform.building.proton_schema import INPUT_TYPE, schema
from mlflow_platform.errors import PlatformError
from mlflow_platform.paths import DIST, PROTON_DIR, ROOT, catalog_template
from mlflow_platform.templates import Kind

_MAJOR_DIR = re.compile(r"^v([1-9][0-9]*)$")


class ReleaseError(PlatformError):
    pass


def document(text: str | bytes) -> Mapping[str, Any]:
    """A YAML document that this tooling wrote (a bundle file, a template): always a mapping."""
    return cast(Mapping[str, Any], yaml_io.load(text))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def majors(name: str, proton_dir: Path = PROTON_DIR) -> list[int]:
    """The major versions that have a bundle folder, oldest first."""
    folder = proton_dir / name
    if not folder.is_dir():
        return []
    return sorted(
        int(match.group(1))
        for child in folder.iterdir()
        if child.is_dir() and (match := _MAJOR_DIR.match(child.name))
    )


@dataclass(frozen=True, kw_only=True)
class Release:
    """One template at its newest major, as both channels receive it."""

    name: str
    kind: Kind
    major: int
    files: Mapping[str, str]
    """The bundle folder's files, by path inside the bundle."""
    service_catalog: str
    """The Service Catalog template (YAML text)."""

    @cached_property
    def archive(self) -> bytes:
        return archive.tar_gz(self.files)

    @cached_property
    def proton_sha256(self) -> str:
        """The archive and the compatible environments, which Proton takes beside it."""
        registration = self.files.get(".template-registration.yaml", "")
        return sha256(self.archive + b"\0" + registration.encode())

    @cached_property
    def service_catalog_sha256(self) -> str:
        return sha256(self.service_catalog.encode())

    @cached_property
    def service_catalog_template(self) -> Mapping:
        return document(self.service_catalog)

    @property
    def infrastructure_file(self) -> str:
        return next(p for p in self.files if p.endswith("cloudformation.yaml"))

    @property
    def compatible_environments(self) -> list[tuple[str, int]]:
        """(environment template, major) pairs from the registration file of a service."""
        text = self.files.get(".template-registration.yaml")
        if text is None:
            return []
        pairs = []
        for entry in document(text)["compatible_environments"]:
            template, _, major = str(entry).partition(":")
            pairs.append((template, int(major)))
        return pairs


def proton_inputs(files: Mapping[str, str], kind: Kind) -> Mapping:
    """The input body of a bundle's schema (what versioning compares)."""
    body = document(files["schema/schema.yaml"])["schema"]
    return body["types"][INPUT_TYPE[kind]]


def service_catalog_inputs(template: Mapping, kind: Kind) -> Mapping:
    """A Service Catalog template's parameters, in the same form as a Proton input body."""
    document = schema(template, kind=kind)["schema"]
    return document["types"][INPUT_TYPE[kind]]  # type: ignore[index]


def load(name: str, kind: Kind, *, proton_dir: Path = PROTON_DIR, dist: Path = DIST) -> Release:
    found = majors(name, proton_dir)
    if not found:
        raise ReleaseError(
            f"{name}: no bundle folder under {_shown(proton_dir / name)}: run `invoke bundle`"
        )
    folder = proton_dir / name / f"v{found[-1]}"
    files = {
        path.relative_to(folder).as_posix(): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    catalog = catalog_template(name, dist)
    if not catalog.is_file():
        raise ReleaseError(f"{name}: {_shown(catalog)} is missing: run `invoke bundle`")
    return Release(
        name=name, kind=kind, major=found[-1], files=files, service_catalog=catalog.read_text()
    )


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
