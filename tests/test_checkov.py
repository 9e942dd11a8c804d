"""checkov's CloudFormation checks over every template a platform team publishes: both Service
Catalog templates and every Proton render of the example specs.

checkov pins packages the project also uses, so it lives in its own virtual environment,
`.venv-checkov` at the repository root (`.ci/run` creates it). Without it these tests skip,
saying so, unless MLFLOW_PLATFORM_REQUIRE_CHECKOV is set (as CI sets it), when they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mlflow_platform.building import bundle, checkov_skips, verify
from mlflow_platform.paths import ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
REQUIRE = "MLFLOW_PLATFORM_REQUIRE_CHECKOV"


def _checkov() -> Path:
    if CHECKOV.is_file():
        return CHECKOV
    message = (
        f"checkov is not installed at {CHECKOV.relative_to(ROOT)}; create it with "
        "`python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov`"
    )
    if os.environ.get(REQUIRE):
        pytest.fail(f"{message} ({REQUIRE} is set)")
    pytest.skip(message)


def _scan(directory: Path) -> list[dict]:
    """checkov's JSON report of every template in `directory`, offline."""
    result = subprocess.run(
        [str(_checkov()), "--directory", str(directory), "--framework", "cloudformation",
         "--output", "json", "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    # 0: no failed check; 1: failed checks. Anything else is checkov itself failing.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def _resource_type(check: dict) -> str:
    return check["resource"].split(".", 1)[0]


@pytest.fixture(scope="module")
def templates(rendered, tmp_path_factory) -> dict[str, str]:
    """File name -> text: each Service Catalog template, and each spec rendered for Proton."""
    texts: dict[str, str] = {}
    for name, item in rendered.items():
        texts[f"servicecatalog-{name}.yaml"] = item.service_catalog
        for spec in verify.render_specs(
            kind=item.definition.kind,
            bundle=item.bundle,
            spec_files=bundle.spec_files(name),
            root=ROOT,
        ):
            label = Path(spec.spec).stem + (f"-{spec.instance}" if spec.instance else "")
            texts[f"proton-{name}-{label}.yaml"] = spec.text
    return texts


@pytest.fixture(scope="module")
def scan(templates, tmp_path_factory) -> list[dict]:
    directory = tmp_path_factory.mktemp("checkov")
    for file_name, text in templates.items():
        (directory / file_name).write_text(text)
    return _scan(directory)


def test_every_template_is_scanned(scan, templates):
    """Two Service Catalog templates and each example spec (two per template)."""
    assert len(templates) == 2 + sum(
        len(bundle.spec_files(n)) for n in ("mlflow-environment", "mlflow-sagemaker-api")
    )
    [report] = scan
    assert report["summary"]["parsing_errors"] == 0
    scanned = {
        Path(c["file_path"]).name
        for c in report["results"]["passed_checks"] + report["results"]["failed_checks"]
    }
    assert scanned == set(templates)


def test_checkov_finds_nothing_the_platform_has_not_accepted(scan):
    [report] = scan
    failed = [
        f"{Path(c['file_path']).name}: {c['check_id']} on {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)


def test_each_accepted_finding_says_why_on_its_resource(scan):
    [report] = scan
    skipped = report["results"]["skipped_checks"]
    assert skipped, "the platform accepts some findings: they are skipped, not absent"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment") or "") >= 40, check["check_id"]


def test_a_finding_without_a_skip_fails(tmp_path):
    """The scan above could fail: the same listener without its skip is a finding."""
    template = {
        "Resources": {
            "Listener": {
                "Type": "AWS::ElasticLoadBalancingV2::Listener",
                "Properties": {
                    "LoadBalancerArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                    "loadbalancer/app/mlflow/0123456789abcdef",
                    "Port": 80,
                    "Protocol": "HTTP",
                    "DefaultActions": [{"Type": "fixed-response",
                                        "FixedResponseConfig": {"StatusCode": "404"}}],
                },
            }
        }
    }  # fmt: skip
    (tmp_path / "plain.json").write_text(json.dumps(template))
    [report] = _scan(tmp_path)
    assert "CKV_AWS_2" in {c["check_id"] for c in report["results"]["failed_checks"]}
    template["Resources"]["Listener"]["Metadata"] = {
        checkov_skips.METADATA_KEY: {"skip": [{"id": "CKV_AWS_2", "comment": "accepted"}]}
    }
    (tmp_path / "plain.json").write_text(json.dumps(template))
    [report] = _scan(tmp_path)
    assert "CKV_AWS_2" not in {c["check_id"] for c in report["results"]["failed_checks"]}
    assert "CKV_AWS_2" in {c["check_id"] for c in report["results"]["skipped_checks"]}


def test_a_skip_needs_a_specific_reason_and_names_a_check_once():
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    queue = sqs.CfnQueue(cdk.Stack(cdk.App(), "s"), "Queue")
    with pytest.raises(ValueError, match="specific reason"):
        checkov_skips.skip(queue, "CKV_AWS_27", "fine")
    reason = "A queue of test messages only, never holding anything that needs a key"
    checkov_skips.skip(queue, "CKV_AWS_27", reason)
    with pytest.raises(ValueError, match="already skipped"):
        checkov_skips.skip(queue, "CKV_AWS_27", reason)
    assert queue.get_metadata("checkov") == {"skip": [{"id": "CKV_AWS_27", "comment": reason}]}
