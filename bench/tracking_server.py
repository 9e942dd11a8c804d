"""Benchmark the tracking server as the platform runs it against a plain `mlflow server`.

platform: `invoke local` as it starts: PostgreSQL, the S3 endpoint, basic auth, the entrypoint's
          settings; the client authenticates on every call.
plain:    `mlflow server` with its default settings (its default store, no auth), the same
          machine, measured in the same run.
Figures: median latency of a single-metric `log_metric` call on one client (keep-alive), and
`log_batch` throughput with 1,000 metrics a call. Targets: log_metric at least 5 times faster
than plain; log_batch at least 9,000 metrics/s.

    python bench/tracking_server.py [--calls N] [--batches N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mlflow_platform.local.platform import LocalPlatform


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not become healthy")


def measure(uri: str, auth: tuple[str, str] | None, calls: int, batches: int) -> dict[str, float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    if auth:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = auth
    else:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment(f"bench-{time.time_ns()}")).info.run_id
    latencies = []
    for step in range(calls + 5):
        start = time.perf_counter()
        client.log_metric(run_id, "loss", float(step), step=step)
        latencies.append(time.perf_counter() - start)
    rates = []
    for batch in range(batches):
        metrics = [Metric(f"m{i % 20}", float(i), 0, batch * 1000 + i) for i in range(1000)]
        start = time.perf_counter()
        client.log_batch(run_id, metrics=metrics)
        rates.append(1000 / (time.perf_counter() - start))
    return {
        "log_metric_ms": statistics.median(latencies[5:]) * 1000,
        "log_batch_per_s": statistics.median(rates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

    state = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    state.chmod(0o755)
    plain_dir = Path(tempfile.mkdtemp(prefix="bench-plain-"))
    platform = LocalPlatform(state, progress=lambda _: None)
    plain = None
    try:
        details = platform.up()
        port = _free_port()
        plain = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--port", str(port)],
            cwd=plain_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        plain_uri = f"http://127.0.0.1:{port}"
        _wait(plain_uri)
        results = {
            "plain mlflow server": measure(plain_uri, None, args.calls, args.batches),
            "platform": measure(
                details["tracking_uri"],
                (details["username"], details["password"]),
                args.calls,
                args.batches,
            ),
        }
    finally:
        if plain is not None:
            os.killpg(plain.pid, 15)
        platform.down()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(plain_dir, ignore_errors=True)

    base, ours = results["plain mlflow server"], results["platform"]
    print(f"tracking server, {args.calls} log_metric calls, {args.batches} log_batch calls")
    print(f"{'server':<22}{'log_metric ms':>15}{'log_batch metrics/s':>22}")
    for name, figures in results.items():
        print(f"{name:<22}{figures['log_metric_ms']:15.1f}{figures['log_batch_per_s']:22.0f}")
    print(
        f"platform vs plain: log_metric {base['log_metric_ms'] / ours['log_metric_ms']:.2f}x "
        f"faster (target 5x), log_batch {ours['log_batch_per_s'] / base['log_batch_per_s']:.2f}x "
        f"(target >= 9000/s)"
    )


if __name__ == "__main__":
    main()
