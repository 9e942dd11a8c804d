"""The tracking-server image's name and its content-derived tag.

The tag is a hash of the image sources, so the same sources always name the same image and a
changed source names a new one. The environment template's default image points at this tag in
the deploying account's ECR repository, where `invoke image` pushes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlflow_platform.paths import IMAGE_SOURCE

REPOSITORY = "mlflow-tracking-server"
_IGNORED_PARTS = {"__pycache__", ".pytest_cache"}


def source_files(source: Path = IMAGE_SOURCE) -> list[Path]:
    """Every file that goes into the image build context, in a stable order."""
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and not _IGNORED_PARTS.intersection(path.relative_to(source).parts)
        and path.suffix != ".pyc"
    )


def image_tag(source: Path = IMAGE_SOURCE) -> str:
    digest = hashlib.sha256()
    for path in source_files(source):
        digest.update(path.relative_to(source).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"src-{digest.hexdigest()[:16]}"
