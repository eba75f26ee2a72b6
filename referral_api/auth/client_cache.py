"""Clients of the client credentials grant, remembered by each worker process, and never trusted to issue.

The client credentials grant is the one partners' systems call at volume. At the token endpoint it
authenticates its client from a copy this process read less than TOKEN_CACHE_SECONDS ago (the same
bound as auth/token_cache.py), without reading the client and its organisation again: that read, a
query through the ORM, cost more than the rest of the request's work in the database.

A copy decides nothing alone. The new token's INSERT takes the client's key from the client row as it
is when the INSERT runs, matched on every column the copy decided with (its secret's hash, method,
keys, scopes, grants, DPoP settings), on the client not being revoked and on its organisation being
active (`guarded_insert`). A client changed, revoked or suspended by another process reads NULL there
and the NOT NULL refuses the row: nothing is written, neither the token nor its audit event, and the
request is decided again from a fresh read (`StaleClient`, caught by the grant). Whatever a copy
refuses (a credential, a scope, a grant type, DPoP) is decided again on a fresh read as well, so a
secret rotated or a scope granted elsewhere works at once; the one-time values the first attempt
spent (a jti, a DPoP proof) are not replays in the second (`spent_by_this_request`). A change made by
this process empties the copies as it empties the token cache (token_cache.generation).

Every other grant and endpoint reads its client afresh.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from ..organisations.models import Organisation, OrganisationStatus
from . import limits, token_cache
from .models import Client, Token

MAX_ENTRIES = 1_000
_MAY_USE = "referral_api.client_cache.may_use"
_USED = "referral_api.client_cache.used"
_BYPASS = "referral_api.client_cache.bypass"
_SPENT = "referral_api.client_cache.spent"

# Columns that do not take part in authenticating the client or in what its token may do.
UNGUARDED = frozenset({"id", "name", "created_at", "updated_at", "revoked_at"})


class StaleClient(Exception):
    """The client changed elsewhere after this process copied it: nothing was written."""


@dataclass(frozen=True)
class _Entry:
    client: dict[str, Any]  # the client's loaded column values
    organisation: dict[str, Any]  # its organisation's loaded column values
    until: float
    generation: int


class ClientCache:
    """Per process: client_id -> the client's and its organisation's loaded values when read. `clock`
    (monotonic seconds) may be replaced, e.g. by a test driving time."""

    def __init__(self, seconds: int, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def get(self, client_id: str) -> Client | None:
        """A detached copy of the client (a new object each call: nothing one request does to it is seen
        by another), or None."""
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        if entry.until <= self.clock() or entry.generation != token_cache.generation():
            self._entries.pop(client_id, None)
            return None
        return _detached(entry)

    def put(self, client: Client, *, generation: int) -> None:
        """Remember a client read at `generation` (token_cache.generation(), read before the rows)."""
        if self.seconds <= 0 or generation != token_cache.generation():
            return
        now = self.clock()
        self._entries = token_cache.make_room(self._entries, self.max_entries, now)
        self._entries[client.client_id] = _Entry(_loaded(client), _loaded(client.organisation),
                                                 now + self.seconds, generation)

    def forget(self, client_id: str) -> None:
        self._entries.pop(client_id, None)

    def __len__(self) -> int:
        return len(self._entries)


def _loaded(instance: Any) -> dict[str, Any]:
    """The column values an ORM object has loaded (not its relationships)."""
    state = sa.inspect(instance)
    columns = state.mapper.column_attrs.keys()
    return {key: state.dict[key] for key in columns if key in state.dict}


def _detached(entry: _Entry) -> Client:
    client = _restored(Client, entry.client)
    client.__dict__["organisation"] = _restored(Organisation, entry.organisation)
    return client


def _restored(model: Any, values: dict[str, Any]) -> Any:
    """A detached object holding `values` as loaded, as a query's rows fill one (the instance's dict;
    nothing else of it is loaded)."""
    instance = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    return instance


def init_app(app: Flask) -> ClientCache:
    cache = ClientCache(app.config["SETTINGS"].token_cache_seconds)
    app.extensions["referral_api.client_cache"] = cache
    return cache


def current() -> ClientCache:
    return current_app.extensions["referral_api.client_cache"]


def allow() -> None:
    """This request may authenticate its client from a copy (the client credentials grant)."""
    setattr(g, _MAY_USE, True)


def lookup(client_id: str) -> Client | None:
    """A copy of the client for this request, when it may use one and one is held."""
    if not g.get(_MAY_USE) or g.get(_BYPASS):
        return None
    client = current().get(client_id)
    if client is not None:
        setattr(g, _USED, client.client_id)
    return client


def remember(client: Client, generation: int) -> None:
    if g.get(_MAY_USE):
        current().put(client, generation=generation)


def used() -> str | None:
    """The client_id whose copy this request is deciding on, if it is deciding on one."""
    return g.get(_USED)


def retry_fresh() -> bool:
    """After a refusal: whether the request decided on a copy (then it is dropped, and the request
    reads its client afresh from now on)."""
    client_id = g.pop(_USED, None)
    if client_id is None:
        return False
    current().forget(client_id)
    setattr(g, _BYPASS, True)
    limits.unproved()
    return True


def spent_by_this_request(once: tuple[str, ...]) -> bool:
    """Whether this request recorded the one-time value `once` (a private_key_jwt jti, a DPoP proof's)
    itself: a request answered again from a fresh read (retry_fresh) is not replaying its own."""
    return once in g.get(_SPENT, ())


def note_spent(once: tuple[str, ...]) -> None:
    g.setdefault(_SPENT, set()).add(once)


GUARDED_COLUMNS = tuple(c.name for c in Client.__table__.columns if c.name not in UNGUARDED)


@functools.cache
def guarded_insert(columns: tuple[str, ...]) -> sa.Insert:
    """INSERT INTO oauth_tokens (columns) VALUES (..., (SELECT the client's id if its row is still as
    copied, its organisation active), ...): the values by name, the client's id as `client_pk`, the
    copied values as guard_values() names them. Built once per column list."""
    tokens, clients, organisations = Token.__table__, Client.__table__, Organisation.__table__
    checks = [clients.c[name].is_not_distinct_from(sa.bindparam("client_" + name, type_=clients.c[name].type))
              for name in GUARDED_COLUMNS]
    active = sa.literal_column(f"'{OrganisationStatus.ACTIVE.value}'")  # a constant: no bind to send
    live_client = (
        sa.select(clients.c.id).join(organisations, organisations.c.id == clients.c.organisation_id)
        .where(clients.c.id == sa.bindparam("client_pk", type_=clients.c.id.type),
               clients.c.revoked_at.is_(None), organisations.c.status == active, *checks)
        .scalar_subquery()
    )
    values = {name: sa.bindparam(name, type_=tokens.c[name].type) for name in columns}
    return tokens.insert().values({**values, "client_pk": live_client})


def guard_values(client: Client) -> dict[str, Any]:
    """The copied values guarded_insert() compares the client row with."""
    return {"client_" + name: getattr(client, name) for name in GUARDED_COLUMNS}


def refused_by_guard(error: IntegrityError) -> bool:
    """Whether the INSERT failed because the client row no longer matched (NULL client_pk)."""
    orig = error.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg
        return getattr(orig, "sqlstate", None) == "23502" and diag.column_name == "client_pk"
    return "NOT NULL constraint failed: oauth_tokens.client_pk" in str(orig)
