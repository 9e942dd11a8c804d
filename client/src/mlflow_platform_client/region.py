"""The region a signature is scoped to: API Gateway checks it against the API's own region."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

# <api-id>.execute-api.<region>.amazonaws.com, its China and VPC-endpoint forms (API Gateway
# Developer Guide, "Invoke an API": the default endpoint of an HTTP API).
_EXECUTE_API = re.compile(
    r"^(?:[a-z0-9-]+\.)*[a-z0-9-]+\.execute-api\."
    r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$"
)
REGION_SETTINGS = ("AWS_REGION", "AWS_DEFAULT_REGION")


class RegionError(ValueError):
    """No region for a host that is not an execute-api name (a custom domain)."""


def region_for(url: str, *, configured: Callable[[], str | None] = lambda: None) -> str:
    """The region of the API at `url`: read from an execute-api host name; for a custom domain,
    AWS_REGION, AWS_DEFAULT_REGION, then `configured` (the AWS profile's region)."""
    host = (urlsplit(url).hostname or "").lower()
    found = _EXECUTE_API.match(host)
    if found:
        return found["region"]
    for name in REGION_SETTINGS:
        if os.environ.get(name):
            return os.environ[name]
    region = configured()
    if region:
        return region
    raise RegionError(
        f"cannot tell the AWS region of {host!r}: it is not an execute-api host name "
        "(<api-id>.execute-api.<region>.amazonaws.com); set AWS_REGION (or AWS_DEFAULT_REGION, "
        "or region in the AWS profile) to the region of the team API"
    )
