"""Tasks of the MLflow platform templates. Each parses its options, calls the library, prints.

`invoke --list` shows the tasks; `invoke --help TASK` explains a task's options. Library modules
are imported inside each task, so that listing tasks or an up-to-date bundle stays instant.
"""

from __future__ import annotations

from invoke import Collection, Exit, task

from mlflow_platform.cli import failing_as, help_for, progress

_TARGET = "A channel: proton or servicecatalog (repeatable; default: both)."


@task(help=help_for("json"))
def synth(c, json=False):
    """Synthesize every template to pure CloudFormation in build/synth/ (cdk-nag checked)."""
    from mlflow_platform.building.synth import synthesize, write
    from mlflow_platform.cli import synth_report
    from mlflow_platform.paths import SYNTH_DIR

    with failing_as("synth"):
        written = write(synthesize(), SYNTH_DIR)
    synth_report(written).emit(json=json)


@task(
    help=help_for(
        "json",
        check="Write nothing; fail, naming the files, if the committed proton/ differs "
        "from what the code renders now.",
        force="Render and verify even when nothing the bundle reads has changed.",
    )
)
def bundle(c, check=False, force=False, json=False):
    """Render both templates into verified Proton bundles and Service Catalog templates.

    Each step (a synth, a lint) is reported on stderr as it ends."""
    from mlflow_platform.building.stamp import bundle_unless_up_to_date
    from mlflow_platform.cli import bundle_report

    with failing_as("bundle"):
        result = bundle_unless_up_to_date(check=check, force=force, progress=progress(json=True))
    bundle_report(result, check=check).emit(json=json)


@task(
    positional=["action"],
    help=help_for(
        "json",
        action="up (start what is not running; idempotent), down (stop what up started) or status.",
        embedded="With up: no PostgreSQL and no S3 endpoint; a SQLite file and a local "
        "artifact directory, the same entrypoint and auth.",
        state_dir="Where data, logs and credentials live (default .local/).",
        auth="With up: basic (MLflow users and passwords, the default) or iam (SigV4 checked "
        "by the local team API, with credentials it issues for the local team).",
    ),
)
def local(c, action, embedded=False, state_dir=None, json=False, auth="basic"):
    """The platform on this machine: PostgreSQL, an S3 endpoint, the tracking server and a team
    API in front of it that behaves as API Gateway does."""
    from pathlib import Path

    from mlflow_platform.cli import local_report
    from mlflow_platform.local.platform import LocalPlatform
    from mlflow_platform.paths import ROOT
    from tracking_server import settings

    actions = {
        "up": lambda p: p.up(embedded=embedded, server_env={settings.AUTH_MODE: auth}),
        "down": lambda p: {"stopped": p.down()},
        "status": lambda p: p.status(),
    }
    if action not in actions:
        raise Exit(f"invoke local: action {action!r}: must be up, down or status", code=2)
    if auth not in settings.AUTH_MODES:
        raise Exit(f"invoke local: --auth {auth!r}: must be basic or iam", code=2)
    platform = LocalPlatform(
        Path(state_dir) if state_dir else ROOT / ".local",
        # Progress on stderr: stdout is the result (`export` lines that `eval` can take).
        progress=progress(json=True),
    )
    with failing_as("local"):
        result = actions[action](platform)
    local_report(action, result).emit(json=json)


@task(
    iterable=["target", "template"],
    help=help_for(
        "template",
        "profile",
        "region",
        "json",
        target="A channel to publish to: proton or servicecatalog (repeatable; default: "
        "the targets in publish.yaml).",
        dry_run="Read what each channel holds and print the plan; write nothing.",
        allow_unsafe="Publish even when a stateful resource (database, bucket, secret, log "
        "group, VPC) would be deleted or replaced on upgrade.",
        verify="Check everything each channel holds, even what a completed publication "
        "recorded as done (repairs what was changed by hand since).",
        config="The publishing configuration (default publish.yaml).",
    ),
)
def publish(
    c,
    target=None,
    template=None,
    dry_run=False,
    allow_unsafe=False,
    verify=False,
    config=None,
    profile=None,
    region=None,
    json=False,
):
    """Version and publish the committed bundles to AWS Proton and Service Catalog.

    Idempotent: a rerun finishes what a failed run left. A checkout whose proton/ is not what
    the code renders is refused, naming the files."""
    from pathlib import Path

    from mlflow_platform import aws
    from mlflow_platform.building.stamp import require_committed
    from mlflow_platform.cli import publish_report
    from mlflow_platform.releasing import config as publish_config
    from mlflow_platform.releasing.publish import publish as run_publish
    from mlflow_platform.releasing.publish import releases

    with failing_as("publish"):
        settings = publish_config.load(Path(config) if config else publish_config.CONFIG_FILE)
        targets = publish_config.channels(target, settings.targets)
        require_committed(progress=progress(json=True))
        items = releases(list(template or []))
        clients = aws.Clients(aws.session(profile=profile, region=region))
    outcomes = run_publish(
        clients=clients,
        config=settings,
        items=items,
        targets=targets,
        dry_run=dry_run,
        allow_unsafe=allow_unsafe,
        verify=verify,
        progress=progress(json=json),
    )
    publish_report(outcomes, calls=clients.log.summary(), dry_run=dry_run).emit(json=json)


