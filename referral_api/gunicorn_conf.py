"""gunicorn settings file of `referral-api serve` (`--config python:referral_api.gunicorn_conf`).

Only hooks live here; the command line sets everything else. A worker that exits leaves its counters
in PROMETHEUS_MULTIPROC_DIR; marking it dead lets its live gauges go (counters keep adding up).
"""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker process ended."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
