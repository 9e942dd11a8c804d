"""The tracking server on a read-only root filesystem, as its task definition runs it: every file
it writes goes under TMPDIR and HOME, the task's scratch volume (/tmp in the cloud).

These machines cannot mount a read-only root, so the server runs, through the cloud's entrypoint
on the local platform, with an audit hook (PEP 578) in every Python process it starts that
refuses, as a read-only filesystem would (EROFS), any write outside the scratch directory and
/dev, and records it. Python's own bytecode caches are left out of the record: the import system
ignores a failure to write them, as it does in the image, whose packages belong to root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from mlflow_platform.local.platform import LocalPlatform

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WRITABLE = "MLFLOW_PLATFORM_TEST_WRITABLE"
GUARD = textwrap.dedent(
    """
    import errno, json, os, sys

    _writable = tuple(
        os.path.realpath(p) + os.sep for p in os.environ["MLFLOW_PLATFORM_TEST_WRITABLE"].split(":")
    )
    _record = os.path.join(_writable[0], "refused.jsonl")
    _busy = []
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _check(event, path, dir_fd=None):
        if isinstance(path, int) or path is None:
            return
        path = os.fsdecode(path)
        if dir_fd not in (None, -1) and not os.path.isabs(path):  # shutil.rmtree walks by fd
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        real = os.path.realpath(path)
        if (real + os.sep).startswith(_writable) or real.startswith(_writable):
            return
        if "__pycache__" not in real and not _busy:
            _busy.append(1)
            try:
                fd = os.open(_record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.write(fd, (json.dumps({"event": event, "path": real}) + "\\n").encode())
                os.close(fd)
            finally:
                _busy.pop()
        raise OSError(errno.EROFS, "Read-only file system", real)

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            if (mode and any(c in mode for c in "wax+")) or (flags and flags & _WRITE):
                _check(event, path)
        elif event in ("os.mkdir", "os.remove", "os.rmdir"):
            _check(event, args[0], args[-1])
        elif event in ("os.chmod", "os.truncate"):
            _check(event, args[0])
        elif event == "os.rename":
            _check(event, args[1], args[3])

    sys.addaudithook(_hook)
    """
)


def _environment(guard: Path, scratch: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHONPATH": path,
        WRITABLE: f"{scratch}:/dev",
        # What the task definition sets (environment_template/tracking_service.py).
        "TMPDIR": str(scratch),
        "HOME": str(scratch),
    }


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The local platform, its server under the guard; the scratch directory."""
    state = Path(tempfile.mkdtemp(prefix="mlflow-readonly-"))
    state.chmod(0o755)  # searchable by the postgres user
    guard = tmp_path_factory.mktemp("guard")
    (guard / "sitecustomize.py").write_text(GUARD)
    scratch = tmp_path_factory.mktemp("scratch")
    local = LocalPlatform(state, progress=lambda _: None)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        yield local.up(server_env=_environment(guard, scratch)), guard, scratch
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def _refused(scratch: Path) -> list[dict]:
    record = scratch / "refused.jsonl"
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_the_guard_refuses_a_write_outside_the_scratch_directory(guarded, tmp_path):
    """The test below could fail: the same guard refuses a write to the root filesystem."""
    _, guard, scratch = guarded
    target = Path("/var/tmp") / f"read-only-probe-{time.time_ns()}"
    result = subprocess.run(
        [sys.executable, "-c", f"open({str(target)!r}, 'w')"],
        env={**os.environ, **_environment(guard, scratch)},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    assert not target.exists()
    assert {"event": "open", "path": str(target)} in _refused(scratch)
    (scratch / "refused.jsonl").unlink()


def test_the_server_works_writing_only_to_its_scratch_volume(guarded, tmp_path):
    from mlflow import MlflowClient

    details, _, scratch = guarded
    os.environ["MLFLOW_TRACKING_USERNAME"] = details["username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = details["password"]
    client = MlflowClient(details["tracking_uri"])
    experiment = client.create_experiment(f"read-only-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "alpha", "0.5")
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    large = tmp_path / "weights.bin"
    large.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    client.log_artifact(run_id, str(large), artifact_path="model")
    client.set_terminated(run_id)
    out = Path(client.download_artifacts(run_id, "model", str(tmp_path / "out")))
    assert (out / "weights.bin").read_bytes() == large.read_bytes()
    name = f"model-{time.time_ns()}"
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [1.0, 0.5, 1 / 3]

    assert _refused(scratch) == []
    # The entrypoint's private auth config went to the scratch volume.
    assert list(scratch.glob("mlflow-platform-*/*"))
