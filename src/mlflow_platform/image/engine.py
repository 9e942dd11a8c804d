"""The tracking-server image on a container engine: building it, and running it as its task does.

Docker and podman take the same commands except where they differ in ways that broke builds:
- podman 4.3's bare `--pull` means "always", which fails with no registry in reach, so podman is
  never asked to pull (a missing base is still pulled); docker pulls the official base afresh
  (`--pull`) but not a locally made one, which no registry holds.
- podman writes OCI images by default, and OCI image configs have no HEALTHCHECK: `--format
  docker` keeps it (ECS reads the task definition's check, but `docker run` and the smoke test
  read the image's).
- A CA bundle for pip (a network that inspects TLS) goes to the build as the secret `pip-ca`:
  mounted for the pip steps, never stored in a layer.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow_platform.errors import PlatformError
from mlflow_platform.image import tag as image
from mlflow_platform.paths import IMAGE_SOURCE

ENGINES = ("docker", "podman")
CA_SECRET = "pip-ca"
USER = "10001:10001"
"""The image's user and group (Dockerfile), which the task definition names too."""


class EngineError(PlatformError):
    pass


def flavour(engine: str) -> str:
    """`podman` or `docker`: how the engine command is spoken to (a path or a wrapper named
    after either speaks its language; anything else is taken to speak docker's)."""
    return "podman" if Path(engine).name.startswith("podman") else "docker"


def default_ca_bundle(environ: dict[str, str] | None = None) -> Path | None:
    """pip's own CA setting on this machine (PIP_CERT), when it names a file."""
    value = (os.environ if environ is None else environ).get("PIP_CERT", "")
    return Path(value) if value and Path(value).is_file() else None


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    engine: str = "docker"
    base_image: str | None = None
    """None: the Dockerfile's default, the official python:3.11-slim."""
    ca_bundle: Path | None = None
    context: Path = IMAGE_SOURCE


def build_options(
    *, engine: str, base_image: str | None = None, ca_bundle: str | None = None
) -> BuildOptions:
    """Options from a task's inputs: without a CA bundle, pip's own on this machine."""
    return BuildOptions(
        engine=engine,
        base_image=base_image,
        ca_bundle=Path(ca_bundle) if ca_bundle else default_ca_bundle(),
    )


def local_reference(tag: str | None = None) -> str:
    """What `--build-only` tags the image as: the repository name and the content tag."""
    return f"{image.REPOSITORY}:{tag or image.image_tag()}"


def build_command(options: BuildOptions, reference: str) -> list[str]:
    if options.base_image is not None and not options.base_image.strip():
        raise EngineError("base image '': must name an image (or be left out)")
    if options.ca_bundle is not None and not options.ca_bundle.is_file():
        raise EngineError(f"CA bundle {str(options.ca_bundle)!r}: must be a readable file")
    command = [options.engine, "build"]
    if flavour(options.engine) == "podman":
        # Host network: the RUN steps only reach out (to PyPI); no bridge or firewall set-up.
        command += ["--format", "docker", "--network", "host"]
    elif options.base_image is None:
        command += ["--pull"]
    command += ["--tag", reference]
    if options.base_image is not None:
        command += ["--build-arg", f"BASE_IMAGE={options.base_image}"]
    if options.ca_bundle is not None:
        command += ["--secret", f"id={CA_SECRET},src={options.ca_bundle}"]
    return [*command, str(options.context)]


