"""`invoke bundle` end to end, and the stamp that lets it skip work."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from mlflow_platform.building import bundle, stamp
from mlflow_platform.paths import ROOT
from mlflow_platform.templates import TEMPLATES

TEMPLATE_NAMES = [name for name, _ in TEMPLATES]  # environments first


def _processes_with(marker: str) -> set[str]:
    """Every process whose environment holds marker: what a run started (jsii's Node process,
    the lint workers) inherits it, whatever else runs on the machine."""
    found = set()
    needle = marker.encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            text = environ.read_bytes()
        except OSError:  # the process ended while we looked, or is not ours to read
            continue
        if needle in text:
            found.add(environ.parent.name)
    return found


def test_bundle_check_renders_verifies_and_matches_the_committed_bundles():
    """The whole pipeline, cfn-lint included, in a fresh process, ignoring any stamp; the
    process leaves no helper process behind."""
    marker = f"MLFLOW_PLATFORM_TEST_RUN={uuid.uuid4()}"
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "bundle", "--check", "--force", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, marker.split("=")[0]: marker.split("=")[1]},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["up_to_date"] is False and report["checked"] is True
    # Reported environment first, each template's Service Catalog template before its specs,
    # whatever order the work was done in.
    specs = [f"proton/specs/{name}/{path.name}" for name in TEMPLATE_NAMES
             for path in bundle.spec_files(name)]  # fmt: skip
    assert [s.split(" (instance")[0] for s in report["specs"]] == specs
    assert report["linted"] == [
        label
        for name in TEMPLATE_NAMES
        for label in [f"dist/servicecatalog/{name}/template.yaml"]
        + [s for s in report["specs"] if f"/{name}/" in s]
    ]
    # Progress on stderr while stdout stays JSON: each template synthesized, each lint counted.
    progress = result.stderr.splitlines()
    for name in TEMPLATE_NAMES:
        assert any(line.startswith(f"synthesized {name}") for line in progress), progress
        assert f"dist/servicecatalog/{name}/template.yaml" in result.stderr
    checked = [line for line in progress if line.startswith("cfn-lint checked ")]
    assert checked and checked[-1].endswith(f"({len(checked)} of {len(checked)})")
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == set()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A stand-in project tree for the stamp logic."""
    (tmp_path / "proton" / "specs").mkdir(parents=True)
    (tmp_path / "proton" / "specs" / "a.yaml").write_text("proton: EnvironmentSpec\n")
    bundle_dir = tmp_path / "proton" / "t" / "v1"
    bundle_dir.mkdir(parents=True)
    output = bundle_dir / "schema.yaml"
    output.write_text("schema")
    monkeypatch.setattr(stamp, "ROOT", tmp_path)
    monkeypatch.setattr(stamp, "STAMP", tmp_path / "build" / "stamp.json")
    return tmp_path, output


def test_stamp_is_valid_until_a_source_or_an_output_changes(project):
    root, output = project
    key = stamp.inputs_key()
    assert not stamp.up_to_date(key)
    stamp.record(key, [output])
    assert stamp.up_to_date(key)

    (root / "proton" / "specs" / "a.yaml").write_text("proton: ServiceSpec\n")
    assert stamp.inputs_key() != key

    output.write_text("edited by hand")
    assert not stamp.up_to_date(key)
    output.write_text("schema")
    assert stamp.up_to_date(key)

    (output.parent / "stray.yaml").write_text("x")
    assert not stamp.up_to_date(key)
    (output.parent / "stray.yaml").unlink()
    output.unlink()
    assert not stamp.up_to_date(key)


def test_a_breaking_schema_starts_a_new_major_folder_and_keeps_the_old(tmp_path, rendered):
    item = rendered["mlflow-environment"]
    folder = tmp_path / "mlflow-environment" / "v1" / "schema"
    folder.mkdir(parents=True)
    old = yaml.safe_load(item.bundle.files["schema/schema.yaml"])
    body = old["schema"]["types"]["EnvironmentInput"]
    (folder / "schema.yaml").write_text(yaml.safe_dump(old))
    assert bundle.major_for(item.definition, item.bundle, tmp_path) == (1, ())

    body["properties"]["retired_input"] = {"type": "string", "description": "gone"}
    (folder / "schema.yaml").write_text(yaml.safe_dump(old))
    assert bundle.major_for(item.definition, item.bundle, tmp_path) == (
        2,
        ("input retired_input was removed",),
    )
    (tmp_path / "mlflow-environment" / "v2" / "schema").mkdir(parents=True)
    (tmp_path / "mlflow-environment" / "v2" / "schema" / "schema.yaml").write_text(
        item.bundle.files["schema/schema.yaml"]
    )
    assert bundle.major_for(item.definition, item.bundle, tmp_path) == (2, ())


def test_the_service_names_the_environment_major_it_renders_against(rendered):
    environments = bundle.compatible_environments(
        {"mlflow-environment": dataclasses.replace(rendered["mlflow-environment"], major=3)}
    )
    assert environments == ("mlflow-environment:3",)
