"""The referrals part's public use cases (each commits once): submission, reading, review.

Other parts and the edges (api.py, the console, reports, documents) call these names only.
"""

from __future__ import annotations

from .reading import list_for, load, matches, read
from .review import (
    accept,
    provide_information,
    reject,
    request_information,
    review,
    withdraw,
    withdraw_erased,
)
from .submission import NEEDED_WITHOUT_CONSENT, submit

__all__ = [
    "NEEDED_WITHOUT_CONSENT",
    "accept",
    "list_for",
    "load",
    "matches",
    "provide_information",
    "read",
    "reject",
    "request_information",
    "review",
    "submit",
    "withdraw",
    "withdraw_erased",
]
