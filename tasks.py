"""Tasks of the MLflow platform templates. Each parses its options, calls the library, prints.

`invoke --list` shows the tasks; `invoke --help TASK` explains a task's options.
"""

from __future__ import annotations

import json as jsonlib
import sys

from invoke import Collection, Exit, task


@task(
    help={"json": "Print the written templates as JSON instead of lines of text."},
)
def synth(c, json=False):
    """Synthesize every template to pure CloudFormation in build/synth/ (cdk-nag checked)."""
    from mlflow_platform import process
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.paths import ROOT, SYNTH_DIR

    try:
        with process.without_cyclic_gc():
            from mlflow_platform.synth import synthesize, write

            written = write(synthesize(), SYNTH_DIR)
    except PlatformError as error:
        raise Exit(str(error), code=1) from None
    if json:
        print(jsonlib.dumps({"templates": [str(p.relative_to(ROOT)) for p in written]}))
    else:
        for path in written:
            print(f"wrote {path.relative_to(ROOT)}")


@task(
    help={
        "check": "Write nothing; fail, naming the files, if the committed proton/ differs "
        "from what the code renders now.",
        "force": "Render and verify even when nothing the bundle reads has changed.",
        "json": "Print the result as JSON instead of lines of text.",
    },
)
def bundle(c, check=False, force=False, json=False):
    """Render both templates into Proton bundles and Service Catalog templates, verified;
    each step (a synth, a lint) is reported on stderr as it ends."""
    from mlflow_platform.cache import bundle_unless_up_to_date

    try:
        result = bundle_unless_up_to_date(
            check=check, force=force, progress=lambda line: print(line, file=sys.stderr, flush=True)
        )
    except Exception as error:
        if type(error).__name__ in ("NagFindingsError", "VerificationError", "BundleCheckError"):
            raise Exit(f"invoke bundle: {error}", code=1) from None
        raise
    report = {
        "up_to_date": result is None,
        "checked": check,
        "written": [] if result is None or check else [_relative(p) for p in result.written],
        "specs": [] if result is None else result.specs,
        "linted": [] if result is None else result.linted,
        "new_majors": {} if result is None else result.new_majors,
    }
    if json:
        print(jsonlib.dumps(report))
    elif result is None:
        print("bundles are up to date: nothing they are made from has changed")
    else:
        for spec in result.specs:
            print(f"rendered and linted {spec}")
        for folder, reasons in result.new_majors.items():
            print(f"started {folder}: not compatible with the previous major: {'; '.join(reasons)}")
        for path in report["written"]:
            print(f"wrote {path}")
        if check:
            print("proton/ matches what the code renders")


@task(
    positional=["action"],
    help={
        "action": "up (start what is not running; idempotent), down (stop what up started) "
        "or status.",
        "embedded": "With up: no PostgreSQL and no S3 endpoint; a SQLite file and a local "
        "artifact directory, the same entrypoint and auth.",
        "state_dir": "Where data, logs and credentials live (default .local/).",
        "json": "Print the result as JSON instead of lines of text.",
    },
)
def local(c, action, embedded=False, state_dir=None, json=False):
    """The platform on this machine: PostgreSQL, an S3 endpoint and the tracking server."""
    from pathlib import Path

    from mlflow_platform.errors import PlatformError
    from mlflow_platform.local import LocalPlatform
    from mlflow_platform.paths import ROOT

    platform = LocalPlatform(
        Path(state_dir) if state_dir else ROOT / ".local",
        progress=(lambda _: None) if json else (lambda line: print(line, flush=True)),
    )
    try:
        if action == "up":
            result = platform.up(embedded=embedded)
        elif action == "down":
            result = {"stopped": platform.down()}
        elif action == "status":
            result = platform.status()
        else:
            raise Exit(f"invoke local: action {action!r}: must be up, down or status", code=2)
    except PlatformError as error:
        raise Exit(f"invoke local: {error}", code=1) from None
    if json:
        print(jsonlib.dumps(result))
    elif action == "up":
        print(f"MLFLOW_TRACKING_URI={result['tracking_uri']}")
        print(f"MLFLOW_TRACKING_USERNAME={result['username']}")
        print(f"MLFLOW_TRACKING_PASSWORD={result['password']}")
    elif action == "down":
        print("stopped: " + (", ".join(result["stopped"]) or "nothing was running"))
    else:
        for name, component in result.items() or {}:
            state = "running" if component["running"] else "stopped"
            print(f"{name:<9}{state:<9}port {component['port']}")
        if not result:
            print("nothing has been started")


