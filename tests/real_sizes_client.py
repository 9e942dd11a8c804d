"""Run as a team's notebook would, with only the environment the platform publishes: log files
of real sizes, list them, download them, register them, download the registered version, and
print what came back (sizes and sha256) as JSON. Used by tests/test_real_models.py.

    python tests/real_sizes_client.py WORKDIR SIZE_IN_BYTES...
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write(path: Path, size: int) -> str:
    with path.open("wb") as file:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 22))
            file.write(chunk)
            left -= len(chunk)
    return _sha256(path)


def _files(root: Path) -> dict[str, list]:
    return {
        str(p.relative_to(root)): [p.stat().st_size, _sha256(p)]
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def main() -> None:
    work, sizes = Path(sys.argv[1]), [int(s) for s in sys.argv[2:]]
    upload = work / "upload"
    upload.mkdir(parents=True)
    sent = {}
    for size in sizes:
        (upload / f"size-{size}").mkdir()
        path = upload / f"size-{size}" / "blob.bin"
        sent[f"size-{size}/blob.bin"] = [size, _write(path, size)]
    client = MlflowClient()
    experiment = client.create_experiment(f"real-sizes-{time.time_ns()}")
    run = client.create_run(experiment).info.run_id
    started = time.monotonic()
    client.log_artifacts(run, str(upload), "sizes")
    logged = time.monotonic() - started
    listed = {
        info.path: info.file_size or 0  # MLflow leaves a size of 0 out
        for directory in client.list_artifacts(run, "sizes")
        for info in client.list_artifacts(run, directory.path)
    }
    started = time.monotonic()
    downloaded = Path(client.download_artifacts(run, "sizes", str(work / "download")))
    fetched = time.monotonic() - started
    name = f"real-sizes-{time.time_ns()}"
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run}/sizes", run_id=run).version
    registered = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{name}/{version}", dst_path=str(work / "registered")
        )
    )
    print(json.dumps({
        "sent": sent, "listed": listed, "downloaded": _files(downloaded),
        "registered": _files(registered), "seconds": {"log": logged, "download": fetched},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
