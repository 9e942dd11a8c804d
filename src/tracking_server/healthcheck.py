"""Container health check: the tracking server answers /health on its own port."""

from __future__ import annotations

import os
import sys
import urllib.request

from tracking_server import settings


def main() -> int:
    port = os.environ.get(settings.SERVER_PORT) or str(settings.PORT)
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{settings.HEALTH_PATH}", timeout=4
        ) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
