"""Synthesize every template into pure CloudFormation, in one CDK app and one jsii process.

BootstraplessSynthesizer: neither Proton nor Service Catalog can publish CDK assets or check a
bootstrap version, so the templates carry neither. Path metadata and version reporting are off,
so the same source gives byte-identical templates and content hashes mean something.
cdk-nag's AwsSolutions pack runs inside the same synth.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from mlflow_platform.building.nag import NagFindingsError, findings_from_report
from mlflow_platform.templates import TemplateDefinition, all_templates

CONTEXT = {
    "aws:cdk:enable-path-metadata": False,
    "aws:cdk:disable-version-reporting": True,
    "aws:cdk:disable-asset-staging": True,
    "@aws-cdk/core:validationReportJson": True,
}


@dataclass(frozen=True)
class Synthesis:
    templates: dict[str, dict]
    """Template name -> CloudFormation template."""


def synthesize(definitions: Sequence[TemplateDefinition] | None = None) -> Synthesis:
    """Raises NagFindingsError, naming each finding, unless cdk-nag finds nothing unacknowledged."""
    definitions = tuple(definitions or all_templates())
    with tempfile.TemporaryDirectory(prefix="mlflow-platform-synth-") as outdir:
        app = cdk.App(analytics_reporting=False, context=dict(CONTEXT), outdir=outdir)
        stacks = {d.name: d.build(app, cdk.BootstraplessSynthesizer()) for d in definitions}
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        try:
            assembly = app.synth()
        except RuntimeError as error:
            findings = findings_from_report(Path(outdir))
            if findings:
                raise NagFindingsError(findings) from None
            raise error
        return Synthesis(
            templates={
                name: without_redundant_depends_on(
                    assembly.get_stack_by_name(stack.stack_name).template
                )
                for name, stack in stacks.items()
            }
        )


def without_redundant_depends_on(template: dict) -> dict:
    """Drop DependsOn entries that a Ref or GetAtt already implies (cfn-lint W3005).

    CDK adds them when an L2 construct depends on another construct it also references.
    """
    for resource in template.get("Resources", {}).values():
        depends = resource.get("DependsOn")
        if not depends:
            continue
        depends = [depends] if isinstance(depends, str) else depends
        implied = _references(resource.get("Properties", {}))
        kept = [d for d in depends if d not in implied]
        if kept:
            resource["DependsOn"] = kept
        else:
            del resource["DependsOn"]
    return template


def _references(node: object) -> set[str]:
    if isinstance(node, dict):
        found: set[str] = set()
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            found |= _references(value)
        return found
    if isinstance(node, list):
        return set().union(*(_references(v) for v in node)) if node else set()
    return set()


def render_json(template: dict) -> str:
    return json.dumps(template, indent=1, sort_keys=False) + "\n"


def write(synthesis: Synthesis, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, template in synthesis.templates.items():
        path = directory / f"{name}.template.json"
        path.write_text(render_json(template))
        written.append(path)
    return written
