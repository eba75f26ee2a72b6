"""Python client of the MGEC repatriation and inter-agency referral API."""

from .client import ReferralClient
from .errors import (
    ApiError,
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    ServerError,
    TokenError,
    ValidationFailed,
)
from .webhooks import InvalidWebhook, verify_webhook

__all__ = [
    "ApiError", "AuthenticationFailed", "Conflict", "InvalidWebhook", "NotFound", "PermissionDenied",
    "PreconditionFailed", "RateLimited", "ReferralClient", "ServerError", "TokenError", "ValidationFailed",
    "verify_webhook",
]
