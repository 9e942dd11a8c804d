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


@pytest.fixture(scope="session")
def rendered(synthesis: Synthesis) -> dict:
    """Both templates rendered for both channels from the session's synthesis (no lint)."""
    from mlflow_platform import bundle
    from mlflow_platform.templates import all_templates

    definitions = all_templates()
    environments = bundle.compatible_environments(definitions)
    return {
        d.name: bundle.render_template(d, synthesis.templates[d.name], environments)
        for d in definitions
    }
