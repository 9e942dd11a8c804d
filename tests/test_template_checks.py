"""The field's own tools over every template: cdk-nag, cfn-lint, and byte-identical synth."""

from __future__ import annotations

import re
import subprocess
import sys

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from mlflow_platform.building import nag
from mlflow_platform.building.lint import LintPool, lint_template
from mlflow_platform.building.synth import render_json, synthesize
from mlflow_platform.paths import ROOT
from mlflow_platform.templates import TemplateDefinition, all_templates


def test_every_template_is_synthesized(synthesis):
    assert set(synthesis.templates) == {d.name for d in all_templates()}


def test_cdk_nag_runs_inside_synth_and_names_each_finding():
    """The fixture's synth passing means nothing: prove that a finding would stop it."""

    class OpenBucketStack(cdk.Stack):
        def __init__(self, scope, id, **kwargs):
            super().__init__(scope, id, **kwargs)
            s3.Bucket(self, "Plain")

    bad = TemplateDefinition(name="nag-probe", kind="environment", stack=OpenBucketStack)
    with pytest.raises(nag.NagFindingsError) as raised:
        synthesize([bad])
    rules = {f.rule for f in raised.value.findings}
    assert "AwsSolutions-S10" in rules  # no TLS-only policy
    assert "nag-probe/Plain/Resource" in str(raised.value)


def test_acknowledgements_need_a_specific_reason():
    stack = cdk.Stack(cdk.App(), "s")
    with pytest.raises(ValueError, match="specific reason"):
        nag.acknowledge(stack, "AwsSolutions-IAM5", "needed")


@pytest.mark.parametrize("name", [d.name for d in all_templates()])
def test_cfn_lint_finds_nothing(synthesis, name):
    findings = lint_template(render_json(synthesis.templates[name]), source=name)
    assert findings == [], "\n".join(map(str, findings))


def test_synth_is_byte_identical_across_processes(synthesis):
    """A fresh process writes exactly what this one synthesized: content hashes mean something."""
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "synth"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote build/synth/" in result.stdout
    for name, template in synthesis.templates.items():
        written = (ROOT / "build" / "synth" / f"{name}.template.json").read_text()
        assert written == render_json(template), name


def test_templates_are_pure_cloudformation(synthesis):
    for name, template in synthesis.templates.items():
        text = render_json(template)
        assert "BootstrapVersion" not in text, name
        assert "CheckBootstrapVersion" not in template.get("Rules", {}), name
        assert "cdk-assets" not in text and "AssetParameters" not in text, name
        # Dynamic references are CloudFormation; anything else in braces would be Jinja.
        assert re.findall(r"\{\{(?!resolve:)", text) == [], name
        assert "CDKMetadata" not in template["Resources"], name
        assert "aws:cdk:path" not in text, name


def test_the_lint_pool_returns_findings_and_lints_a_document_once():
    bad = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n      Colour: red\n"
    same_document = (
        '{"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Colour": "red"}}}}'
    )
    with LintPool(workers=1) as pool:
        futures = pool.submit({"bad.yaml": bad})
        assert pool.submit({"same.json": same_document}) == {}
        [findings] = [future.result(timeout=120) for future in futures.values()]
    assert ("bad.yaml", "E3002", 5) in [(f.source, f.rule, f.line) for f in findings]
