"""The templates this project publishes, and what kind of Proton template each one is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aws_cdk as cdk
from constructs import Construct

Kind = Literal["environment", "service"]


@dataclass(frozen=True, kw_only=True)
class TemplateDefinition:
    name: str
    kind: Kind
    stack: Callable[..., cdk.Stack]
    """Called as stack(scope, id, synthesizer=...)."""

    def build(self, scope: Construct, synthesizer: cdk.IStackSynthesizer) -> cdk.Stack:
        return self.stack(scope, self.name, synthesizer=synthesizer)


def all_templates() -> tuple[TemplateDefinition, ...]:
    # Imported here so that reading the registry does not import every stack's dependencies.
    from environment_template.stack import EnvironmentStack
    from service_template.stack import ServiceStack

    return (
        TemplateDefinition(name="mlflow-environment", kind="environment", stack=EnvironmentStack),
        TemplateDefinition(name="mlflow-sagemaker-api", kind="service", stack=ServiceStack),
    )
