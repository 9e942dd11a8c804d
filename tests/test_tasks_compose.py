"""Tasks as a user chains them: `invoke synth bundle` runs both, and `invoke publish` publishes
only what is committed."""

from __future__ import annotations

import os
import subprocess
import sys

from mlflow_platform.paths import ROOT

COMMITTED = ROOT / "proton" / "mlflow-environment" / "v1" / "schema" / "schema.yaml"


def _invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_every_task_on_one_command_line_runs():
    result = _invoke("synth", "bundle", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote build/synth/" in result.stdout  # synth ran
    assert (
        "proton/ matches what the code renders" in result.stdout
        or "bundles are up to date" in result.stdout
    )  # and so did bundle


def test_publish_refuses_a_checkout_whose_bundles_are_stale_and_rewrites_nothing(tmp_path):
    config = tmp_path / "publish.yaml"
    config.write_text(
        "bucket: some-bucket\ntargets: [proton]\nservicecatalog: {provider: Platform}\n"
    )
    original = COMMITTED.read_bytes()
    edited = original + b"# edited by hand\n"
    COMMITTED.write_bytes(edited)
    try:
        result = _invoke(
            "publish",
            "--dry-run",
            "--config",
            str(config),
            env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "eu-west-1"},
        )
        after = COMMITTED.read_bytes()
    finally:
        COMMITTED.write_bytes(original)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the committed Proton bundles are not what the code renders now" in result.stderr
    assert "proton/mlflow-environment/v1/schema/schema.yaml" in result.stderr
    assert after == edited  # never re-rendered