@task(
    help=help_for(
        "profile",
        "json",
        engine="The container engine command: docker (default) or podman.",
        build_only="Build the image on this machine (mlflow-tracking-server:<content tag>); "
        "no AWS, nothing pushed.",
        base_image="Build FROM this image instead of the official python:3.11-slim (one "
        "made locally: .ci/container-base.sh).",
        ca_bundle="A CA bundle for pip during the build, not kept in the image (default: "
        "PIP_CERT when it names a file).",
        dry_run="Check ECR and print what would be built and pushed; change nothing.",
        region="The AWS region of the ECR repository (default: the standard AWS configuration).",
    )
)
def image(
    c,
    engine="docker",
    build_only=False,
    base_image=None,
    ca_bundle=None,
    dry_run=False,
    profile=None,
    region=None,
    json=False,
):
    """Build the tracking-server image, tagged by its content, and push it to ECR."""
    from mlflow_platform import aws
    from mlflow_platform.cli import image_report
    from mlflow_platform.image import engine as image_engine
    from mlflow_platform.image.push import build_and_push
    from mlflow_platform.image.push import build_only as build_locally

    with failing_as("image"):
        options = image_engine.build_options(
            engine=engine, base_image=base_image, ca_bundle=ca_bundle
        )
        if build_only:
            result = build_locally(options, dry_run=dry_run, progress=progress(json=json))
        else:
            clients = aws.Clients(aws.session(profile=profile, region=region))
            result = build_and_push(
                clients, engine=engine, build=options, dry_run=dry_run, progress=progress(json=json)
            )
    image_report(result, dry_run=dry_run).emit(json=json)


@task(
    help=help_for(
        url="The team API's URL: the TrackingUri output of the team's stack (required).",
        port="Local port to listen on (default 8765; 0 picks a free one).",
        bind="Loopback address to listen on (default 127.0.0.1); any other is refused.",
        profile="The AWS profile whose credentials sign (default: the standard AWS "
        "configuration: environment, SSO, a role).",
        region="The API's region (default: read from the URL).",
    )
)
def ui(c, url, port=8765, bind="127.0.0.1", profile=None, region=None):
    """Serve a team's MLflow UI (iam mode) on localhost, signed with your AWS credentials.

    Every request is signed for execute-api with the caller's own credentials; the local URL
    is also a tracking URI for MLflow's client. Stops on Ctrl-C."""
    from mlflow_platform import aws
    from mlflow_platform.signing_proxy import SigningProxy, frozen_credentials, target

    with failing_as("ui"):
        try:
            proxy = SigningProxy(
                to=target(url, region=region),
                credentials=frozen_credentials(aws.session(profile=profile, region=region)),
                bind=bind,
                port=int(port),
            )
        except OSError as error:
            raise Exit(f"invoke ui: {error}", code=1) from None
    print(f"MLflow UI of {url}: {proxy.url}  (MLFLOW_TRACKING_URI={proxy.url}); Ctrl-C stops")
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.close()


@task(
    help=help_for(
        "json",
        dist_dir="Where the wheel goes (default dist/); a wheel of the same name is replaced.",
    )
)
def client_wheel(c, dist_dir=None, json=False):
    """Build the mlflow-platform-client wheel (MLflow's SigV4 plug-in for iam mode) into dist/.

    For images and jobs whose network reaches no package index: client/README.md."""
    from pathlib import Path

    from mlflow_platform import client_wheel as wheel
    from mlflow_platform.paths import DIST

    with failing_as("client-wheel"):
        built = wheel.build(Path(dist_dir) if dist_dir else DIST)
    wheel.report(built).emit(json=json)


def _listing(task_name, target, template, profile, region):
    from mlflow_platform import aws
    from mlflow_platform.releasing import config as publish_config
    from mlflow_platform.templates import named
    from mlflow_platform.upgrading import deployed

    with failing_as(task_name):
        channels = publish_config.channels(target)
        chosen = named(template)
        clients = aws.Clients(aws.session(profile=profile, region=region))
    return clients, deployed(clients, chosen, channels)


@task(
    iterable=["target", "template"],
    help=help_for("template", "profile", "region", "json", target=_TARGET),
)
def outdated(c, target=None, template=None, profile=None, region=None, json=False):
    """List deployed environments, service instances and products behind the newest version."""
    from mlflow_platform.cli import outdated_report

    _, listing = _listing("outdated", target, template, profile, region)
    outdated_report(listing).emit(json=json)


@task(
    iterable=["target", "template"],
    help=help_for(
        "template",
        "profile",
        "region",
        "json",
        target=_TARGET,
        env="Upgrade this environment (Proton) or provisioned environment product.",
        service="Upgrade this service instance (Proton, SERVICE/INSTANCE or INSTANCE) or "
        "provisioned service product.",
        all="Upgrade everything that is outdated.",
        major="Move to a newer major version where there is one (default: minor only).",
        dry_run="Print what would be upgraded, to which version; change nothing.",
    ),
)
def upgrade(
    c,
    env=None,
    service=None,
    all=False,
    major=False,
    target=None,
    template=None,
    dry_run=False,
    profile=None,
    region=None,
    json=False,
):
    """Move deployed environments, service instances and products to the newest version."""
    from mlflow_platform.cli import upgrade_report
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.upgrading import select
    from mlflow_platform.upgrading import upgrade as run_upgrade

    clients, listing = _listing("upgrade", target, template, profile, region)
    with failing_as("upgrade"):
        try:
            items = select(listing.deployed, env=env, service=service, every=all)
        except PlatformError as error:
            # What could not be listed may be why nothing was selected.
            raise PlatformError("\n".join([str(error), *listing.errors])) from None
    results = run_upgrade(
        clients, items, major=major, dry_run=dry_run, progress=progress(json=json)
    )
    upgrade_report(results, errors=listing.errors, dry_run=dry_run).emit(json=json)


namespace = Collection(synth, bundle, local, image, publish, outdated, upgrade, ui, client_wheel)
