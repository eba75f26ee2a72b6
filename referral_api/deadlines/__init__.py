"""Deadlines and escalation: nothing waits unnoticed (table, models, evaluate, visibility, cli).

Importing the part registers who hears of an overdue item (webhooks/visibility) and the periodic
evaluation the webhook worker runs (webhooks/worker.register_periodic).
"""

from __future__ import annotations

from . import visibility as visibility

__all__ = ["visibility"]
