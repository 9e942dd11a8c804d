"""`invoke client-wheel`: the mlflow-platform-client wheel, for images and jobs without an index.

A SageMaker job in a VPC that reaches no package index installs the client from this one file
(in its source_dir, or copied from S3 through the VPC's S3 gateway endpoint); its dependencies
(mlflow-skinny, botocore, requests) are already in any image that has MLflow.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlflow_platform.cli import Report
from mlflow_platform.errors import PlatformError
from mlflow_platform.paths import DIST, ROOT

CLIENT_DIR = ROOT / "client"


@dataclass(frozen=True)
class Wheel:
    path: Path
    version: str
    sha256: str
    entry_points: str
    """The wheel's entry_points.txt: what MLflow finds the plug-in by."""


def build(dist_dir: Path = DIST, *, source: Path = CLIENT_DIR) -> Wheel:
    """Build the client's wheel with pip (an isolated build: setuptools from the index pip is
    configured with) and put it in `dist_dir`, replacing one of the same name."""
    with tempfile.TemporaryDirectory(prefix="client-wheel-") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, str(source)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        built = sorted(Path(out).glob("*.whl"))
        if done.returncode != 0 or len(built) != 1:
            raise PlatformError(f"pip wheel {source} failed:\n{done.stderr[-2000:]}")
        dist_dir.mkdir(parents=True, exist_ok=True)
        target = dist_dir / built[0].name
        shutil.move(built[0], target)
    with zipfile.ZipFile(target) as wheel:
        (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
    return Wheel(
        path=target,
        version=target.name.split("-")[1],
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        entry_points=text,
    )


def report(wheel: Wheel) -> Report:
    shown = wheel.path.relative_to(ROOT) if wheel.path.is_relative_to(ROOT) else wheel.path
    return Report(
        data={"wheel": str(wheel.path), "version": wheel.version, "sha256": wheel.sha256},
        lines=[
            f"{shown}  (sha256 {wheel.sha256})",
            f"install: pip install {wheel.path.name}; then MLFLOW_TRACKING_AUTH="
            "mlflow-platform-sigv4 (client/README.md)",
        ],
    )
