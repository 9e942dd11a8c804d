"""`invoke image`: build the tracking-server image and push it to ECR under its content tag.

The tag is a hash of src/tracking_server (image.image_tag), so when ECR already holds it there
is nothing to build: the check comes first and needs no container engine. Otherwise the engine
is checked before anything is created, the repository is made if missing (immutable tags, scan
on push, encrypted), and the registry password goes to the engine on standard input, never on
a command line or in a log. The build itself is image_engine's, docker or podman alike;
`build_only` builds under the local name and touches no AWS.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace

import botocore.exceptions

from mlflow_platform.aws import Clients, channel_error
from mlflow_platform.errors import PlatformError
from mlflow_platform.image import engine as image_engine
from mlflow_platform.image import tag as image
from mlflow_platform.paths import IMAGE_SOURCE

Progress = Callable[[str], None]


class ImageError(PlatformError):
    pass


@dataclass(frozen=True, kw_only=True)
class ImageResult:
    uri: str
    pushed: bool
    steps: tuple[str, ...]


def _exists(ecr, repository: str, tag: str) -> bool | None:
    """True or False; None when the repository itself is missing."""
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        return True
    except botocore.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "ImageNotFoundException":
            return False
        if code == "RepositoryNotFoundException":
            return None
        raise


def check_engine(engine: str) -> None:
    if shutil.which(engine) is None:
        raise ImageError(
            f"no container engine: {engine!r} is not on PATH. Install Docker (or pass --engine "
            "podman), or build the image elsewhere and set the template's ImageUri input"
        )
    result = subprocess.run([engine, "info"], capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ImageError(
            f"no container engine: `{engine} info` failed ({reason[0]}). Start the engine, or "
            "build the image elsewhere and set the template's ImageUri input"
        )


def build_only(
    options: image_engine.BuildOptions, *, dry_run: bool = False, progress: Progress = print
) -> ImageResult:
    """The image built on this machine under its local name; no AWS, nothing pushed."""
    reference = image_engine.local_reference()
    command = image_engine.build_command(options, reference)
    if not dry_run:
        check_engine(options.engine)
        image_engine.build(options, reference, progress=progress)
    return ImageResult(uri=reference, pushed=False, steps=(" ".join(command),))


def build_and_push(
    clients: Clients,
    *,
    engine: str = "docker",
    build: image_engine.BuildOptions | None = None,
    dry_run: bool = False,
    progress: Progress = lambda _: None,
) -> ImageResult:
    options = replace(build or image_engine.BuildOptions(), engine=engine)
    tag = image.image_tag()
    ecr = clients("ecr")
    try:
        registry = clients("sts").get_caller_identity()["Account"]
        host = f"{registry}.dkr.ecr.{clients.region}.amazonaws.com"
        uri = f"{host}/{image.REPOSITORY}:{tag}"
        found = _exists(ecr, image.REPOSITORY, tag)
    except Exception as error:
        raise ImageError(str(channel_error("ecr", error))) from None
    if found:
        return ImageResult(uri=uri, pushed=False, steps=(f"{uri} is already in ECR",))
    steps = (
        *(["ecr:CreateRepository " + image.REPOSITORY] if found is None else []),
        f"{engine} build {IMAGE_SOURCE.name} -> {uri}",
        f"{engine} push {uri}",
    )
    if dry_run:
        return ImageResult(uri=uri, pushed=False, steps=steps)
    check_engine(engine)
    try:
        if found is None:
            progress(f"creating ECR repository {image.REPOSITORY}")
            ecr.create_repository(
                repositoryName=image.REPOSITORY,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
                encryptionConfiguration={"encryptionType": "AES256"},
            )
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    except Exception as error:
        raise ImageError(str(channel_error("ecr", error))) from None
    user, _, password = base64.b64decode(token).decode().partition(":")
    image_engine.run(
        [engine, "login", "--username", user, "--password-stdin", host],
        what="registry login",
        stdin=password,
    )
    image_engine.build(options, uri, progress=progress)
    progress(f"pushing {uri}")
    image_engine.run([engine, "push", uri], what="image push")
    return ImageResult(uri=uri, pushed=True, steps=steps)
