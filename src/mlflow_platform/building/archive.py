"""Proton bundle archives: gzip tar, files at the archive root, byte-identical for equal input."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping

# Template sync reads this file from the repository; a bundle uploaded through the API has no
# use for it.
SYNC_ONLY = frozenset({".template-registration.yaml"})


def tar_gz(files: Mapping[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in files if p not in SYNC_ONLY):
            data = files[path].encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
