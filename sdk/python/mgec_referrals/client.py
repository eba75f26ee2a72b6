"""ReferralClient: the API's calls with tokens, idempotency keys, retries and pages taken care of."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from .auth import TokenSource
from .errors import TokenError, from_response

RETRY_STATUSES = frozenset({429, 503})


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class ReferralClient:
    """A partner system's client of the API.

    `key_or_secret`: the client secret, or the private key of a private_key_jwt client (PEM, JWK
    dict or joserfc key). `dpop`: True binds tokens to a DPoP key (`dpop_key`, or a new EC key);
    None (the default) does so when the server says the client is registered for DPoP."""

    def __init__(self, base_url: str, client_id: str, key_or_secret: Any, *, scope: str | None = None,
                 dpop: bool | None = None, dpop_key: Any = None, max_retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 30.0,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = session or requests.Session()
        self.tokens = TokenSource(self.http, self.base_url + "/oauth/token", client_id, key_or_secret,
                                  scope=scope, dpop=dpop, dpop_key=dpop_key, timeout=timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.sleep = sleep

    # ---- the calls ----------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/me")

    def submit_referral(self, referral: dict[str, Any], *,
                        idempotency_key: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/api/v1/referrals", json=referral, idempotency_key=idempotency_key)

    def get_referral(self, referral_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/referrals/{referral_id}")

    def referrals(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self.iterate("/api/v1/referrals", **filters)

    def cases(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self.iterate("/api/v1/cases", **filters)

    def case_status(self, case_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/cases/{case_id}/status")

    def organisations(self, q: str = "", **filters: Any) -> Iterator[dict[str, Any]]:
        return self.iterate("/api/v1/organisations", q=q, **filters)

    # ---- the machinery ------------------------------------------------------------------------

    def iterate(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a keyset-paged list, page after page (following `next_cursor`)."""
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self.request("GET", path, params=params)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
            params = {**params, "cursor": cursor}

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        """One API call: a POST carries an Idempotency-Key (the same on every retry); 429 and 503 are
        retried after Retry-After (else exponential back-off with jitter), and so is a 409 with
        Retry-After answering a POST's key (the server is still processing its first attempt); errors
        raise ApiError."""
        method = method.upper()
        extra = dict(headers or {})
        if method == "POST":
            extra.setdefault("Idempotency-Key", idempotency_key or str(uuid.uuid4()))
        url = self.base_url + path
        attempt, renewed, resigned = 0, False, False
        while True:
            try:
                response = self._send(method, url, json=json, params=params, headers=extra)
            except TokenError as refused:  # the token endpoint busy (429/503) is retried as a call is
                if refused.status not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise
                self.sleep(self._delay(attempt, refused.retry_after))
                attempt += 1
                continue
            signer = self.tokens.dpop
            if signer is not None and signer.learn_nonce(response) and not resigned:
                resigned = True
                continue
            if response.status_code == 401 and not renewed and _token_refused(response):
                renewed = True
                self.tokens.invalidate()
                continue
            if _worth_retrying(response, method, extra) and attempt < self.max_retries:
                self.sleep(self._delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise from_response(response)
            return response.json() if response.content else None

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        token = self.tokens.token()
        headers = {"Authorization": f"{self.tokens.scheme} {token}", **kwargs.pop("headers")}
        if self.tokens.dpop is not None:
            headers["DPoP"] = self.tokens.dpop.proof(method, url, access_token=token)
        return self.http.request(method, url, headers=headers, timeout=self.timeout, **kwargs)

    def _delay(self, attempt: int, retry_after_header: str | None) -> float:
        told = retry_after(retry_after_header)
        if told is not None:
            return min(told, self.max_backoff)
        return min(self.max_backoff, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)  # noqa: S311


def _worth_retrying(response: requests.Response, method: str, headers: dict[str, str]) -> bool:
    """429 and 503; and a 409 with Retry-After to a POST carrying an Idempotency-Key: the request with
    this key is still being processed (its first attempt's answer was lost), so the same key is asked
    again, within the same retries, rather than reported as a conflict. A 409 without Retry-After is a
    real conflict."""
    if response.status_code in RETRY_STATUSES:
        return True
    return (response.status_code == 409 and method == "POST"
            and any(name.lower() == "idempotency-key" for name in headers)
            and retry_after(response.headers.get("Retry-After")) is not None)


def _token_refused(response: requests.Response) -> bool:
    """A 401 whose token may simply have expired or been revoked: fetch a new one, once."""
    return 'error="invalid_token"' in response.headers.get("WWW-Authenticate", "")
