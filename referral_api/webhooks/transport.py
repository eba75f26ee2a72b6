"""One HTTP POST to a vetted receiver: pinned address, no redirects, short timeouts, capped body read."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from urllib3.exceptions import HTTPError

from ..outbound import RefusedAddress, Watchdog, pinned_pool, read_capped, vet

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0  # the whole attempt (connect to body), however slowly a receiver trickles its answer
BODY_CAP = 4096
USER_AGENT = "MGEC-Referral-API-Webhooks/1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status code (None when no answer), headers we use, body start, error."""

    status_code: int | None
    duration_ms: int
    error: str | None = None
    retry_after: str | None = None
    body: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, *, body: bytes, headers: dict[str, str], allow_http_loopback: bool) -> Outcome:
    """Vet `url` now, then POST `body` once; never raises: whatever goes wrong is a failed Outcome.

    TOTAL_TIMEOUT bounds the whole exchange (connect, TLS, status line, headers, body): a watchdog
    shuts the connection down at the deadline. The status counts only if the answer's head came in
    time; a body still coming then is cut short.
    """
    started = time.monotonic()
    try:
        return _attempt(url, body=body, headers=headers, allow_http_loopback=allow_http_loopback,
                        started=started)
    except Exception as exc:  # noqa: BLE001  a bug of ours or a library's: still an attempt, failed
        name = type(exc).__name__
        # By the type only: the message might hold the URL, and a URL may hold a token.
        log.error("webhook POST failed unexpectedly", extra={"error": name})
        return Outcome(status_code=None, duration_ms=int((time.monotonic() - started) * 1000),
                       error=f"internal error: {name}")


def _attempt(url: str, *, body: bytes, headers: dict[str, str], allow_http_loopback: bool,
             started: float) -> Outcome:
    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = vet(url, allow_http_loopback=allow_http_loopback)
    except RefusedAddress as exc:
        return Outcome(status_code=None, duration_ms=elapsed(), error=f"refused: {exc}")
    watchdog = Watchdog(started + TOTAL_TIMEOUT)
    pool = pinned_pool(target, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, watchdog=watchdog)
    try:
        response = pool.urlopen(
            "POST", target.path, body=body,
            headers={**headers, "Host": target.host_header, "Content-Type": "application/json",
                     "User-Agent": USER_AGENT},
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )
        if watchdog.expired:  # the head was cut short at the deadline: whatever was parsed does not count
            response.close()
            return Outcome(status_code=None, duration_ms=elapsed(), error=_too_slow())
        try:
            raw = read_capped(response, cap=BODY_CAP, deadline=started + TOTAL_TIMEOUT)
        except (HTTPError, OSError):
            raw = b""
        finally:
            response.close()
        status = response.status
        error = None
        if 300 <= status < 400:
            error = "redirect not followed"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        return Outcome(status_code=status, duration_ms=elapsed(), error=error,
                       retry_after=response.headers.get("Retry-After"),
                       body=raw.decode("utf-8", errors="replace") or None)
    except (HTTPError, OSError) as exc:
        error = _too_slow() if watchdog.expired else _describe(exc)
        return Outcome(status_code=None, duration_ms=elapsed(), error=error)
    finally:
        watchdog.close()
        pool.close()


def _too_slow() -> str:
    return f"TotalTimeout: no complete answer within {TOTAL_TIMEOUT:g} s"


def _describe(exc: Exception) -> str:
    """A short, stable error text for the attempt record (no URL: it may hold a token)."""
    name = type(exc).__name__
    reason = getattr(exc, "reason", None)
    if reason is not None:
        exc = reason if isinstance(reason, Exception) else exc
        name = type(exc).__name__
    text = str(exc).split(": ", 1)[-1][:200]
    return f"{name}: {text}"[:500]
