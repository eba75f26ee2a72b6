"""Clients' key sets from their JWKS URIs (RFC 7523 `private_key_jwt`).

The URI is a partner's, so the fetch goes through the outbound address guard (https, public
addresses only, the connection pinned to the vetted address), never follows a redirect, reads a
capped body with short timeouts (TOTAL_TIMEOUT bounds the whole exchange). A key set is kept per
process for as long as the answer's
`Cache-Control: max-age` allows, never longer than JWKS_CACHE_MAX_SECONDS (`no-store` or `no-cache`:
not kept; no header: DEFAULT_MAX_AGE). An assertion naming a `kid` the cached set lacks refetches
once (the partner rotated its keys), but not again within REFETCH_FLOOR seconds of the last fetch,
so made-up `kid`s cannot turn the token endpoint into a source of traffic to the partner.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from urllib3.exceptions import HTTPError

from ..outbound import RefusedAddress, Watchdog, pinned_pool, read_capped, vet

DEFAULT_MAX_AGE = 300  # seconds a key set is kept when its answer says nothing about caching
REFETCH_FLOOR = 10.0  # seconds between two fetches forced by an unknown kid
BODY_CAP = 64 * 1024
CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT = 3.0, 5.0, 10.0
USER_AGENT = "MGEC-Referral-API-JWKS/1"
_TOO_SLOW = "the JWKS URI gave no complete answer within the total timeout"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|=|$)", re.IGNORECASE)


class JwksError(Exception):
    """The key set could not be fetched; the message says why (never the URI: it may hold a token)."""


Fetcher = Callable[..., tuple[dict[str, Any], str | None]]


def max_age(cache_control: str | None, *, upper: int) -> int:
    """Seconds an answer may be kept, by its Cache-Control header, within 0..upper."""
    if not cache_control:
        return min(DEFAULT_MAX_AGE, upper)
    if _NO_CACHE.search(cache_control):
        return 0
    found = _MAX_AGE.search(cache_control)
    return min(int(found.group(1)) if found else DEFAULT_MAX_AGE, upper)


def fetch(uri: str, *, allow_http_loopback: bool) -> tuple[dict[str, Any], str | None]:
    """GET the key set at `uri` through the address guard; the set and the answer's Cache-Control."""
    started = time.monotonic()
    try:
        target = vet(uri, allow_http_loopback=allow_http_loopback)
    except RefusedAddress as exc:
        raise JwksError(f"the JWKS URI is refused: {exc}") from None
    # TOTAL_TIMEOUT bounds the whole exchange: a head trickled a byte at a time is cut at the deadline
    watchdog = Watchdog(started + TOTAL_TIMEOUT)
    pool = pinned_pool(target, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, watchdog=watchdog)
    try:
        response = pool.urlopen(
            "GET", target.path,
            headers={"Host": target.host_header, "Accept": "application/json", "User-Agent": USER_AGENT},
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )
        try:
            raw = read_capped(response, cap=BODY_CAP + 1, deadline=started + TOTAL_TIMEOUT)
        finally:
            response.close()
    except (HTTPError, OSError):
        raise JwksError(_TOO_SLOW if watchdog.expired else "the JWKS URI could not be reached") from None
    finally:
        watchdog.close()
        pool.close()
    if watchdog.expired:  # the head was cut short at the deadline: whatever was parsed does not count
        raise JwksError(_TOO_SLOW)
    if 300 <= response.status < 400:
        raise JwksError("the JWKS URI answered with a redirect, which is not followed")
    if response.status != 200:
        raise JwksError(f"the JWKS URI answered HTTP {response.status}")
    if len(raw) > BODY_CAP:
        raise JwksError(f"the key set is larger than {BODY_CAP} bytes")
    try:
        data = json.loads(raw)
    except ValueError:
        raise JwksError("the JWKS URI did not answer JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError("the JWKS URI did not answer a key set")
    return data, response.headers.get("Cache-Control")


@dataclass(frozen=True)
class _Entry:
    keys: dict[str, Any]
    fetched_at: float
    expires_at: float


def _has_kid(keys: dict[str, Any], kid: str) -> bool:
    return any(isinstance(k, dict) and k.get("kid") == kid for k in keys.get("keys", []))


class JwksCache:
    """Key sets by URI, kept as HTTP caching allows (bounded); `clock` and `fetcher` are for tests."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, fetcher: Fetcher | None = None
    ) -> None:
        self.clock = clock
        self.fetcher = fetcher
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def key_set(self, uri: str, *, kid: str | None, allow_http_loopback: bool, upper: int) -> dict[str, Any]:
        """The key set at `uri`: cached while fresh and holding `kid`, else fetched (once)."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(uri)
        fresh = entry is not None and now < entry.expires_at
        if fresh and (kid is None or _has_kid(entry.keys, kid) or now - entry.fetched_at < REFETCH_FLOOR):
            return entry.keys
        keys, cache_control = (self.fetcher or fetch)(uri, allow_http_loopback=allow_http_loopback)
        with self._lock:
            self._entries[uri] = _Entry(keys, now, now + max_age(cache_control, upper=upper))
        return keys


CACHE = JwksCache()
