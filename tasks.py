"""Tasks of the MLflow platform templates. Each parses its options, calls the library, prints.

`invoke --list` shows the tasks; `invoke --help TASK` explains a task's options.
"""

from __future__ import annotations

import json as jsonlib

from invoke import Collection, Exit, task


@task(
    help={"json": "Print the written templates as JSON instead of lines of text."},
)
def synth(c, json=False):
    """Synthesize every template to pure CloudFormation in build/synth/ (cdk-nag checked)."""
    from mlflow_platform.errors import PlatformError
    from mlflow_platform.paths import ROOT, SYNTH_DIR
    from mlflow_platform.synth import synthesize, write

    try:
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
    """Render both templates into Proton bundles and Service Catalog templates, verified."""
    from mlflow_platform.cache import bundle_unless_up_to_date

    try:
        result = bundle_unless_up_to_date(check=check, force=force)
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
    }
    if json:
        print(jsonlib.dumps(report))
    elif result is None:
        print("bundles are up to date: nothing they are made from has changed")
    else:
        for spec in result.specs:
            print(f"rendered and linted {spec}")
        for path in report["written"]:
            print(f"wrote {path}")
        if check:
            print("proton/ matches what the code renders")


def _relative(path):
    from mlflow_platform.paths import ROOT

    return str(path.relative_to(ROOT))


namespace = Collection(synth, bundle)
