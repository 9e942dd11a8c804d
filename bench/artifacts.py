"""Benchmark a large artifact through a team API against a direct S3 transfer of the same file.

platform: MLflow's own client (`MlflowClient.log_artifact`, `download_artifacts`) configured only
          by the local platform's `client_environment`: the tracking URI is the team API
          stand-in, the server (MLflow 3.18, presigned-only) signs S3 URLs and the client moves
          the bytes to and from the bucket itself.
direct:   boto3 `upload_file` / `download_file` of the same file to the same S3 endpoint (moto's
          server on loopback) with boto3's default TransferConfig (8 MiB parts, 10 threads):
          what a data scientist who went to S3 directly would get, so the baseline of the goal.
sized:    the same boto3 calls with MLflow's part sizes and thread count (10 MiB upload parts,
          100 MiB download ranges, min(2 x CPUs, 20) threads): no goal, it separates what the
          part sizes cost from what the platform's round trips cost.

Each case runs in a fresh Python process (imports done before the clock starts), the cases
interleaved and their order rotated in each repetition; figures are medians. The speed ratio is
direct time / platform time (= platform throughput / direct throughput); goal >= 0.7 in each
direction. The bytes through the tracking server are what the team API logged for the platform's
transfer requests (request and response bodies, `team-api.log`) as a fraction of the artifact
bytes moved; goal: none beyond the signing JSON (< 1 MiB, < 1% of the artifact).

    python bench/artifacts.py [--mib 300] [--repeats 3] [--auth basic|iam]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

MiB = 1024 * 1024
RATIO_GOAL = 0.7
CASES = ("platform", "direct", "sized")
WORKER_TIMEOUT = 600  # seconds, for one case's upload and download


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


# -- the workers (a fresh process per case and repetition) --------------------------------
def _log_lines(log: Path) -> list[dict]:
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _platform_worker(job: dict) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.create_experiment(f"bench-artifacts-{time.time_ns()}")
    run = client.create_run(experiment).info.run_id
    log = Path(job["team_api_log"])
    marks = [len(_log_lines(log))]
    started = time.perf_counter()
    client.log_artifact(run, job["file"], "bench")
    upload = time.perf_counter() - started
    marks.append(len(_log_lines(log)))
    started = time.perf_counter()
    got = client.download_artifacts(run, f"bench/{Path(job['file']).name}", job["out"])
    download = time.perf_counter() - started
    lines = _log_lines(log)
    return {
        "upload_s": upload,
        "download_s": download,
        "downloaded": got,
        "crossed": {"upload": lines[marks[0] : marks[1]], "download": lines[marks[1] :]},
    }


def _direct_worker(job: dict) -> dict:
    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client(
        "s3", endpoint_url=job["s3_endpoint"], region_name=job["region"],
    )  # fmt: skip
    up, down = TransferConfig(), TransferConfig()
    if job["case"] == "sized":
        up = TransferConfig(
            multipart_threshold=1, multipart_chunksize=job["upload_part"],
            max_concurrency=job["threads"],
        )  # fmt: skip
        down = TransferConfig(
            multipart_threshold=1, multipart_chunksize=job["download_part"],
            max_concurrency=job["threads"],
        )  # fmt: skip
    key = f"direct/{time.time_ns()}/{Path(job['file']).name}"
    started = time.perf_counter()
    s3.upload_file(job["file"], job["bucket"], key, Config=up)
    upload = time.perf_counter() - started
    out = Path(job["out"]) / Path(job["file"]).name
    started = time.perf_counter()
    s3.download_file(job["bucket"], key, str(out), Config=down)
    download = time.perf_counter() - started
    return {"upload_s": upload, "download_s": download, "downloaded": str(out), "crossed": {}}


def worker(job: dict) -> None:
    result = (_platform_worker if job["case"] == "platform" else _direct_worker)(job)
    got = Path(result["downloaded"])
    result["intact"] = got.stat().st_size == job["size"] and _sha256(got) == job["sha256"]
    print(json.dumps(result))


# -- the benchmark -------------------------------------------------------------------------
def _client_env(details: dict, home: Path) -> dict[str, str]:
    """Nothing of this process's MLflow or AWS settings: only what the platform publishes."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    return {
        **kept,
        **details["client_environment"],
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
    }


