"""Ending a command that loaded CDK without the interpreter's teardown.

After a synth, Python spends about a second freeing aws-cdk-lib's modules at exit; the operating
system reclaims the memory at once. The registered exit handlers still run (they stop jsii's
Node process and the cfn-lint fork server), and the output is flushed; only the freeing is
skipped.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn


def end(code: int = 0) -> NoReturn:
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
