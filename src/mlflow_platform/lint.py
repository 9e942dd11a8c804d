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


_WARM_UP = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


def _warm_up() -> None:
    """Load cfn-lint's rules and resource schemas once per worker, before real work arrives."""
    lint_template(_WARM_UP, source="warm-up")


def _lint_one(item: tuple[str, str, tuple[str, ...]]) -> list[LintFinding]:
    source, text, regions = item
    return lint_template(text, source=source, regions=regions)


class LintPool:
    """cfn-lint in worker processes, started early so their start-up overlaps the synth.

    Spawned, not forked: the parent may be running a jsii (Node) child by then.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=workers or max(2, os.cpu_count() or 2),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_up,
        )
        self._submitted: dict[str, Future[list[LintFinding]]] = {}
        # Start every worker now: the pool would otherwise spawn them on first use.
        self._ready = [self._executor.submit(int) for _ in range(self._executor._max_workers)]

    def submit(
        self, texts: Mapping[str, str], *, regions: tuple[str, ...] = REGIONS
    ) -> list[Future[list[LintFinding]]]:
        """Start linting now; the caller goes on (with the next synth) and collects later.

        Each distinct template is linted once: a text that parses to the same document as one
        already submitted (a Proton render with every input at its default, say, and the
        Service Catalog template) shares that lint.
        """
        futures = []
        # Largest first, so the longest lint does not start last.
        for source, text in sorted(texts.items(), key=lambda kv: -len(kv[1])):
            key = json.dumps(yaml_io.load(text), sort_keys=True)
            if key not in self._submitted:
                self._submitted[key] = self._executor.submit(_lint_one, (source, text, regions))
                futures.append(self._submitted[key])
        return futures

    def lint(self, texts: Mapping[str, str]) -> list[LintFinding]:
        return [finding for future in self.submit(texts) for finding in future.result()]

    def __enter__(self) -> LintPool:
        return self

    def __exit__(self, *exc: object) -> None:
        # Every result has been collected by now. A worker that exits on its own spends about a
        # second tearing down cfn-lint's rules and schemas; ending it is instant and loses
        # nothing.
        workers = list((self._executor._processes or {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()
