"""cfn-lint, the field's own CloudFormation linter, over every template this project produces.

Zero errors and zero warnings is the bar. IGNORED lists each rule the project switches off, with
the reason; it is empty because nothing has needed it. Beyond errors and warnings, the one
informational rule that matters here is on: I3011, a stateful resource without explicit
deletion and replacement policies.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from mlflow_platform import yaml_io

# Regions the templates are checked against: resource and property availability differ.
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
# A Proton render has the Service Catalog template's resources with other parameter values, so
# the regional checks have been made on that template; its render is checked in one region.
PRIMARY_REGION = REGIONS[:1]
IGNORED: Mapping[str, str] = {}


@dataclass(frozen=True, kw_only=True)
class LintFinding:
    source: str
    rule: str
    message: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.rule} {self.message}"


@functools.cache
def _rules():
    """cfn-lint's rules, loaded once per process (about a second); the CLI, too, checks many
    templates with one set."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    return Runner(ConfigMixIn(regions=list(REGIONS))).rules


@functools.cache
def _config(regions: tuple[str, ...]):
    from cfnlint.config import ConfigMixIn

    return ConfigMixIn(regions=list(regions), ignore_checks=list(IGNORED), include_checks=["I3011"])


def lint_template(
    text: str, *, source: str, regions: tuple[str, ...] = REGIONS
) -> list[LintFinding]:
    """Every cfn-lint error and warning (and I3011) in one template's text."""
    # Imported here: loading cfn-lint takes about a second, which a process that only hands
    # templates to LintPool workers should not pay.
    from cfnlint.decode.decode import decode_str
    from cfnlint.runner import run_template_by_data

    template, errors = decode_str(text)
    matches = errors or list(run_template_by_data(template, _config(regions), _rules()))
    return [
        LintFinding(source=source, rule=m.rule.id, message=m.message, line=m.linenumber)
        for m in matches
    ]


def _lint_one(source: str, text: str, regions: tuple[str, ...]) -> list[LintFinding]:
    return lint_template(text, source=source, regions=regions)


class LintPool:
    """cfn-lint in worker processes, so that one template is checked while the next one
    synthesizes.

    Workers are started with `spawn`, never forked: the caller may be running a jsii (Node)
    child. Each loads cfn-lint's rules once, on its first lint.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=workers or max(2, os.cpu_count() or 2),
            mp_context=multiprocessing.get_context("spawn"),
        )
        self._submitted: set[str] = set()

    def submit(
        self, texts: Mapping[str, str], *, regions: tuple[str, ...] = REGIONS
    ) -> dict[str, Future[list[LintFinding]]]:
        """Start linting now; the caller collects later. Returns each source linted for the
        first time, with its lint.

        Each distinct template is linted once: a text that parses to the same document as one
        already submitted (a Proton render with every input at its default, say, and the
        Service Catalog template) shares that lint.
        """
        futures: dict[str, Future[list[LintFinding]]] = {}
        for source, text in texts.items():
            key = json.dumps(yaml_io.load(text), sort_keys=True)
            if key not in self._submitted:
                self._submitted.add(key)
                futures[source] = self._executor.submit(_lint_one, source, text, regions)
        return futures

    def __enter__(self) -> LintPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(cancel_futures=True)
