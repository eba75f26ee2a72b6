"""Validated bearer tokens, remembered by each worker process for at most TOKEN_CACHE_SECONDS.

A request whose access token this process validated less than the bound ago is answered from memory,
without reading the token, its client, organisation and person. The bound is what a change made
elsewhere may take to be seen: a token revoked, a client revoked, an organisation suspended or a
person deactivated by another process (another worker, node or command) is refused by this one at
most TOKEN_CACHE_SECONDS later. A change made by this process (any update or delete of a token,
client, organisation or person, through the ORM or a bulk statement) empties its cache at once. An
expired token is refused at its expiry, cached or not. TOKEN_CACHE_SECONDS=0 turns the cache off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..access import Actor
from ..db import utcnow

MAX_ENTRIES = 10_000
# The tables whose rows decide whether a token may act (auth/store.token_is_live).
WATCHED_TABLES = frozenset({"oauth_tokens", "oauth_clients", "organisations", "users"})
_generation = 0  # bumped by every change to a watched table made in this process


@dataclass(frozen=True)
class Entry:
    actor: Actor
    client_id: str
    expires_at: datetime  # the token's own expiry (wall clock)
    until: float  # the cache's bound (the cache's clock)
    generation: int


class TokenCache:
    """Per process: access-token hash -> the Actor it stood for when validated. `clock` (monotonic
    seconds) may be replaced, e.g. by a test driving time."""

    def __init__(self, seconds: int, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, Entry] = {}

    def get(self, digest: str) -> Entry | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.until <= self.clock() or entry.generation != _generation or entry.expires_at <= utcnow():
            self._entries.pop(digest, None)
            return None
        return entry

    def put(self, digest: str, *, actor: Actor, client_id: str, expires_at: datetime,
            generation: int) -> None:
        """Remember a token validated from rows read at `generation()` = `generation` (read before
        the rows): refused when a change of this process came in between, which the rows may miss."""
        if self.seconds <= 0 or generation != _generation:
            return
        now = self.clock()
        self._entries = make_room(self._entries, self.max_entries, now)
        self._entries[digest] = Entry(actor, client_id, expires_at, now + self.seconds, generation)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def __len__(self) -> int:
        return len(self._entries)


def make_room(entries: dict[str, Any], max_entries: int, now: float) -> dict[str, Any]:
    """`entries` (each with an `until`) with room for one more: when full, without the expired ones,
    then without the oldest. Reads one snapshot of the entries (list(), taken under the GIL), not an
    iteration another thread may change."""
    if len(entries) < max_entries:
        return entries
    kept = {key: entry for key, entry in list(entries.items()) if entry.until > now}
    while len(kept) >= max_entries:
        kept.pop(next(iter(kept)))
    return kept


def init_app(app: Flask) -> TokenCache:
    cache = TokenCache(app.config["SETTINGS"].token_cache_seconds)
    app.extensions["referral_api.token_cache"] = cache
    return cache


def current() -> TokenCache:
    return current_app.extensions["referral_api.token_cache"]


def generation() -> int:
    """This process's count of changes to the watched tables: read it before reading the rows."""
    return _generation


def invalidate_all() -> None:
    """Every entry of every cache of this process is stale from now on."""
    global _generation  # one counter per process, read by every cache
    _generation += 1


def _watched(instances: Any) -> bool:
    return any(getattr(obj, "__tablename__", None) in WATCHED_TABLES for obj in instances)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if _watched(session.dirty) or _watched(session.deleted):
        session.info["referral_api.auth_changed"] = True
        invalidate_all()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Again at commit: another greenlet of this process may have cached the rows before they changed.
    if session.info.pop("referral_api.auth_changed", False):
        invalidate_all()


@event.listens_for(Session, "do_orm_execute")
def _bulk_change(state: Any) -> None:
    table = getattr(state.statement, "table", None)
    if (state.is_update or state.is_delete) and getattr(table, "name", None) in WATCHED_TABLES:
        state.session.info["referral_api.auth_changed"] = True
        invalidate_all()
