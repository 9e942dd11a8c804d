"""YAML in and out through libyaml when PyYAML has it: the same text, several times faster.

Templates are large (the environment is ~2,000 lines), and bundling, verifying and publishing
each read or write them several times.
"""

from __future__ import annotations

import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump(document: object) -> str:
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, width=10**6, allow_unicode=True)


def load(text: str | bytes) -> object:
    return yaml.load(text, Loader=_LOADER)
