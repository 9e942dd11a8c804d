"""The field's own tools over every template: cdk-nag, cfn-lint, and byte-identical synth."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from mlflow_platform import nag, node_code_cache, process
from mlflow_platform.lint import LintPool, lint_template
from mlflow_platform.paths import ROOT
from mlflow_platform.synth import render_json, synthesize
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


def test_synth_is_byte_identical_across_processes(synthesis, tmp_path):
    """A fresh process writes exactly what this one synthesized: with aws-cdk-lib compiled from
    source, then from the Node code cache that first run filled, which the second run keeps."""
    cache = tmp_path / "node-code-cache"
    environ = {**os.environ, node_code_cache.VARIABLE: str(cache)}
    entries: list[dict[str, int]] = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "synth"],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "wrote build/synth/" in result.stdout
        for name, template in synthesis.templates.items():
            written = (ROOT / "build" / "synth" / f"{name}.template.json").read_text()
            assert written == render_json(template), name
        entries.append({p.name: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()})
    assert len(entries[0]) > 100, "aws-cdk-lib's modules are in the code cache"
    assert entries[1] == entries[0], "the second synth compiled nothing anew"


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


def test_an_idle_lint_worker_takes_the_largest_template_waiting():
    def queues(count: int) -> str:
        return json.dumps(
            {"Resources": {f"Queue{i}": {"Type": "AWS::SQS::Queue"} for i in range(count)}}
        )

    finished: list[str] = []
    with LintPool(workers=1) as pool:
        futures = pool.submit({"small": queues(1), "large": queues(12), "medium": queues(4)})
        for source, future in futures.items():
            future.add_done_callback(lambda _, source=source: finished.append(source))
        results = [f.result(timeout=120) for f in futures.values()]
    assert [{f.source for f in findings} for findings in results] == [
        {"small"},
        {"large"},
        {"medium"},
    ], "every queue lacks a deletion policy (I3011): each template's findings come back"
    assert finished == ["large", "medium", "small"]


def test_lint_workers_keep_cfn_lint_out_of_garbage_collection():
    """What the fork server loaded is frozen, and collections come less often, in every
    worker: their collections no longer walk cfn-lint's rules and schemas."""
    with LintPool(workers=1) as pool:
        executor = pool._ready()
        frozen = executor.submit(gc.get_freeze_count).result(timeout=120)
        threshold = executor.submit(gc.get_threshold).result(timeout=120)
        enabled = executor.submit(gc.isenabled).result(timeout=120)
    assert frozen > 100_000
    assert threshold[0] > gc.get_threshold()[0]
    assert enabled


def test_cyclic_gc_is_off_only_inside_the_batch_block():
    assert gc.isenabled()
    with process.without_cyclic_gc():
        assert not gc.isenabled()
        survivor = [object()]
        frozen_inside = gc.get_freeze_count()
    assert gc.isenabled()
    # What the block left alive is out of the collector's walks from now on.
    assert gc.get_freeze_count() > frozen_inside
    assert not any(o is survivor for o in gc.get_objects())
    with pytest.raises(RuntimeError), process.without_cyclic_gc():
        raise RuntimeError("synth failed")
    assert gc.isenabled()


def test_listing_the_templates_loads_no_stack():
    """Each template's modules load when it is built: the service synthesizes (and its lints
    start) before the environment's modules are imported."""
    code = (
        "import sys\n"
        "from mlflow_platform.templates import all_templates\n"
        "names = [d.name for d in all_templates()]\n"
        "assert names == ['mlflow-environment', 'mlflow-sagemaker-api'], names\n"
        "loaded = [m for m in ('aws_cdk', 'environment_template.stack', 'service_template.stack')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
