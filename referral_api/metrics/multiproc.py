"""The folder where gunicorn's workers keep their counters (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path


def prepare(environ: MutableMapping[str, str], *, port: int) -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR (kept if given, else a folder per port in the temporary folder),
    create it (mode 0700) and empty it: counters start at zero with each start of the server."""
    folder = Path(environ.get("PROMETHEUS_MULTIPROC_DIR") or
                  Path(tempfile.gettempdir()) / f"referral-api-metrics-{os.getuid()}-{port}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise SystemExit(f"PROMETHEUS_MULTIPROC_DIR {folder} belongs to another user; choose another folder")
    for stale in folder.glob("*.db"):
        stale.unlink()
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder
