"""Render a synthesized template for each channel: Proton bundle files and Service Catalog.

Service Catalog takes the synthesized template as it is: native parameters, and the service
reads the environment's contract from SSM by environment name. For Proton, in this order:
1. each contract read (an SSM dynamic reference) becomes `{{ environment.outputs.<Name> }}`;
2. every other `{{`, such as a dynamic reference, is wrapped in `{% raw %}` so Jinja keeps it;
3. each parameter's Default becomes its Jinja binding, so `Ref`s stay native and
   CloudFormation still type-checks the rendered value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow_platform import contract, yaml_io
from mlflow_platform.building.proton_schema import PROVIDED, input_name, schema
from mlflow_platform.errors import PlatformError
from mlflow_platform.templates import Kind

INPUTS_NAMESPACE: Mapping[Kind, str] = {
    "environment": "environment.inputs",
    "service": "service_instance.inputs",
}
INFRASTRUCTURE_DIR: Mapping[Kind, str] = {
    "environment": "infrastructure",
    "service": "instance_infrastructure",
}
TEMPLATE_FILE = "cloudformation.yaml"


class RenderError(PlatformError):
    pass


@dataclass(frozen=True, kw_only=True)
class ProtonBundle:
    """Files of one bundle, by path relative to the bundle's root (`v<major>/`)."""

    files: dict[str, str]


def to_yaml(document: object) -> str:
    return yaml_io.dump(document)


def proton_cloudformation(template: Mapping[str, object], *, kind: Kind) -> dict:
    rendered = _escape_jinja(_bind_contract(copy.deepcopy(dict(template))))
    assert isinstance(rendered, dict)  # both walks keep each node's type
    parameters: dict[str, dict] = rendered.get("Parameters", {})
    for name, spec in parameters.items():
        binding = PROVIDED[kind].get(name, f"{INPUTS_NAMESPACE[kind]}.{input_name(name)}")
        spec["Default"] = f"{{{{ {binding} }}}}"
    return rendered


def _bind_contract(node: object) -> object:
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            match = contract.SSM_REFERENCE.fullmatch(node["Fn::Sub"])
            if match:
                value = contract.BY_SSM_KEY.get(match.group(1))
                if value is None:
                    raise RenderError(
                        f"the template reads contract value {match.group(1)!r}, which the "
                        f"environment does not publish (it publishes "
                        f"{sorted(contract.BY_SSM_KEY)})"
                    )
                return f"{{{{ environment.outputs.{value.name} }}}}"
        return {key: _bind_contract(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_bind_contract(value) for value in node]
    return node


def _escape_jinja(node: object) -> object:
    if isinstance(node, dict):
        return {key: _escape_jinja(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_escape_jinja(value) for value in node]
    if isinstance(node, str) and ("{{" in node or "{%" in node) and not _is_binding(node):
        return "{% raw %}" + node + "{% endraw %}"
    return node


def _is_binding(text: str) -> bool:
    """A binding that _bind_contract wrote: the only Jinja this module puts in a value."""
    return (
        text.startswith("{{ environment.outputs.")
        and text.endswith(" }}")
        and text.count("{{") == 1
    )


MANIFEST_KEY = "infrastructure"
"""The manifest's top key in every folder, `instance_infrastructure/` too (AWS Proton User Guide,
"Wrap up template files"; AWS's sample service templates)."""


def manifest() -> dict:
    return {
        MANIFEST_KEY: {
            "templates": [
                {
                    "file": TEMPLATE_FILE,
                    "rendering_engine": "jinja",
                    "template_language": "cloudformation",
                }
            ]
        }
    }


def proton_infrastructure(template: Mapping[str, object], *, kind: Kind) -> ProtonBundle:
    """Schema, manifest and CloudFormation: all a spec needs to render, and all cfn-lint sees.

    Separate from the registration so that a service's specs render and lint before the
    environment major it names is known.
    """
    infrastructure = INFRASTRUCTURE_DIR[kind]
    return ProtonBundle(
        files={
            "schema/schema.yaml": to_yaml(schema(template, kind=kind)),
            f"{infrastructure}/manifest.yaml": to_yaml(manifest()),
            f"{infrastructure}/{TEMPLATE_FILE}": to_yaml(
                proton_cloudformation(template, kind=kind)
            ),
        }
    )


def with_registration(
    infrastructure: ProtonBundle, *, kind: Kind, compatible_environments: tuple[str, ...] = ()
) -> ProtonBundle:
    """The whole bundle: a service's also names the `name:major` environments it runs in."""
    if kind != "service":
        return infrastructure
    if not compatible_environments:
        raise RenderError("a service template needs at least one compatible environment")
    registration = to_yaml({"compatible_environments": list(compatible_environments)})
    return ProtonBundle(files={**infrastructure.files, ".template-registration.yaml": registration})


def service_catalog_template(template: Mapping[str, object]) -> str:
    return to_yaml(template)
