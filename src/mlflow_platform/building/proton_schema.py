"""The Proton schema of a template, derived from its CloudFormation parameters.

Nothing is declared a second time: each parameter's type, default, description and constraints
become one OpenAPI 3.0 property. Parameters that Proton fills itself (PROVIDED) are not inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlflow_platform import contract
from mlflow_platform.templates import Kind

# Parameter -> the Proton value it is bound to instead of an input, by template kind.
PROVIDED: Mapping[Kind, Mapping[str, str]] = {
    "environment": {"EnvironmentName": "environment.name"},
    "service": {
        "EnvironmentName": f"environment.outputs.{contract.ENVIRONMENT_NAME.name}",
        "TlsServerName": f"environment.outputs.{contract.TLS_SERVER_NAME.name}",
    },
}
INPUT_TYPE = {"environment": "EnvironmentInput", "service": "ServiceInput"}
_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def input_name(parameter: str) -> str:
    """VpcCidr -> vpc_cidr: Proton inputs are snake_case by convention."""
    return _WORD.sub("_", parameter).lower()


def _number(value: object) -> int | float:
    number = float(str(value))
    return int(number) if number.is_integer() else number


def labels(template: Mapping[str, Any]) -> dict[str, str]:
    """Each input's console label, from the template's AWS::CloudFormation::Interface."""
    interface = (template.get("Metadata") or {}).get("AWS::CloudFormation::Interface") or {}
    return {name: label["default"] for name, label in interface.get("ParameterLabels", {}).items()}


def _property(spec: Mapping[str, Any], title: str | None) -> dict[str, object]:
    numeric = spec["Type"] == "Number"
    convert = _number if numeric else str
    prop: dict[str, object] = {"type": "number" if numeric else "string"}
    if title:
        prop["title"] = title
    prop["description"] = spec["Description"]
    if "Default" in spec:
        prop["default"] = convert(spec["Default"])
    if "AllowedValues" in spec:
        prop["enum"] = [convert(v) for v in spec["AllowedValues"]]
    if "AllowedPattern" in spec:
        prop["pattern"] = spec["AllowedPattern"]
    if "MinValue" in spec:
        prop["minimum"] = _number(spec["MinValue"])
    if "MaxValue" in spec:
        prop["maximum"] = _number(spec["MaxValue"])
    if "MinLength" in spec:
        prop["minLength"] = int(str(spec["MinLength"]))
    if "MaxLength" in spec:
        prop["maxLength"] = int(str(spec["MaxLength"]))
    return prop


def schema(template: Mapping[str, object], *, kind: Kind) -> dict[str, object]:
    parameters: Mapping[str, Mapping[str, object]] = template.get("Parameters", {})  # type: ignore[assignment]
    titles = labels(template)
    inputs = {
        input_name(name): _property(spec, titles.get(name))
        for name, spec in parameters.items()
        if name not in PROVIDED[kind]
    }
    type_name = INPUT_TYPE[kind]
    body: dict[str, object] = {
        "type": "object",
        "description": str(template.get("Description", "")),
        "properties": inputs,
    }
    required = sorted(name for name, prop in inputs.items() if "default" not in prop)
    if required:
        body["required"] = required
    return {
        "schema": {
            "format": {"openapi": "3.0.0"},
            f"{kind}_input_type": type_name,
            "types": {type_name: body},
        }
    }
