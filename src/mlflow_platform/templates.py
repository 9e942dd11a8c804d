"""The templates this project publishes, and what kind of Proton template each one is."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mlflow_platform.errors import PlatformError

if TYPE_CHECKING:  # reading the registry must not start CDK
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


# Every template by name and kind, environments first (a service names their majors). Tasks
# that only publish or list read this, without importing CDK.
TEMPLATES: tuple[tuple[str, Kind], ...] = (
    ("mlflow-environment", "environment"),
    ("mlflow-sagemaker-api", "service"),
)


def named(names: list[str] | None = None) -> dict[str, Kind]:
    """--template values, checked; every template when there are none."""
    known = dict(TEMPLATES)
    for name in names or []:
        if name not in known:
            raise PlatformError(f"--template {name!r}: must be one of {', '.join(known)}")
    return {name: kind for name, kind in TEMPLATES if not names or name in names}


def _imported_when_built(module: str, name: str) -> Callable[..., cdk.Stack]:
    """A stack class imported only when the stack is built: listing the templates loads no CDK,
    and `invoke bundle` synthesizes the service before the environment's modules are loaded."""

    def build(scope: Construct, id: str, **kwargs: object) -> cdk.Stack:
        return getattr(importlib.import_module(module), name)(scope, id, **kwargs)

    return build


_STACKS = {
    "mlflow-environment": _imported_when_built("environment_template.stack", "EnvironmentStack"),
    "mlflow-sagemaker-api": _imported_when_built("service_template.stack", "ServiceStack"),
}


def all_templates() -> tuple[TemplateDefinition, ...]:
    return tuple(
        TemplateDefinition(name=name, kind=kind, stack=_STACKS[name]) for name, kind in TEMPLATES
    )
