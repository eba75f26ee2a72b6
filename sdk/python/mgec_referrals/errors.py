"""Typed errors, made from the API's problem details (RFC 9457)."""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """An error answer of the API; its problem details are in the attributes."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type: str | None = problem.get("type")
        self.title: str | None = problem.get("title")
        self.detail: str | None = problem.get("detail")
        self.code: str | None = problem.get("error") or (self.type or "").rsplit("/", 1)[-1] or None
        self.errors: dict[str, list[str]] = problem.get("errors") or {}
        self.request_id: str | None = problem.get("request_id")
        super().__init__(f"{status} {self.title or ''}: {self.detail or ''}".strip())


class AuthenticationFailed(ApiError):
    """401: no token, or an invalid, expired or revoked one (or a refused DPoP proof)."""


class PermissionDenied(ApiError):
    """403: the token lacks the route's scope, or the move is not the caller's."""


class NotFound(ApiError):
    """404: no such record, or not the caller's to see."""


class Conflict(ApiError):
    """409: not possible in the record's state (or an idempotency key reused with another body)."""


class PreconditionFailed(ApiError):
    """412: If-Match does not match the current version."""


class ValidationFailed(ApiError):
    """422: invalid fields, named in `errors`."""


class RateLimited(ApiError):
    """429 after every retry."""


class ServerError(ApiError):
    """5xx after every retry."""


class TokenError(Exception):
    """The token endpoint refused: `error` is RFC 6749's code (invalid_client, invalid_scope, ...)."""

    def __init__(self, status: int, error: str, description: str | None = None,
                 retry_after: str | None = None) -> None:
        self.status = status
        self.error = error
        self.description = description
        self.retry_after = retry_after  # the Retry-After header of a 429 or 503, as sent
        super().__init__(f"{status} {error}: {description or ''}".strip())


_BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthenticationFailed, 403: PermissionDenied, 404: NotFound, 409: Conflict,
    412: PreconditionFailed, 422: ValidationFailed, 429: RateLimited,
}


def from_response(response: requests.Response) -> ApiError:
    """The typed error of an error answer (problem details, or whatever JSON or text came)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem = body if isinstance(body, dict) else {"title": response.reason, "detail": response.text[:500]}
    problem.setdefault("status", response.status_code)
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    return cls(response.status_code, problem)
