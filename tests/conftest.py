from __future__ import annotations

import pytest

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
