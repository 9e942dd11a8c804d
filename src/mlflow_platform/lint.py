"""cfn-lint, the field's own CloudFormation linter, over every template this project produces.

Zero errors and zero warnings is the bar. IGNORED lists each rule the project switches off, with
the reason; it is empty because nothing has needed it. Beyond errors and warnings, the one
informational rule that matters here is on: I3011, a stateful resource without explicit
deletion and replacement policies.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import multiprocessing
import os
import threading
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


def warm_up() -> None:
    """Load cfn-lint's rules and resource schemas, before real work arrives."""
    lint_template(_WARM_UP, source="warm-up")


def _lint_one(item: tuple[str, str, tuple[str, ...]]) -> list[LintFinding]:
    source, text, regions = item
    return lint_template(text, source=source, regions=regions)


class LintPool:
    """cfn-lint in worker processes, started at once so that their start-up overlaps the synth.

    The workers are forked from a fork server that has loaded cfn-lint and its rules once
    (lint_worker.py, about 1.7 s), instead of each loading them. The fork server itself is a
    fresh interpreter, never a fork of this process, which may be running a jsii (Node) child.
    It is started from a thread: the first worker is ready only when the loading is done, and
    the caller goes on with the synth meanwhile.

    Lints wait here, not in the executor's first-come queue: each worker that frees up takes
    the largest template waiting. The environment, synthesized last, is the largest, and its
    lints would otherwise queue behind the smaller ones and end the run alone on one core.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or max(2, os.cpu_count() or 2)
        self._submitted: dict[str, Future[list[LintFinding]]] = {}
        self._executor: ProcessPoolExecutor | None = None
        self._error: BaseException | None = None
        # (-size, order, work, future): the largest first, then in submission order.
        self._waiting: list[tuple[int, int, tuple[str, str, tuple[str, ...]], Future]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._idle = self._workers
        self._closed = False
        self._starting = threading.Thread(target=self._start, name="lint-pool", daemon=True)
        self._starting.start()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="lint-dispatch", daemon=True
        )
        self._dispatcher.start()

    def _start(self) -> None:
        try:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["mlflow_platform.lint_worker"])
            executor = ProcessPoolExecutor(max_workers=self._workers, mp_context=context)
            # Start every worker now: the pool would otherwise start them on first use.
            for _ in range(self._workers):
                executor.submit(int)
            self._executor = executor
        except BaseException as error:
            self._error = error

    def _ready(self) -> ProcessPoolExecutor:
        self._starting.join()
        if self._executor is None:
            raise RuntimeError("the cfn-lint workers did not start") from self._error
        return self._executor

    def _dispatch(self) -> None:
        """Hand the largest waiting lint to the executor whenever a worker is idle."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or (self._waiting and self._idle > 0))
                if self._closed:
                    return
                _, _, work, future = heapq.heappop(self._waiting)
                self._idle -= 1
            try:
                running = self._ready().submit(_lint_one, work)
            except BaseException as error:
                future.set_exception(error)
                self._worker_done()
                continue
            running.add_done_callback(functools.partial(self._finished, future))

    def _worker_done(self) -> None:
        with self._changed:
            self._idle += 1
            self._changed.notify_all()

    def _finished(self, future: Future[list[LintFinding]], running: Future) -> None:
        self._worker_done()
        if running.cancelled():  # the pool is closing after an error elsewhere
            future.cancel()
            return
        error = running.exception()
        if error is None:
            future.set_result(running.result())
        else:
            future.set_exception(error)

    def submit(
        self, texts: Mapping[str, str], *, regions: tuple[str, ...] = REGIONS
    ) -> dict[str, Future[list[LintFinding]]]:
        """Start linting now; the caller goes on (with the next synth) and collects later.
        Returns each source linted for the first time, with its lint.

        Each distinct template is linted once: a text that parses to the same document as one
        already submitted (a Proton render with every input at its default, say, and the
        Service Catalog template) shares that lint.
        """
        futures: dict[str, Future[list[LintFinding]]] = {}
        # Parsed before taking the lock, which a worker that frees up needs to take its next lint.
        keys = {
            source: json.dumps(yaml_io.load(text), sort_keys=True) for source, text in texts.items()
        }
        with self._changed:
            for source, text in texts.items():
                key = keys[source]
                if key in self._submitted:
                    continue
                future: Future[list[LintFinding]] = Future()
                self._submitted[key] = future
                futures[source] = future
                work = (source, text, regions)
                heapq.heappush(self._waiting, (-len(text), next(self._order), work, future))
            self._changed.notify_all()
        return futures

    def __enter__(self) -> LintPool:
        return self

    def __exit__(self, *exc: object) -> None:
        # Every result has been collected by now. A worker that exits on its own spends about a
        # second tearing down cfn-lint's rules and schemas; ending it is instant and loses
        # nothing.
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._dispatcher.join()
        executor = self._ready()
        workers = list((executor._processes or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()
