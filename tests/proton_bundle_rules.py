"""What AWS Proton checks when it registers a template version, from AWS's own published sources.

Written from the documentation, not from this project's renderer, so that a bundle the renderer
gets wrong fails here as it would fail in Proton. The fake (aws_fake.py) answers a registration
that breaks a rule with REGISTRATION_FAILED and these messages.

Sources:
- [BUNDLES] AWS Proton User Guide, "Template bundles" and "Wrap up template files for AWS Proton",
  https://docs.aws.amazon.com/proton/latest/userguide/ag-template-authoring.html#ag-template-bundles
  and https://docs.aws.amazon.com/proton/latest/userguide/ag-wrap-up.html: an environment bundle
  is `schema/schema.yaml` and `infrastructure/manifest.yaml` with its templates; a service
  bundle is `schema/schema.yaml`, `instance_infrastructure/` and, optionally,
  `pipeline_infrastructure/`, each folder with a `manifest.yaml` whose top key is
  `infrastructure:` and whose `templates` list `file`, `rendering_engine` and
  `template_language`. AWS's sample bundles (aws-samples/aws-proton-cloudformation-sample-templates,
  every `instance_infrastructure/manifest.yaml`) begin with `infrastructure:` too.
- [PIPELINE] botocore's Proton model, CreateServiceTemplateInput.pipelineProvisioning: "By
  default, Proton provides a service pipeline for your service. When this parameter is included,
  it indicates that an Proton service pipeline isn't provided ... After it's included, it can't
  be changed." The user guide's "Template bundles": a service template bundle without
  `pipeline_infrastructure/` needs a template created with `pipelineProvisioning:
  CUSTOMER_MANAGED`.
- [SCHEMA] AWS Proton User Guide, "Schema files": `schema.format.openapi: "3.0.0"`, an
  `environment_input_type` (environment) or `service_input_type` (service, with
  `pipeline_input_type` only when there is a pipeline) naming an object type under `types`.
- [LIMITS] AWS Proton User Guide, "AWS Proton quotas": 10 files a bundle; schema and manifest
  files 50 KB at most (other files 200 KB); 5 MB an archive.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

MAX_FILES = 10
MAX_SCHEMA_OR_MANIFEST = 50 * 1024
MAX_OTHER = 200 * 1024
ENGINES = {"cloudformation": {"jinja"}, "terraform": {"hcl"}}


def problems(
    kind: str, files: Mapping[str, str], *, pipeline_provisioning: str | None = None
) -> list[str]:
    """Why Proton would refuse this bundle; empty when it would register."""
    found: list[str] = []
    if len(files) > MAX_FILES:
        found.append(f"{len(files)} files in the bundle; at most {MAX_FILES} [LIMITS]")
    for path, text in files.items():
        limit = (
            MAX_SCHEMA_OR_MANIFEST if path.endswith(("schema.yaml", "manifest.yaml")) else MAX_OTHER
        )
        if len(text.encode()) > limit:
            found.append(f"{path} is larger than {limit} bytes [LIMITS]")
    folders = ["infrastructure"] if kind == "environment" else ["instance_infrastructure"]
    has_pipeline = any(p.startswith("pipeline_infrastructure/") for p in files)
    if kind == "service":
        if has_pipeline:
            folders.append("pipeline_infrastructure")
        elif pipeline_provisioning != "CUSTOMER_MANAGED":
            found.append(
                "the bundle has no pipeline_infrastructure, so the service template must be "
                "created with pipelineProvisioning CUSTOMER_MANAGED [PIPELINE]"
            )
    for folder in folders:
        found += _manifest_problems(folder, files)
    found += _schema_problems(kind, files.get("schema/schema.yaml"), has_pipeline)
    return found


def _manifest_problems(folder: str, files: Mapping[str, str]) -> list[str]:
    path = f"{folder}/manifest.yaml"
    if path not in files:
        return [f"{path} is missing [BUNDLES]"]
    document = yaml.safe_load(files[path])
    if not isinstance(document, dict) or set(document) != {"infrastructure"}:
        keys = sorted(document) if isinstance(document, dict) else document
        return [f"{path}: the top key must be infrastructure, not {keys} [BUNDLES]"]
    templates = (document["infrastructure"] or {}).get("templates")
    if not isinstance(templates, list) or not templates:
        return [f"{path}: infrastructure.templates must list the template files [BUNDLES]"]
    found = []
    for entry in templates:
        language, engine = entry.get("template_language"), entry.get("rendering_engine")
        if engine not in ENGINES.get(language, set()):
            found.append(f"{path}: {language} rendered with {engine} is not supported [BUNDLES]")
        if f"{folder}/{entry.get('file')}" not in files:
            found.append(f"{path}: {entry.get('file')} is not in {folder}/ [BUNDLES]")
    return found


def _schema_problems(kind: str, text: str | None, has_pipeline: bool) -> list[str]:
    if text is None:
        return ["schema/schema.yaml is missing [BUNDLES]"]
    schema = (yaml.safe_load(text) or {}).get("schema") or {}
    found = []
    if (schema.get("format") or {}).get("openapi") != "3.0.0":
        found.append('schema/schema.yaml: schema.format.openapi must be "3.0.0" [SCHEMA]')
    required = ["environment_input_type"] if kind == "environment" else ["service_input_type"]
    if kind == "service" and has_pipeline:
        required.append("pipeline_input_type")
    types = schema.get("types") or {}
    for key in required:
        name = schema.get(key)
        if not isinstance(types.get(name), dict) or types[name].get("type") != "object":
            found.append(f"schema/schema.yaml: {key} must name an object type in types [SCHEMA]")
    return found
