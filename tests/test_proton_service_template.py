"""The service template through Proton: created as a bundle without a pipeline needs, registered,
published, and its instances listed and upgraded.

The fake Proton registers a version only if the bundle passes tests/proton_bundle_rules.py
(rules from AWS's Proton user guide and botocore's model), and its CreateServiceTemplate keeps
`pipelineProvisioning`, which botocore's UpdateServiceTemplate cannot change.
"""

from __future__ import annotations

from publishing import (
    ENVIRONMENT,
    SERVICE,
    all_ok,
    catalog_artifacts,
    proton_versions,
    run,
    with_optional_input,
    write_tree,
)

from mlflow_platform.templates import TEMPLATES
from mlflow_platform.upgrading import deployed, select, upgrade

ALL = dict(TEMPLATES)


def test_the_service_template_is_created_without_a_proton_pipeline(
    world, config, tmp_path, sources
):
    all_ok(run(world, config, write_tree(tmp_path, sources), targets=("proton",))[0])
    template = world.fake.proton["service"][SERVICE]["template"]
    assert template["pipelineProvisioning"] == "CUSTOMER_MANAGED"
    assert proton_versions(world.fake, "service", SERVICE) == [("1.0", "PUBLISHED")]


def test_a_bundle_with_the_folder_name_as_manifest_key_is_refused_by_proton(
    world, config, tmp_path, sources
):
    """What the service bundle looked like before: Proton fails its registration."""
    paths = write_tree(tmp_path, sources)
    manifest = paths["proton_dir"] / SERVICE / "v1" / "instance_infrastructure" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("infrastructure:", "instance_infrastructure:"))
    outcomes, _ = run(world, config, paths, targets=("proton",))
    (outcome,) = outcomes
    assert "the top key must be infrastructure" in outcome.error
    assert proton_versions(world.fake, "service", SERVICE) == []


def test_a_service_template_created_with_a_pipeline_is_named_with_the_way_out(
    world, config, tmp_path, sources
):
    clients = world.clients()
    clients("proton").create_service_template(name=SERVICE, displayName=SERVICE)
    outcomes, log = run(world, config, write_tree(tmp_path, sources))
    proton, catalog = outcomes
    assert proton.error is not None
    assert f"service template {SERVICE} exists without pipelineProvisioning" in proton.error
    assert "cannot be changed" in proton.error
    assert f"aws proton delete-service-template --name {SERVICE}" in proton.error
    # Refused before anything was uploaded or created for the service.
    assert proton_versions(world.fake, "service", SERVICE) == []
    assert not [c for c in log.writes if "ServiceTemplate" in c]
    assert catalog.error is None and catalog_artifacts(world.fake, SERVICE) == ["1.0"]


def test_a_rerun_after_publishing_both_templates_to_both_channels_is_a_no_op(
    world, config, tmp_path, sources
):
    paths = write_tree(tmp_path, sources)
    all_ok(run(world, config, paths)[0])
    outcomes, log = run(world, config, paths)
    all_ok(outcomes)
    assert log.writes == []
    per_channel: dict[str, int] = {}
    for service, _operation in log.calls:
        channel = "proton" if service == "proton" else "servicecatalog"
        per_channel[channel] = per_channel.get(channel, 0) + 1
    # At most two reads for each template in each channel.
    assert all(count <= 2 * len(TEMPLATES) for count in per_channel.values()), log.calls


def test_outdated_and_upgrade_reach_proton_service_instances(world, config, tmp_path, sources):
    all_ok(run(world, config, write_tree(tmp_path / "v10", sources))[0])
    world.fake.add_environment("prod", ENVIRONMENT, "1", "0")
    world.fake.add_service_instance("team-a", "api", "prod", SERVICE, "1", "0")
    changed = {**sources, SERVICE: with_optional_input(sources[SERVICE])}
    all_ok(run(world, config, write_tree(tmp_path / "v11", changed))[0])
    assert proton_versions(world.fake, "service", SERVICE) == [
        ("1.0", "PUBLISHED"),
        ("1.1", "PUBLISHED"),
    ]

    clients = world.clients()
    listing = deployed(clients, ALL, ("proton",))
    assert [(d.kind, d.name, d.current, d.minor_upgrade) for d in listing.outdated] == [
        ("service instance", "api", "1.0", "1.1")
    ]
    (result,) = upgrade(clients, select(listing.deployed, service="team-a/api"), poll_seconds=0)
    assert (result.status, result.message) == ("upgraded", "1.0 -> 1.1")
    instance = world.fake.instances[("team-a", "api")]
    assert (instance["templateMajorVersion"], instance["templateMinorVersion"]) == ("1", "1")
    assert deployed(world.clients(), ALL, ("proton",)).outdated == []
