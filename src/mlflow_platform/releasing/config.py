"""The publishing configuration (publish.yaml): where bundles go and who may provision.

Checked in full before any AWS call, so a typo never leaves half a publication behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import yaml

from mlflow_platform import yaml_io
from mlflow_platform.errors import PlatformError
from mlflow_platform.paths import ROOT

CONFIG_FILE = ROOT / "publish.yaml"
OLDER_VERSIONS = ("keep-active", "deprecate", "deactivate")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user|group)/[\w+=,.@/*-]+$")
_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://\S+$")

Channel = Literal["proton", "servicecatalog"]
CHANNELS: tuple[Channel, ...] = ("proton", "servicecatalog")
OlderVersions = Literal["keep-active", "deprecate", "deactivate"]


class ConfigError(PlatformError):
    pass


@dataclass(frozen=True, kw_only=True)
class Support:
    """How end users get help: shown with each product in the Service Catalog console."""

    description: str = ""
    email: str = ""
    url: str = ""


@dataclass(frozen=True, kw_only=True)
class ServiceCatalogConfig:
    portfolio: str
    provider: str
    launch_role_arn: str
    principals: tuple[str, ...]
    older_versions: OlderVersions
    support: Support


@dataclass(frozen=True, kw_only=True)
class PublishConfig:
    targets: tuple[Channel, ...]
    bucket: str
    prefix: str
    servicecatalog: ServiceCatalogConfig

    def key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)


def _get(data: Mapping, key: str, default: object) -> object:
    """A setting, or its default when it is absent or empty (`key:` with no value)."""
    value = data.get(key)
    return default if value is None else value


def parse(data: object, *, source: str) -> PublishConfig:
    problems: list[str] = []

    def bad(key: str, value: object, rule: str) -> None:
        problems.append(f"{source}: {key} = {value!r}: {rule}")

    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: must be a mapping of settings, found {type(data).__name__}")
    targets = _get(data, "targets", list(CHANNELS))
    if not isinstance(targets, list) or not targets or any(t not in CHANNELS for t in targets):
        bad("targets", targets, f"must be a non-empty list of {', '.join(CHANNELS)}")
        targets = []
    bucket = str(_get(data, "bucket", ""))
    if not _BUCKET.match(bucket):
        bad("bucket", bucket, "must name the S3 bucket that receives bundles and templates")
    prefix = str(_get(data, "prefix", ""))
    if not _PREFIX.match(prefix):
        bad("prefix", prefix, "must be empty or S3 key segments each ending in '/'")
    catalog = _get(data, "servicecatalog", {})
    if not isinstance(catalog, Mapping):
        bad("servicecatalog", catalog, "must be a mapping")
        catalog = {}
    portfolio = str(_get(catalog, "portfolio", "MLflow platform"))
    if not 1 <= len(portfolio) <= 100:
        bad("servicecatalog.portfolio", portfolio, "must be 1 to 100 characters")
    provider = str(_get(catalog, "provider", ""))
    if not 1 <= len(provider) <= 50:
        bad("servicecatalog.provider", provider, "must be 1 to 50 characters")
    role = str(_get(catalog, "launch_role_arn", ""))
    if "servicecatalog" in targets and not _ROLE_ARN.match(role):
        bad(
            "servicecatalog.launch_role_arn",
            role,
            "must be the ARN of the IAM role that Service Catalog launches products with",
        )
    principals = _get(catalog, "principals", [])
    if not isinstance(principals, list) or any(
        not _PRINCIPAL_ARN.match(str(p)) for p in principals
    ):
        bad(
            "servicecatalog.principals",
            principals,
            "must be a list of IAM role, user or group ARNs",
        )
        principals = []
    older = str(_get(catalog, "older_versions", "keep-active"))
    if older not in OLDER_VERSIONS:
        bad("servicecatalog.older_versions", older, f"must be one of {', '.join(OLDER_VERSIONS)}")
    support = _get(catalog, "support", {})
    if not isinstance(support, Mapping):
        bad("servicecatalog.support", support, "must be a mapping of description, email, url")
        support = {}
    # Limits and patterns of botocore's CreateProduct: SupportDescription, SupportEmail, SupportUrl.
    support_description = str(_get(support, "description", ""))
    if len(support_description) > 8191:
        bad("servicecatalog.support.description", support_description[:40] + "...",
            "must be at most 8191 characters")  # fmt: skip
    support_email = str(_get(support, "email", ""))
    if support_email and (len(support_email) > 254 or not _EMAIL.match(support_email)):
        bad("servicecatalog.support.email", support_email, "must be an email address")
    support_url = str(_get(support, "url", ""))
    if support_url and (len(support_url) > 2083 or not _URL.match(support_url)):
        bad("servicecatalog.support.url", support_url, "must be an http:// or https:// URL")
    unknown = sorted(set(data) - {"targets", "bucket", "prefix", "servicecatalog"})
    unknown += sorted(
        f"servicecatalog.{k}"
        for k in set(catalog)
        - {"portfolio", "provider", "launch_role_arn", "principals", "older_versions", "support"}
    )
    unknown += sorted(
        f"servicecatalog.support.{k}" for k in set(support) - {"description", "email", "url"}
    )
    for key in unknown:
        problems.append(f"{source}: {key}: unknown setting")
    if problems:
        raise ConfigError("\n".join(problems))
    return PublishConfig(
        targets=tuple(targets),
        bucket=bucket,
        prefix=prefix,
        servicecatalog=ServiceCatalogConfig(
            portfolio=portfolio,
            provider=provider,
            launch_role_arn=role,
            principals=tuple(str(p) for p in principals),
            older_versions=older,  # type: ignore[arg-type]
            support=Support(description=support_description, email=support_email, url=support_url),
        ),
    )


def load(path: Path = CONFIG_FILE) -> PublishConfig:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: the publishing configuration is missing") from None
    try:
        data = yaml_io.load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse(data, source=path.name)


def channels(
    names: list[str] | None, default: tuple[Channel, ...] = CHANNELS
) -> tuple[Channel, ...]:
    """--target values, checked."""
    for name in names or []:
        if name not in CHANNELS:
            raise ConfigError(f"--target {name!r}: must be one of {', '.join(CHANNELS)}")
    return tuple(cast(list[Channel], names)) if names else default
