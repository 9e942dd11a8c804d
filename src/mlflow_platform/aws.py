"""AWS clients from the standard SDK configuration, call accounting and channel errors.

Profiles, AWS_REGION, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> all work because clients
come from a plain boto3 session: no endpoint is ever set here.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

import boto3
import botocore.exceptions
from botocore.config import Config

from mlflow_platform.errors import PlatformError

_READ = re.compile(r"^(List|Get|Describe|Search|Head)")
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_PROTON_GONE = {"SubscriptionRequiredException", "UnrecognizedClientException"}


class ChannelError(PlatformError):
    """A channel could not be used; the message names it and says what to do."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel


@dataclass
class CallLog:
    """Every API operation the clients sent, in order, split into reads and writes."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def record(self, service: str, operation: str) -> None:
        self.calls.append((service, operation))

    @property
    def reads(self) -> list[str]:
        return [f"{s}:{o}" for s, o in self.calls if _READ.match(o)]

    @property
    def writes(self) -> list[str]:
        return [f"{s}:{o}" for s, o in self.calls if not _READ.match(o)]

    def summary(self) -> dict[str, object]:
        return {
            "reads": len(self.reads),
            "writes": len(self.writes),
            "operations": dict(Counter(f"{s}:{o}" for s, o in self.calls)),
        }


@dataclass
class Clients:
    """One session's clients, created on first use and counted by `log`."""

    session: boto3.Session
    log: CallLog = field(default_factory=CallLog)
    _made: dict[str, object] = field(default_factory=dict)

    def __call__(self, service: str):
        if service not in self._made:
            client = self.session.client(
                service, config=Config(retries={"mode": "standard", "max_attempts": 5})
            )
            name = client.meta.service_model.service_name
            # Counted when the parameters are built: a `before-call` handler may answer the call
            # itself (botocore's Stubber does), and later handlers would not see it.
            client.meta.events.register(
                f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}",
                lambda model, **_: self.log.record(name, model.name),
            )
            self._made[service] = client
        return self._made[service]

    @property
    def region(self) -> str | None:
        return self.session.region_name


def session(*, profile: str | None = None, region: str | None = None) -> boto3.Session:
    """AWS_REGION is honoured too: other SDKs and AWS's own runtimes set it, botocore reads only
    AWS_DEFAULT_REGION and the profile."""
    try:
        made = boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as error:
        raise PlatformError(f"AWS profile {profile!r} is not configured: {error}") from None
    if made.region_name is None and os.environ.get("AWS_REGION"):
        made = boto3.Session(profile_name=profile, region_name=os.environ["AWS_REGION"])
    return made


def channel_error(channel: str, error: Exception, *, bucket: str | None = None) -> ChannelError:
    """Translate an SDK error into what the operator should do about it."""
    if isinstance(error, ChannelError):
        return error
    if isinstance(error, botocore.exceptions.NoRegionError):
        return ChannelError(channel, "no AWS region is configured: set AWS_REGION or --region")
    if isinstance(
        error, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return ChannelError(
            channel,
            "no AWS credentials were found: set AWS_PROFILE (or --profile), or the "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables",
        )
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return ChannelError(channel, f"cannot reach the AWS endpoint: {error}")
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        operation = error.operation_name
        if code == "NoSuchBucket" or (operation == "HeadBucket" and code in ("404", "NotFound")):
            return ChannelError(
                channel,
                f"bucket {bucket!r} does not exist: create it, or fix `bucket` in publish.yaml",
            )
        if channel == "proton" and (code in _PROTON_GONE or "end of support" in message.lower()):
            return ChannelError(
                channel,
                f"AWS Proton is not available to this account ({code}: {message}); Proton ended "
                "support on 2026-10-07: publish with `--target servicecatalog`",
            )
        if code in _ACCESS_DENIED:
            return ChannelError(
                channel,
                f"access denied to {operation} ({message}): grant the publishing identity "
                "that permission",
            )
        return ChannelError(channel, f"{operation} failed: {code}: {message}")
    return ChannelError(channel, f"{type(error).__name__}: {error}")
