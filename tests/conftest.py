from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mlflow_platform.local import LocalPlatform
from mlflow_platform.synth import Synthesis, synthesize


@pytest.fixture(scope="session")
def synthesis() -> Synthesis:
    """Every template, synthesized once per test session with cdk-nag on."""
    return synthesize()


@pytest.fixture(scope="session")
def environment(synthesis: Synthesis) -> dict:
    return synthesis.templates["mlflow-environment"]


@pytest.fixture(scope="session")
def service(synthesis: Synthesis) -> dict:
    return synthesis.templates["mlflow-sagemaker-api"]


@pytest.fixture(scope="session")
def rendered(synthesis: Synthesis) -> dict:
    """Both templates rendered for both channels from the session's synthesis (no lint)."""
    from mlflow_platform import bundle
    from mlflow_platform.templates import all_templates

    rendered: dict = {}
    for d in all_templates():
        environments = bundle.compatible_environments(rendered)
        rendered[d.name] = bundle.render_template(d, synthesis.templates[d.name], environments)
    return rendered


def _state_dir() -> Path:
    """Under /tmp, searchable by the postgres user (pytest's own tmp dirs are not)."""
    path = Path(tempfile.mkdtemp(prefix="mlflow-local-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def platform():
    """`invoke local up` in a fresh state directory, once per session; down at the end."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
    state = _state_dir()
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        yield local, local.up()
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)
