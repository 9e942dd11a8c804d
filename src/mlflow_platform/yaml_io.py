"""YAML in and out through libyaml when PyYAML has it: the same text, several times faster.

Templates are large (the environment is ~2,000 lines), and bundling, verifying and publishing
each read or write them several times.
"""

from __future__ import annotations

from typing import Any

import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump(document: object) -> str:
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, width=10**6, allow_unicode=True)


def load(text: str | bytes) -> Any:
    """Any: a YAML document is whatever its text says; callers check its shape."""
    return yaml.load(text, Loader=_LOADER)
