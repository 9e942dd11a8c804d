"""V8's code cache for the Node process jsii runs aws-cdk-lib in.

Node 20 compiles every module from source on each start: for aws-cdk-lib that is about half a
second of each synth's critical path. node_code_cache.js keeps the compiled code under
build/node-code-cache/, keyed on each module's content, the way Python keeps .pyc files;
deleting the folder only costs the next synth its compile time. MLFLOW_PLATFORM_NODE_CODE_CACHE,
when already set, names another folder; set empty, it turns the cache off. Node runs what it
finds there, as Python runs .pyc files: the folder must be writable by no one but the user, as
the hook creates it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from mlflow_platform.paths import BUILD

HOOK = Path(__file__).with_name("node_code_cache.js")
DIRECTORY = BUILD / "node-code-cache"
VARIABLE = "MLFLOW_PLATFORM_NODE_CODE_CACHE"


def enable(environ: MutableMapping[str, str] = os.environ, directory: Path = DIRECTORY) -> None:
    """Preload the hook into every Node process started from here on: jsii reads the
    environment when it starts Node, at the first import of aws_cdk. Options already in
    NODE_OPTIONS are kept; calling this twice adds the hook once."""
    require = f'--require "{HOOK}"'
    options = environ.get("NODE_OPTIONS", "")
    if require not in options:
        environ["NODE_OPTIONS"] = f"{options} {require}".strip()
    environ.setdefault(VARIABLE, str(directory))
