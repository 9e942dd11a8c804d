"""Benchmark `invoke bundle`: cold, and with no source change.

cold:      a fresh process, no stamp (--force): synth, render, every check, every write.
           Node's code cache of aws-cdk-lib (build/node-code-cache, like Python's .pyc files)
           is kept, as every run after a machine's first finds it.
new machine: cold, and that code cache empty too: the first bundle after installing (jsii's own
           package cache, which it fills when first imported, is kept).
no change: a fresh process after a successful bundle: the stamp says nothing changed.
`invoke synth` runs in the same session as the baseline: what the CDK synth alone costs.
Targets on a 2-core machine: cold <= 10 s, no change <= 1 s. Medians of several runs; the
machine is shared, so read the spread too.

CPU-s is the machine's busy time during the run (every process: jsii's Node, the cfn-lint
workers), from /proc/stat. Wall time follows it, so it tells a slow hour (more CPU-seconds for
the same work) from a change in how the work is spread over the cores (wall x cores - CPU-s
is the idle time).

    python bench/bundle.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold": 10.0, "new machine": 10.0, "no change": 1.0}


def busy_seconds() -> float | None:
    """CPU-seconds every process on this machine has used since boot; None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except OSError:
        return None
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def timed(*args: str, environ: dict[str, str] | None = None) -> tuple[float, float | None]:
    """Wall seconds and busy CPU-seconds of one `invoke` run."""
    busy = busy_seconds()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, check=True, env=environ,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    after = busy_seconds()
    return wall, None if busy is None or after is None else after - busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    cases = {
        "synth (baseline)": ("synth",),
        "cold": ("bundle", "--force"),
        "new machine": ("bundle", "--force"),
        "no change": ("bundle",),
    }
    samples: dict[str, list[tuple[float, float | None]]] = {case: [] for case in cases}
    for _ in range(runs):
        # Interleaved, so that a noisy minute hurts every figure alike.
        for case, args in cases.items():
            if case == "new machine":
                with tempfile.TemporaryDirectory() as empty:
                    environ = {**os.environ, "MLFLOW_PLATFORM_NODE_CODE_CACHE": empty}
                    samples[case].append(timed(*args, environ=environ))
            else:
                samples[case].append(timed(*args))
    baseline = statistics.median(wall for wall, _ in samples["synth (baseline)"])
    print(f"invoke bundle, {runs} runs each, seconds ({os.cpu_count()} cores)")
    print(f"{'case':<18}{'median':>8}{'min':>8}{'max':>8}{'x synth':>9}{'target':>8}{'CPU-s':>8}")
    for case, values in samples.items():
        walls = [wall for wall, _ in values]
        cpus = [cpu for _, cpu in values if cpu is not None]
        median = statistics.median(walls)
        target = TARGETS.get(case)
        print(
            f"{case:<18}{median:8.2f}{min(walls):8.2f}{max(walls):8.2f}"
            f"{median / baseline:9.2f}{(f'{target:.0f}' if target else '-'):>8}"
            f"{(f'{statistics.median(cpus):.1f}' if cpus else '-'):>8}"
        )


if __name__ == "__main__":
    main()
