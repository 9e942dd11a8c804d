"""Verify rendered templates with the field's own tools, before anything is written or published.

- example specs: validated against the bundle's schema, rendered with Jinja and StrictUndefined
  offering only the namespaces Proton gives that template kind, then cfn-lint on the result;
- Service Catalog templates: cfn-lint;
- the contract: the service uses only outputs and SSM parameters the environment provides;
- Proton's bundle limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jsonschema
import yaml

from mlflow_platform import contract, yaml_io
from mlflow_platform.building.render import INFRASTRUCTURE_DIR, TEMPLATE_FILE, ProtonBundle
from mlflow_platform.errors import PlatformError
from mlflow_platform.templates import Kind

SPEC_KIND: Mapping[Kind, str] = {"environment": "EnvironmentSpec", "service": "ServiceSpec"}
MAX_FILES = 10
MAX_SCHEMA_OR_MANIFEST = 50 * 1024
MAX_OTHER_FILE = 200 * 1024
MAX_ARCHIVE = 5 * 1024 * 1024


class VerificationError(PlatformError):
    """Everything that failed, each line naming its file."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, kw_only=True)
class RenderedSpec:
    spec: str
    instance: str | None
    text: str


def input_body(bundle: ProtonBundle) -> dict:
    document = yaml_io.load(bundle.files["schema/schema.yaml"])["schema"]
    type_name = next(v for k, v in document.items() if k.endswith("_input_type"))
    return {**document["types"][type_name], "additionalProperties": False}


def _rule(error: jsonschema.ValidationError) -> str:
    match error.validator:
        case "enum":
            return f"must be one of {error.validator_value}"
        case "pattern":
            return f"must match the pattern {error.validator_value}"
        case "type":
            return f"must be a {error.validator_value}"
        case "minimum":
            return f"must be at least {error.validator_value}"
        case "maximum":
            return f"must be at most {error.validator_value}"
        case "additionalProperties":
            known = ", ".join(sorted(error.schema.get("properties", {})))
            return f"is not an input of this template (inputs: {known})"
        case "required":
            return "is required and missing"
        case _:
            return error.message


def spec_problems(spec_file: str, values: Mapping[str, object], body: dict) -> list[str]:
    problems = []
    validator = jsonschema.Draft4Validator(body)
    for error in sorted(validator.iter_errors(dict(values)), key=lambda e: list(e.path)):
        if error.validator == "additionalProperties":
            known = set(body.get("properties", {}))
            for name in sorted(set(values) - known):
                problems.append(f"{spec_file}: input {name} = {values[name]!r} {_rule(error)}")
        elif error.validator == "required":
            for name in error.validator_value:
                if name not in values:
                    problems.append(f"{spec_file}: input {name} {_rule(error)}")
        else:
            name = ".".join(str(p) for p in error.path) or "(spec)"
            problems.append(f"{spec_file}: input {name} = {error.instance!r} {_rule(error)}")
    return problems


def _with_defaults(values: Mapping[str, object], body: dict) -> dict:
    merged = {
        name: prop["default"] for name, prop in body["properties"].items() if "default" in prop
    }
    merged.update(values)
    return merged


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def render_specs(
    *, kind: Kind, bundle: ProtonBundle, spec_files: list[Path], root: Path
) -> list[RenderedSpec]:
    """Every example spec rendered as Proton would; raises VerificationError on any problem."""
    body = input_body(bundle)
    template = _jinja().from_string(bundle.files[f"{INFRASTRUCTURE_DIR[kind]}/{TEMPLATE_FILE}"])
    rendered: list[RenderedSpec] = []
    problems: list[str] = []
    for path in spec_files:
        name = path.relative_to(root).as_posix()
        try:
            document = yaml_io.load(path.read_text()) or {}
        except yaml.YAMLError as error:
            problems.append(f"{name}: not YAML: {error}")
            continue
        if document.get("proton") != SPEC_KIND[kind]:
            problems.append(
                f"{name}: proton must be {SPEC_KIND[kind]}, not {document.get('proton')!r}"
            )
            continue
        for instance, values in _instances(kind, document):
            where = f"{name}" if instance is None else f"{name} (instance {instance})"
            found = spec_problems(where, values, body)
            if found:
                problems += found
                continue
            inputs = _with_defaults(values, body)
            context: dict[str, object]
            if kind == "environment":
                context = {"environment": {"name": "mlflow", "inputs": inputs}}
            else:
                context = {
                    "service": {"name": "mlflow-api"},
                    "service_instance": {"name": instance, "inputs": inputs},
                    "environment": {
                        "outputs": {v.name: v.example for v in contract.ENVIRONMENT_OUTPUTS}
                    },
                }
            try:
                text = template.render(context)
            except jinja2.UndefinedError as error:
                problems.append(f"{where}: the template uses {error.message}")
                continue
            rendered.append(RenderedSpec(spec=name, instance=instance, text=text))
    if problems:
        raise VerificationError(problems)
    return rendered


def _instances(kind: Kind, document: Mapping) -> list[tuple[str | None, dict]]:
    if kind == "environment":
        return [(None, dict(document.get("spec") or {}))]
    return [
        (str(instance.get("name")), dict(instance.get("spec") or {}))
        for instance in document.get("instances") or []
    ]


def contract_problems(
    *, environment: Mapping, service_proton_text: str, service_catalog: Mapping
) -> list[str]:
    """What the service uses that the environment does not provide."""
    problems = []
    outputs = set(environment.get("Outputs", {}))
    for name in sorted(set(re.findall(r"environment\.outputs\.(\w+)", service_proton_text))):
        if name not in outputs:
            problems.append(f"the service uses environment.outputs.{name}; no such output")
    written = json.dumps(
        [p["Properties"]["Name"] for p in environment["Resources"].values()
         if p["Type"] == "AWS::SSM::Parameter"]
    )  # fmt: skip
    for key in sorted(set(contract.SSM_REFERENCE.findall(json.dumps(service_catalog)))):
        if f"/{key}" not in written:
            problems.append(f"the service reads SSM parameter .../{key}; the environment "
                            "writes no such parameter")  # fmt: skip
    return problems


def limit_problems(name: str, bundle: ProtonBundle, archive_size: int) -> list[str]:
    problems = []
    if len(bundle.files) > MAX_FILES:
        problems.append(f"{name}: {len(bundle.files)} files; Proton allows {MAX_FILES}")
    for path, text in bundle.files.items():
        size = len(text.encode())
        limit = (
            MAX_SCHEMA_OR_MANIFEST
            if path.endswith(("schema.yaml", "manifest.yaml"))
            else MAX_OTHER_FILE
        )
        if size > limit:
            problems.append(f"{name}/{path}: {size} bytes; Proton allows {limit}")
    if archive_size > MAX_ARCHIVE:
        problems.append(f"{name}: archive of {archive_size} bytes; Proton allows {MAX_ARCHIVE}")
    return problems