def run(command: Sequence[str], *, what: str, stdin: str | None = None) -> str:
    """Runs an engine command; its last lines of output name the failure."""
    try:
        result = subprocess.run(list(command), input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise EngineError(f"{what} failed: {command[0]!r} is not on PATH") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise EngineError(f"{what} failed ({' '.join(command[:2])}): " + " | ".join(detail))
    return result.stdout


def build(
    options: BuildOptions,
    reference: str | None = None,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> str:
    """Builds the image locally; returns its reference."""
    reference = reference or local_reference()
    progress(f"building {reference} with {options.engine}")
    run(build_command(options, reference), what="image build")
    return reference


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How the task definition runs the container, on this machine: its user, a read-only root
    filesystem with a writable /tmp only, and the host's loopback network."""

    engine: str
    reference: str
    name: str
    environment: dict[str, str]
    """Passed by name only (`--env NAME`): values, secrets among them, stay off the command
    line; the engine reads them from its own environment."""
    user: str | None = None
    """None: the image's own USER."""
    tmp_size_mib: int = 256
    command: tuple[str, ...] = ()
    """The task definition's Command: arguments to the image's ENTRYPOINT (none: the server)."""
    read_only_files: tuple[tuple[str, str], ...] = ()
    """(host path, container path) pairs mounted read-only: local stand-ins only."""


def run_command(options: RunOptions) -> list[str]:
    command = [options.engine, "run", "--detach", "--name", options.name, "--network", "host"]
    command += ["--read-only", "--tmpfs", f"/tmp:rw,nosuid,nodev,size={options.tmp_size_mib}m"]
    if flavour(options.engine) == "podman":
        # podman adds writable /run, /tmp and /var/tmp to a read-only container unless told
        # not to; the task has only its /tmp volume. No systemd timer for the health check
        # (there is no systemd here): the check is run on demand.
        command += ["--read-only-tmpfs=false", "--health-interval", "disable"]
    if options.user is not None:
        command += ["--user", options.user]
    for host, container in options.read_only_files:
        command += ["--volume", f"{host}:{container}:ro"]
    for name in sorted(options.environment):
        command += ["--env", name]
    return [*command, options.reference, *options.command]


def start(options: RunOptions) -> str:
    """Starts the container detached; returns its id."""
    env = {**os.environ, **options.environment}
    result = subprocess.run(run_command(options), capture_output=True, text=True, env=env)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise EngineError("container start failed: " + " | ".join(detail))
    return result.stdout.strip().splitlines()[-1]


def inspect(engine: str, what: str, name: str, template: str) -> str:
    """One field of `engine inspect` (`image` or `container`) as a Go template renders it."""
    return run([engine, what, "inspect", "--format", template, name], what=f"{what} inspect")


def health_test(engine: str, reference: str) -> list[str]:
    """The image's HEALTHCHECK command (["CMD", ...]); empty when the image has none."""
    import json

    found = json.loads(inspect(engine, "image", reference, "{{json .Config.Healthcheck}}"))
    return list((found or {}).get("Test") or [])


def healthy(engine: str, name: str, test: Sequence[str]) -> bool:
    """The image's health check, run in the container as the engine runs it."""
    if not test or test[0] != "CMD":
        raise EngineError(f'health check {list(test)!r}: must be an exec form ["CMD", ...]')
    result = subprocess.run([engine, "exec", name, *test[1:]], capture_output=True)
    return result.returncode == 0


def wait_healthy(engine: str, name: str, test: Sequence[str], *, timeout: float = 180) -> float:
    """Seconds until the health check first passes; the container's log tail if it exits."""
    import time

    started = time.monotonic()
    while not healthy(engine, name, test):
        state = inspect(engine, "container", name, "{{.State.Status}}").strip()
        if state not in ("running", "created", "configured", "initialized"):
            tail = "\n".join(logs(engine, name).splitlines()[-20:])
            raise EngineError(f"container {name} is {state}, never healthy; its log:\n{tail}")
        if time.monotonic() - started > timeout:
            raise EngineError(f"container {name} not healthy after {timeout:.0f}s")
        time.sleep(0.5)
    return time.monotonic() - started


def logs(engine: str, name: str) -> str:
    result = subprocess.run([engine, "logs", name], capture_output=True, text=True)
    return result.stdout + result.stderr


def stop(engine: str, name: str, *, timeout: int = 30) -> int:
    """SIGTERM, SIGKILL after `timeout` seconds as ECS does (stopTimeout); the exit code."""
    run([engine, "stop", "--time", str(timeout), name], what="container stop")
    return int(inspect(engine, "container", name, "{{.State.ExitCode}}").strip())


def wait(engine: str, name: str, *, timeout: float = 300) -> int:
    """Until the container exits (an init container); its exit code."""
    result = subprocess.run([engine, "wait", name], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise EngineError(f"container wait failed: {result.stderr.strip()}")
    return int(result.stdout.strip().splitlines()[-1])


def remove(engine: str, name: str) -> None:
    subprocess.run([engine, "rm", "--force", name], capture_output=True)


def size_bytes(engine: str, reference: str) -> int:
    return int(inspect(engine, "image", reference, "{{.Size}}").strip())


def task_environment(container: dict, values: dict[str, str]) -> dict[str, str]:
    """What a task definition's container receives (its Environment and its Secrets, which ECS
    hands over as environment variables), by name, with values from this machine.

    A name the task definition passes with no value here, or a value here for a name it does
    not pass, is a drift between the image's test and the template, refused by name.
    """
    passed = [item["Name"] for item in container.get("Environment", [])]
    passed += [item["Name"] for item in container.get("Secrets", [])]
    missing = sorted(set(passed) - set(values))
    unknown = sorted(set(values) - set(passed))
    if missing or unknown:
        raise EngineError(
            "the task definition's container settings and the local values differ: "
            + "; ".join(
                [f"{name} is passed by the task definition, no local value" for name in missing]
                + [
                    f"{name} has a local value, not passed by the task definition"
                    for name in unknown
                ]
            )
        )
    return {name: values[name] for name in passed}
