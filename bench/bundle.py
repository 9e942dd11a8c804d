"""Benchmark `invoke bundle`: cold, and with no source change.

cold:      a fresh process, no stamp (--force): synth, render, every check, every write.
no change: a fresh process after a successful bundle: the stamp says nothing changed.
`invoke synth` runs in the same session as the baseline: what the CDK synth alone costs.
Targets on a 2-core machine: cold <= 10 s, no change <= 1 s. Medians of several runs; the
machine is shared, so read the spread too.

    python bench/bundle.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold": 10.0, "no change": 1.0}


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    samples: dict[str, list[float]] = {"synth (baseline)": [], "cold": [], "no change": []}
    for _ in range(runs):
        # Interleaved, so that a noisy minute hurts every figure alike.
        samples["synth (baseline)"].append(timed("synth"))
        samples["cold"].append(timed("bundle", "--force"))
        samples["no change"].append(timed("bundle"))
    baseline = statistics.median(samples["synth (baseline)"])
    print(f"invoke bundle, {runs} runs each, seconds")
    print(f"{'case':<18}{'median':>8}{'min':>8}{'max':>8}{'x synth':>9}{'target':>8}")
    for case, values in samples.items():
        median = statistics.median(values)
        target = TARGETS.get(case)
        print(
            f"{case:<18}{median:8.2f}{min(values):8.2f}{max(values):8.2f}"
            f"{median / baseline:9.2f}{(f'{target:.0f}' if target else '-'):>8}"
        )


if __name__ == "__main__":
    main()