def _direct_env(home: Path, s3_credentials: dict[str, str]) -> dict[str, str]:
    """The local S3 endpoint's credentials in the environment (not on the command line)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    return {
        **kept,
        "AWS_ACCESS_KEY_ID": s3_credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": s3_credentials["aws_secret_access_key"],
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
    }


def _run_case(job: dict, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{job['case']} transfer failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["intact"]:
        raise RuntimeError(f"{job['case']}: the downloaded file differs from the uploaded one")
    return result


def _empty_bucket(s3, bucket: str) -> None:
    """Moto keeps objects in memory (spooled to /tmp): drop each repetition's."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _endpoint(line: dict) -> str:
    """A logged request's method and route, without the experiment and run ids."""
    return f"{line['method']} {re.sub(r'/[0-9]+/.*', '/...', line['path'])}"


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300, help="artifact size in MiB")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each case")
    parser.add_argument("--auth", choices=("basic", "iam"), default="basic")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0

    import boto3
    from mlflow.environment_variables import (
        MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE,
        MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE,
    )
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

    from mlflow_platform.local.platform import BUCKET, REGION, LocalPlatform
    from tracking_server import settings

    threads = ArtifactRepository.max_workers.fget(None)  # type: ignore[attr-defined]
    state = Path(tempfile.mkdtemp(prefix="bench-artifacts-platform-"))
    state.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="bench-artifacts-"))
    platform = LocalPlatform(state, progress=lambda _: None)
    size = args.mib * MiB
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    try:
        started = time.monotonic()
        server_env = {settings.AUTH_MODE: args.auth} if args.auth == "iam" else None
        details = platform.up(server_env=server_env)
        print(f"local platform ({args.auth}) up in {time.monotonic() - started:.0f} s",
              flush=True)  # fmt: skip
        for name in ("no-aws-config", "no-aws-credentials"):
            (work / name).write_text("")
        artifact = work / "model.bin"
        with artifact.open("wb") as file:
            for _ in range(args.mib):
                file.write(os.urandom(MiB))
        digest = _sha256(artifact)
        envs = {
            "platform": _client_env(details, work),
            "direct": _direct_env(work, details["s3_credentials"]),
            "sized": _direct_env(work, details["s3_credentials"]),
        }
        s3 = boto3.client(
            "s3", endpoint_url=details["s3_endpoint"], region_name=REGION,
            **details["s3_credentials"],
        )  # fmt: skip
        for repeat in range(args.repeats):
            order = CASES[repeat % len(CASES) :] + CASES[: repeat % len(CASES)]
            for case in order:
                out = work / f"out-{case}-{repeat}"
                out.mkdir()
                job = {
                    "case": case, "file": str(artifact), "out": str(out), "size": size,
                    "sha256": digest, "s3_endpoint": details["s3_endpoint"], "region": REGION,
                    "bucket": BUCKET, "team_api_log": str(state / "team-api.log"),
                    "threads": threads,
                    "upload_part": MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE.get(),
                    "download_part": MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE.get(),
                }  # fmt: skip
                result = _run_case(job, envs[case])
                results[case].append(result)
                print(f"  repetition {repeat + 1} {case:<9} up {result['upload_s']:6.2f} s"
                      f"  down {result['download_s']:6.2f} s", flush=True)  # fmt: skip
                shutil.rmtree(out)
                _empty_bucket(s3, BUCKET)
    except Exception as error:  # reported, then a non-zero exit
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        platform.down()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    report(results, size, args, threads)
    return 0


def report(results: dict[str, list[dict]], size: int, args: argparse.Namespace, threads: int):
    medians = {
        case: {d: statistics.median(r[f"{d}_s"] for r in runs) for d in ("upload", "download")}
        for case, runs in results.items()
    }
    print(f"\n{args.mib} MiB artifact, {args.repeats} repetitions each, auth {args.auth}, "
          f"MLflow client threads {threads}")  # fmt: skip
    print(f"{'case':<10}{'upload s':>10}{'MB/s':>8}{'spread':>13}"
          f"{'download s':>12}{'MB/s':>8}{'spread':>13}")  # fmt: skip
    for case, runs in results.items():
        m = medians[case]
        print(
            f"{case:<10}{m['upload']:10.2f}{size / 1e6 / m['upload']:8.0f}"
            f"{_spread([r['upload_s'] for r in runs]):>13}"
            f"{m['download']:12.2f}{size / 1e6 / m['download']:8.0f}"
            f"{_spread([r['download_s'] for r in runs]):>13}"
        )
    ratio = {d: medians["direct"][d] / medians["platform"][d] for d in ("upload", "download")}
    sized = {d: medians["sized"][d] / medians["platform"][d] for d in ("upload", "download")}
    crossed = {"upload": [], "download": []}
    for run in results["platform"]:
        for direction, lines in run["crossed"].items():
            crossed[direction].extend(lines)
    moved = size * 2 * len(results["platform"])
    through = {
        d: sum(c["request_bytes"] + c["response_bytes"] for c in lines)
        for d, lines in crossed.items()
    }
    requests_per = {d: len(lines) / len(results["platform"]) for d, lines in crossed.items()}
    total = sum(through.values())
    fraction = total / moved
    ratio_met = min(ratio.values()) >= RATIO_GOAL
    bytes_met = total / len(results["platform"]) < MiB and fraction < 0.01
    print(
        f"speed ratio (direct time / platform time): upload {ratio['upload']:.2f}x, "
        f"download {ratio['download']:.2f}x; goal >= {RATIO_GOAL}x each: "
        f"{'met' if ratio_met else 'MISSED'}"
    )
    print(
        f"against boto3 with MLflow's part sizes: upload {sized['upload']:.2f}x, "
        f"download {sized['download']:.2f}x (no goal)"
    )
    print(
        f"through the tracking server: {total} bytes in {sum(map(len, crossed.values()))} "
        f"requests for {moved} artifact bytes moved ({fraction:.2e}); per transfer: upload "
        f"{requests_per['upload']:.0f} requests, {through['upload'] / args.repeats:.0f} bytes, "
        f"download {requests_per['download']:.0f} requests, "
        f"{through['download'] / args.repeats:.0f} bytes; goal none beyond signing: "
        f"{'met' if bytes_met else 'MISSED'}"
    )
    print(json.dumps({
        "artifact_bytes": size, "repeats": args.repeats, "auth": args.auth,
        "client_threads": threads,
        "median_s": medians,
        "ratio_direct_over_platform": ratio,
        "ratio_sized_over_platform": sized,
        "server_bytes": total, "server_requests": sum(map(len, crossed.values())),
        "server_bytes_fraction": fraction,
        "server_endpoints": sorted({_endpoint(c) for c in crossed["upload"] + crossed["download"]}),
        "goals": {"ratio": ratio_met, "server_bytes": bytes_met},
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
