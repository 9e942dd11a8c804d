"""Benchmark `invoke bundle` against a bare CDK synth, measured side by side in the same run.

baseline:  a fresh Python process that imports aws-cdk-lib, defines one stack with one bucket
           and synthesizes it: what any CDK Python app pays before doing anything of its own
           (interpreter, aws-cdk-lib's import, jsii's Node process, one synth).
cold:      `invoke bundle --force` in a fresh process: synth of both templates, render for both
           channels, every check (cdk-nag, cfn-lint on every template and rendered spec, Proton's
           limits, the contract), every write.
no change: `invoke bundle` after a successful one: the stamp says nothing changed.

Target: cold within 2.5x of the baseline. Cases are interleaved, so that a noisy minute on this
shared machine hurts every figure alike; medians of --runs runs, with min and max for the spread.

    python bench/bundle.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.5

BARE_SYNTH = """
import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App(outdir=OUTDIR)
stack = cdk.Stack(app, "Bare", synthesizer=cdk.BootstraplessSynthesizer())
s3.Bucket(stack, "Bucket")
app.synth()
"""


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    outdir = ROOT / "build" / "bench-bare-synth"
    invoke = [sys.executable, "-m", "invoke"]
    cases = {
        "baseline (bare synth)": [
            sys.executable, "-c", f"OUTDIR = {str(outdir)!r}\n{BARE_SYNTH}"
        ],
        "cold": [*invoke, "bundle", "--force"],
        "no change": [*invoke, "bundle"],
    }  # fmt: skip
    samples: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(runs):
        for case, command in cases.items():
            samples[case].append(timed(command))
    baseline = statistics.median(samples["baseline (bare synth)"])
    print(f"invoke bundle, {runs} runs each, wall seconds ({os.cpu_count()} cores)")
    print(f"{'case':<24}{'median':>8}{'min':>8}{'max':>8}{'x baseline':>12}")
    for case, walls in samples.items():
        median = statistics.median(walls)
        print(f"{case:<24}{median:8.2f}{min(walls):8.2f}{max(walls):8.2f}{median / baseline:12.2f}")
    ratio = statistics.median(samples["cold"]) / baseline
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"cold / baseline = {ratio:.2f} (target <= {TARGET_RATIO}): {verdict}")


if __name__ == "__main__":
    main()
