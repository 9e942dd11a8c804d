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
    from mlflow_platform.nag import NagFindingsError
    from mlflow_platform.paths import ROOT, SYNTH_DIR
    from mlflow_platform.synth import synthesize, write

    try:
        written = write(synthesize(), SYNTH_DIR)
    except NagFindingsError as error:
        raise Exit(str(error), code=1) from None
    if json:
        print(jsonlib.dumps({"templates": [str(p.relative_to(ROOT)) for p in written]}))
    else:
        for path in written:
            print(f"wrote {path.relative_to(ROOT)}")


namespace = Collection(synth)
