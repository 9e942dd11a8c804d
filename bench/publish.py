"""Benchmark a no-op `invoke publish`: API calls and wall time, both channels, both templates.

The first publication runs as the baseline in the same session. Proton and Service Catalog are
the test suite's fakes behind real boto3 clients (every request validated against botocore's
models), S3 is moto's server: the figures count calls, which is what the target is about, and
time the tooling's own work (fresh SDK sessions, planning, hashing), not AWS latency.
Target: zero write calls and at most two read calls per template and channel.

    python bench/publish.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The script folder holds bench/tracking_server.py, which would shadow the package.
sys.path[0] = str(ROOT / "tests")

BUCKET = "bench-bundles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").disabled = True

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    scratch = tempfile.mkdtemp()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{port}",
        AWS_CONFIG_FILE=f"{scratch}/none", AWS_SHARED_CREDENTIALS_FILE=f"{scratch}/none",
    )  # fmt: skip
    try:
        import boto3
        from aws_fake import FakeAws

        from mlflow_platform import aws
        from mlflow_platform.building.stamp import bundle_unless_up_to_date
        from mlflow_platform.releasing import config as publish_config
        from mlflow_platform.releasing.publish import publish, releases
        from mlflow_platform.templates import TEMPLATES

        bundle_unless_up_to_date()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        fake = FakeAws(s3=s3)
        config = publish_config.parse(
            {
                "bucket": BUCKET,
                "servicecatalog": {
                    "launch_role_arn": "arn:aws:iam::123456789012:role/Launch",
                    "provider": "Platform team",
                    "principals": ["arn:aws:iam::123456789012:role/DataScience"],
                },
            },
            source="bench",
        )

        def once() -> tuple[float, aws.CallLog]:
            start = time.perf_counter()
            clients = aws.Clients(aws.session())
            fake.attach(clients("proton"))
            fake.attach(clients("servicecatalog"))
            outcomes = publish(clients=clients, config=config, items=releases(),
                               targets=config.targets, poll_seconds=0)  # fmt: skip
            elapsed = time.perf_counter() - start
            failed = [o.error for o in outcomes if o.error]
            if failed:
                raise SystemExit(f"publish failed: {failed}")
            return elapsed, clients.log

        first_time, first = once()
        samples, logs = [], []
        for _ in range(runs):
            elapsed, log = once()
            samples.append(elapsed)
            logs.append(log)
        pairs = len(TEMPLATES) * len(config.targets)
        log = logs[-1]
        median = statistics.median(samples)
        print(f"first publish (baseline): {len(first.reads)} reads, {len(first.writes)} writes, "
              f"{first_time:.2f} s")  # fmt: skip
        print(f"no-op publish: {len(log.reads)} reads, {len(log.writes)} writes, median "
              f"{median:.2f} s over {runs} runs (min {min(samples):.2f}, max {max(samples):.2f}); "
              f"{median / first_time:.2f}x the first publish's time")  # fmt: skip
        # S3 reads belong to Service Catalog: the record of its last completed publication.
        reads = {"proton": 0, "servicecatalog": 0}
        for call in log.reads:
            reads["proton" if call.startswith("proton:") else "servicecatalog"] += 1
        for channel, count in reads.items():
            print(f"  {channel}: {count / len(TEMPLATES):.2f} reads per template (target <= 2)")
        print(f"  writes: {len(log.writes)} (target 0); {len(log.reads) / pairs:.2f} reads per "
              "template and channel")  # fmt: skip
        for operation, count in sorted(log.summary()["operations"].items()):
            print(f"  {count} x {operation}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
