"""The tracking-server image: its size, and how long a container takes from start to healthy.

The image is built (or found in the engine's cache) as `invoke image --build-only` builds it,
then started several times against the local platform's PostgreSQL and S3 endpoint, read-only
with a writable /tmp as its task runs it; each start is timed until the image's own health
check passes. Prints the size and the median, min and max of the starts.

    python bench/image.py [--engine podman] [--base-image REF] [--starts 3]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sqlalchemy

from mlflow_platform.image import engine as image_engine
from mlflow_platform.local.platform import ADMIN, BUCKET, REGION, LocalPlatform
from tracking_server import settings as names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(local: LocalPlatform, details: dict, database: str, port: int) -> dict:
    url = sqlalchemy.engine.make_url(local.database_uri())
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    engine.dispose()
    return {
        names.AUTH_MODE: "basic",
        names.DB_HOST: "127.0.0.1",
        names.DB_PORT: str(url.port),
        names.DB_NAME: database,
        names.DB_USERNAME: url.username,
        names.DB_PASSWORD: url.password,
        names.ADMIN_USERNAME: ADMIN,
        names.ADMIN_PASSWORD: secrets.token_urlsafe(18),
        names.SECRET_KEY: secrets.token_urlsafe(48),
        names.ARTIFACTS_DESTINATION: f"s3://{BUCKET}/bench",
        names.BIND_ADDRESS: "127.0.0.1",
        names.SERVER_PORT: str(port),
        "MLFLOW_S3_ENDPOINT_URL": details["s3_endpoint"],
        "AWS_ACCESS_KEY_ID": details["s3_credentials"]["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": details["s3_credentials"]["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="podman")
    parser.add_argument("--base-image", default=None)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()

    options = image_engine.build_options(engine=args.engine, base_image=args.base_image)
    started = time.monotonic()
    reference = image_engine.build(options)
    built = time.monotonic() - started
    test = image_engine.health_test(args.engine, reference)

    state = Path(tempfile.mkdtemp(prefix="mlflow-bench-image-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    times = []
    try:
        details = local.up()
        for start in range(args.starts):
            port = _free_port()
            # A fresh database each start: the first start of a task, schema created.
            environment = _environment(local, details, f"bench_{start}", port)
            name = f"mlflow-bench-{start}-{time.time_ns() % 10**8}"
            image_engine.start(
                image_engine.RunOptions(
                    engine=args.engine, reference=reference, name=name, environment=environment
                )
            )
            try:
                times.append(image_engine.wait_healthy(args.engine, name, test))
            finally:
                image_engine.remove(args.engine, name)
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)

    size = image_engine.size_bytes(args.engine, reference)
    print(f"image {reference} ({args.engine}): {size / 1e9:.2f} GB; build {built:.0f}s")
    print(
        f"start to healthy over {len(times)} starts: median {statistics.median(times):.1f}s "
        f"(min {min(times):.1f}s, max {max(times):.1f}s)"
    )


if __name__ == "__main__":
    main()
