"""Where the project's sources and outputs live, resolved from the repository root."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
SYNTH_DIR = BUILD / "synth"
PROTON_DIR = ROOT / "proton"
DIST = ROOT / "dist"
IMAGE_SOURCE = ROOT / "src" / "tracking_server"


def catalog_template(name: str, dist: Path = DIST) -> Path:
    """Where `invoke bundle` writes a template's Service Catalog product template."""
    return dist / "servicecatalog" / name / "template.yaml"