@task(
    iterable=["target", "template"],
    help={
        "target": "A channel to publish to: proton or servicecatalog (repeatable; default: "
        "the targets in publish.yaml).",
        "template": "Publish only this template (repeatable; default: every template).",
        "dry_run": "Read what each channel holds and print the plan; write nothing.",
        "allow_unsafe": "Publish even when a stateful resource (database, bucket, secret, log "
        "group, VPC) would be deleted or replaced on upgrade.",
        "verify": "Check everything each channel holds, even what a completed publication "
        "recorded as done (repairs what was changed by hand since).",
        "config": "The publishing configuration (default publish.yaml).",
        "profile": "The AWS profile to use (default: the standard AWS configuration).",
        "region": "The AWS region to publish in (default: the standard AWS configuration).",
        "json": "Print the plans and results as JSON instead of lines of text.",
    },
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
    """Version and publish the bundles to AWS Proton and Service Catalog (idempotent)."""
    import sys
    from pathlib import Path

    from mlflow_platform import aws, publish_config
    from mlflow_platform.cache import require_committed
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.publish import publish as run_publish
    from mlflow_platform.publish import releases

    out = sys.stderr if json else sys.stdout
    try:
        settings = publish_config.load(Path(config) if config else publish_config.CONFIG_FILE)
        targets = publish_config.channels(target, settings.targets)
        require_committed(progress=lambda line: print(line, file=sys.stderr, flush=True))
        items = releases(list(template or []))
        clients = aws.Clients(aws.session(profile=profile, region=region))
    except PlatformError as error:
        raise Exit(f"invoke publish: {error}", code=1) from None
    outcomes = run_publish(
        clients=clients,
        config=settings,
        items=items,
        targets=targets,
        dry_run=dry_run,
        allow_unsafe=allow_unsafe,
        verify=verify,
        progress=lambda line: print(line, file=out, flush=True),
    )
    if json:
        print(
            jsonlib.dumps(
                {
                    "dry_run": dry_run,
                    "channels": [o.describe() for o in outcomes],
                    "calls": clients.log.summary(),
                }
            )
        )
    else:
        for outcome in outcomes:
            for plan in outcome.plans:
                _print_plan(plan, dry_run)
            if outcome.error:
                print(f"FAILED {outcome.error}")
        summary = clients.log.summary()
        print(f"{summary['reads']} read and {summary['writes']} write calls")
    if any(o.error for o in outcomes):
        raise Exit(code=1)


@task(
    help={
        "engine": "The container engine command: docker (default) or podman.",
        "build_only": "Build the image on this machine (mlflow-tracking-server:<content tag>); "
        "no AWS, nothing pushed.",
        "base_image": "Build FROM this image instead of the official python:3.11-slim (one "
        "made locally: .ci/container-base.sh).",
        "ca_bundle": "A CA bundle for pip during the build, not kept in the image (default: "
        "PIP_CERT when it names a file).",
        "dry_run": "Check ECR and print what would be built and pushed; change nothing.",
        "profile": "The AWS profile to use (default: the standard AWS configuration).",
        "region": "The AWS region of the ECR repository (default: the standard AWS configuration).",
        "json": "Print the result as JSON instead of lines of text.",
    },
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
    """Build the tracking-server image and push it to ECR, tagged by its content."""
    import sys

    from mlflow_platform import aws, image_engine
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.image_push import build_and_push
    from mlflow_platform.image_push import build_only as build_locally

    out = sys.stderr if json else sys.stdout
    progress = lambda line: print(line, file=out, flush=True)  # noqa: E731
    try:
        options = image_engine.build_options(
            engine=engine, base_image=base_image, ca_bundle=ca_bundle
        )
        if build_only:
            result = build_locally(options, dry_run=dry_run, progress=progress)
        else:
            clients = aws.Clients(aws.session(profile=profile, region=region))
            result = build_and_push(
                clients, engine=engine, build=options, dry_run=dry_run, progress=progress
            )
    except PlatformError as error:
        raise Exit(f"invoke image: {error}", code=1) from None
    if json:
        print(
            jsonlib.dumps(
                {
                    "uri": result.uri,
                    "pushed": result.pushed,
                    "dry_run": dry_run,
                    "steps": list(result.steps),
                }
            )
        )
    else:
        verb = "would run" if dry_run else "ran"
        for step in result.steps:
            print(f"{verb}: {step}" if result.pushed or dry_run else step)
        print(result.uri)


@task(
    help={
        "url": "The team API's URL: the TrackingUri output of the team's stack (required).",
        "port": "Local port to listen on (default 8765; 0 picks a free one).",
        "bind": "Loopback address to listen on (default 127.0.0.1); any other is refused.",
        "profile": "The AWS profile whose credentials sign (default: the standard AWS "
        "configuration: environment, SSO, a role).",
        "region": "The API's region (default: read from the URL).",
    },
)
def ui(c, url, port=8765, bind="127.0.0.1", profile=None, region=None):
    """Serve a team's MLflow UI (iam mode) on localhost, every request signed with your own
    AWS credentials; also a tracking URI for MLflow's client. Stops on Ctrl-C."""
    from mlflow_platform import aws
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.signing_proxy import SigningProxy, frozen_credentials, target

    try:
        proxy = SigningProxy(
            to=target(url, region=region),
            credentials=frozen_credentials(aws.session(profile=profile, region=region)),
            bind=bind,
            port=int(port),
        )
    except (PlatformError, OSError) as error:
        raise Exit(f"invoke ui: {error}", code=1) from None
    print(f"MLflow UI of {url}: {proxy.url}  (MLFLOW_TRACKING_URI={proxy.url}); Ctrl-C stops")
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.close()


_TEMPLATES_HELP = "Only this template (repeatable; default: every template)."


def _listing(target, template, profile, region):
    from mlflow_platform import aws, publish_config
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.templates import named
    from mlflow_platform.upgrade import deployed

    try:
        channels = publish_config.channels(target)
        chosen = named(template)
        clients = aws.Clients(aws.session(profile=profile, region=region))
    except PlatformError as error:
        raise Exit(str(error), code=1) from None
    return clients, deployed(clients, chosen, channels)


@task(
    iterable=["target", "template"],
    help={
        "target": "A channel to look in: proton or servicecatalog (repeatable; default both).",
        "template": _TEMPLATES_HELP,
        "profile": "The AWS profile to use (default: the standard AWS configuration).",
        "region": "The AWS region to look in (default: the standard AWS configuration).",
        "json": "Print the result as JSON instead of lines of text.",
    },
)
def outdated(c, target=None, template=None, profile=None, region=None, json=False):
    """List deployed environments, service instances and products behind the newest version."""
    _, listing = _listing(target, template, profile, region)
    if json:
        print(
            jsonlib.dumps(
                {"outdated": [d.describe() for d in listing.outdated], "errors": listing.errors}
            )
        )
    else:
        for item in listing.outdated:
            where = f"{item.service}/{item.name}" if item.service else item.name
            newer = ", ".join(
                f"{label} {version}"
                for label, version in (("minor", item.minor_upgrade), ("major", item.major_upgrade))
                if version
            )
            print(f"{item.channel} {item.kind} {where} ({item.template}): {item.current}, {newer}")
        if not listing.outdated:
            print("everything deployed runs the newest version")
        for error in listing.errors:
            print(f"FAILED {error}")
    if listing.errors:
        raise Exit(code=1)


@task(
    iterable=["target", "template"],
    help={
        "env": "Upgrade this environment (Proton) or provisioned environment product.",
        "service": "Upgrade this service instance (Proton, SERVICE/INSTANCE or INSTANCE) or "
        "provisioned service product.",
        "all": "Upgrade everything that is outdated.",
        "major": "Move to a newer major version where there is one (default: minor only).",
        "target": "A channel: proton or servicecatalog (repeatable; default both).",
        "template": _TEMPLATES_HELP,
        "dry_run": "Print what would be upgraded, to which version; change nothing.",
        "profile": "The AWS profile to use (default: the standard AWS configuration).",
        "region": "The AWS region (default: the standard AWS configuration).",
        "json": "Print the results as JSON instead of lines of text.",
    },
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
    import sys

    from mlflow_platform.errors import PlatformError
    from mlflow_platform.upgrade import select
    from mlflow_platform.upgrade import upgrade as run_upgrade

    clients, listing = _listing(target, template, profile, region)
    try:
        items = select(listing.deployed, env=env, service=service, every=all)
    except PlatformError as error:
        if listing.errors:
            error = PlatformError(f"{error}\n" + "\n".join(listing.errors))
        raise Exit(f"invoke upgrade: {error}", code=1) from None
    out = sys.stderr if json else sys.stdout
    results = run_upgrade(
        clients,
        items,
        major=major,
        dry_run=dry_run,
        progress=lambda line: print(line, file=out, flush=True),
    )
    if json:
        print(
            jsonlib.dumps(
                {
                    "dry_run": dry_run,
                    "results": [r.describe() for r in results],
                    "errors": listing.errors,
                }
            )
        )
    else:
        for result in results:
            item = result.item
            print(f"{result.status:<9}{item.channel} {item.kind} {item.name}: {result.message}")
        for error in listing.errors:
            print(f"FAILED {error}")
    if listing.errors or any(r.status == "failed" for r in results):
        raise Exit(code=1)


def _print_plan(plan, dry_run):
    decision = plan.decision
    head = f"{plan.channel} {plan.subject}"
    if decision is not None:
        head += f" {decision.version} ({decision.change}: {'; '.join(decision.reasons)})"
    if not plan.steps:
        print(f"{head}: up to date")
        return
    print(f"{head}: {'would call' if dry_run else 'called'}")
    for step in plan.steps:
        print(f"  {step.operation}  {step.why}")


def _relative(path):
    from mlflow_platform.paths import ROOT

    return str(path.relative_to(ROOT))


namespace = Collection(synth, bundle, local, image, publish, outdated, upgrade, ui)
