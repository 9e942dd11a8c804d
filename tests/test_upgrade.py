"""`invoke outdated` and `invoke upgrade` against Proton and Service Catalog (botocore's models)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml
from publishing import ENVIRONMENT, SERVICE, all_ok, run, with_optional_input, write_tree

from mlflow_platform.errors import PlatformError
from mlflow_platform.paths import ROOT
from mlflow_platform.templates import TEMPLATES
from mlflow_platform.upgrading import deployed, select, upgrade

ALL = dict(TEMPLATES)
BOTH = ("proton", "servicecatalog")


@pytest.fixture
def deployments(world, config, tmp_path, sources):
    """1.0 published and deployed everywhere, then 1.1 of the environment published."""
    all_ok(run(world, config, write_tree(tmp_path / "v10", sources))[0])
    fake = world.fake
    fake.add_environment("prod", ENVIRONMENT, "1", "0")
    fake.add_service_instance("team-a", "api", "prod", SERVICE, "1", "0")
    fake.add_provisioned("prod-platform", ENVIRONMENT, "1.0")
    fake.add_provisioned("team-a-api", SERVICE, "1.0")
    changed = {**sources, ENVIRONMENT: with_optional_input(sources[ENVIRONMENT])}
    all_ok(run(world, config, write_tree(tmp_path / "v11", changed))[0])
    return world


def test_outdated_lists_what_runs_behind_the_newest_version(deployments):
    listing = deployed(deployments.clients(), ALL, BOTH)
    assert listing.errors == []
    found = {(d.channel, d.kind, d.name): d for d in listing.outdated}
    assert set(found) == {
        ("proton", "environment", "prod"),
        ("servicecatalog", "provisioned product", "prod-platform"),
    }
    assert all(d.current == "1.0" and d.minor_upgrade == "1.1" for d in found.values())
    assert all(d.major_upgrade is None for d in found.values())
    everything = {d.name for d in listing.deployed}
    assert everything == {"prod", "api", "prod-platform", "team-a-api"}


def test_upgrade_moves_a_proton_environment_to_the_newest_minor(deployments):
    clients = deployments.clients()
    items = select(deployed(clients, ALL, ("proton",)).deployed, env="prod")
    lines: list[str] = []
    (result,) = upgrade(clients, items, progress=lines.append, poll_seconds=0)
    assert (result.status, result.message) == ("upgraded", "1.0 -> 1.1")
    environment = deployments.fake.environments["prod"]
    assert (environment["templateMajorVersion"], environment["templateMinorVersion"]) == ("1", "1")
    assert environment["deploymentStatus"] == "SUCCEEDED"
    assert lines and "prod: 1.0 -> 1.1" in lines[0]
    assert deployed(deployments.clients(), ALL, ("proton",)).outdated == []


def test_a_service_catalog_upgrade_keeps_every_previous_parameter_value(deployments, sources):
    clients = deployments.clients()
    items = select(deployed(clients, ALL, ("servicecatalog",)).deployed, env="prod-platform")
    (result,) = upgrade(clients, items, poll_seconds=0)
    assert result.status == "upgraded", result.message
    product = deployments.fake.provisioned["prod-platform"]
    assert product["ProvisioningArtifactName"] == "1.1"
    kept = {p["Key"] for p in product["_parameters"] if p["UsePreviousValue"]}
    # Every input of 1.0 keeps its value; the new optional input takes its default.
    assert kept == set(sources[ENVIRONMENT]["Parameters"])
    assert "ExtraTag" not in kept


def test_a_major_upgrade_only_on_request(deployments, config, tmp_path, sources):
    breaking = copy.deepcopy(sources[ENVIRONMENT])
    breaking["Parameters"]["LogRetentionDays"]["AllowedValues"] = ["30", "90"]
    changed = {**sources, ENVIRONMENT: with_optional_input(sources[ENVIRONMENT])}
    write_tree(tmp_path / "v2", changed)
    paths = write_tree(tmp_path / "v2", {**sources, ENVIRONMENT: breaking}, {ENVIRONMENT: 2})
    all_ok(run(deployments, config, paths, targets=("proton",))[0])
    clients = deployments.clients()
    items = select(deployed(clients, ALL, ("proton",)).deployed, env="prod")
    assert (items[0].minor_upgrade, items[0].major_upgrade) == ("1.1", "2.0")
    (minor,) = upgrade(clients, items, poll_seconds=0)
    assert minor.status == "upgraded" and minor.target == "1.1"
    items = select(deployed(clients, ALL, ("proton",)).deployed, env="prod")
    (skipped,) = upgrade(clients, items, poll_seconds=0)
    assert skipped.status == "skipped"
    assert skipped.message == "major 2.0 is available: pass --major to move to it"
    (moved,) = upgrade(clients, items, major=True, poll_seconds=0)
    assert (moved.status, moved.message) == ("upgraded", "1.1 -> 2.0")
    assert deployments.fake.environments["prod"]["templateMajorVersion"] == "2"


def test_dry_run_changes_nothing(deployments):
    clients = deployments.clients()
    deployments.fake.calls.clear()
    items = select(deployed(clients, ALL, BOTH).deployed, every=True)
    results = upgrade(clients, items, dry_run=True)
    assert {(r.item.name, r.status) for r in results} == {
        ("prod", "planned"),
        ("prod-platform", "planned"),
        ("api", "skipped"),
        ("team-a-api", "skipped"),
    }
    assert deployments.fake.writes() == [] and clients.log.writes == []


def test_a_failed_deployment_is_reported_with_its_message(deployments):
    deployments.fake.deployment_error = "Stack update failed: DBCluster in use"
    clients = deployments.clients()
    items = select(deployed(clients, ALL, ("proton",)).deployed, env="prod")
    (result,) = upgrade(clients, items, poll_seconds=0)
    assert result.status == "failed"
    assert result.message == (
        "proton: environment prod: deployment FAILED: Stack update failed: DBCluster in use"
    )


def test_proton_unavailable_does_not_hide_service_catalog(deployments):
    deployments.fake.fail("ListEnvironmentTemplateVersions", code="SubscriptionRequiredException")
    listing = deployed(deployments.clients(), ALL, BOTH)
    assert len(listing.errors) == 1 and "--target servicecatalog" in listing.errors[0]
    assert [d.name for d in listing.outdated] == ["prod-platform"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "name exactly one of --env NAME, --service NAME or --all"),
        ({"env": "prod", "every": True}, "name exactly one of"),
        ({"env": "staging"}, "nothing deployed from these templates is named 'staging'"),
        ({"service": "prod"}, "nothing deployed from these templates is named 'prod'"),
    ],
)
def test_selection_is_checked(deployments, options, message):
    items = deployed(deployments.clients(), ALL, BOTH).deployed
    with pytest.raises(PlatformError, match=message):
        select(items, **options)


def test_a_service_instance_is_named_with_or_without_its_service(deployments):
    items = deployed(deployments.clients(), ALL, ("proton",)).deployed
    assert [d.name for d in select(items, service="team-a/api")] == ["api"]
    assert [d.name for d in select(items, service="api")] == ["api"]
    # What `invoke outdated --json` prints: plain values only, none of the channel's records.
    described = [d.describe() for d in items]
    assert yaml.safe_load(yaml.safe_dump(described)) == described
    assert {"channel", "kind", "name", "service", "current"} <= set(described[0])
    assert not {"source", "artifacts"} & set(described[0])


def _invoke(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: no AWS is reachable
        "AWS_MAX_ATTEMPTS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_outdated_task_reports_each_unreachable_channel(tmp_path):
    result = _invoke("outdated", "--json", tmp_path=tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["outdated"] == []
    assert [e.split(":")[0] for e in report["errors"]] == ["proton", "servicecatalog"]
    assert all("cannot reach the AWS endpoint" in e for e in report["errors"])


def test_the_upgrade_task_needs_a_selection(tmp_path):
    result = _invoke("upgrade", "--target", "servicecatalog", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "name exactly one of --env NAME, --service NAME or --all" in result.stderr
