"""Settings from the environment, read once at start and checked before anything else runs."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A setting has a value the service cannot run with; the message names the variable."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false, 1/0), got {raw!r}")


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than zero, got {value}")
    return value


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be zero or more, got {value}")
    return value


def _increasing_ints(name: str, raw: str) -> tuple[int, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    values = tuple(_positive_int(name, p) for p in parts)
    if not values or list(values) != sorted(set(values)):
        raise ConfigError(f"{name} must be whole numbers in increasing order, such as 3,6,12; got {raw!r}")
    return values


def _environment(name: str, raw: str) -> Environment:
    try:
        return Environment(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(e.value for e in Environment)
        raise ConfigError(f"{name} must be one of {allowed}, got {raw!r}") from None


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _db_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value and "://" not in value:
        raise ConfigError(f"{name} must be a database URL such as postgresql+psycopg://host/db")
    if value.startswith("postgres://") or value.startswith("postgresql://"):
        # The psycopg 3 driver is the one installed; plain postgresql:// would ask for psycopg2.
        value = "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


def _ratelimit_uri(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("memory://", "redis://", "rediss://", "redis+sentinel://")):
        raise ConfigError(f"{name} must start with memory://, redis:// or rediss://")
    return value


def _rates(name: str, raw: str) -> str:
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must be rates such as 600/minute or 600/minute;20/second; "
                          f"got {raw!r}") from None
    return raw.strip()


def _networks(name: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"{name} must be addresses or networks separated by commas, such as "
                          f"127.0.0.1,10.0.5.0/24; got {raw!r}") from None


def _setting(env: str, parse: Callable[[str, str], Any], default: Any, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; field metadata names its environment variable."""

    env: Environment = _setting("REFERRAL_API_ENV", _environment, Environment.DEVELOPMENT)
    instance_path: str = _setting("REFERRAL_API_INSTANCE_PATH", _text, "")
    database_url: str = _setting("DATABASE_URL", _db_url, "", secret=True)
    keystore_url: str = _setting("KEYSTORE_URL", _db_url, "", secret=True)
    master_key: str = _setting("REFERRAL_API_MASTER_KEY", _text, "", secret=True)
    master_key_file: str = _setting("REFERRAL_API_MASTER_KEY_FILE", _text, "")
    index_key: str = _setting("REFERRAL_API_INDEX_KEY", _text, "", secret=True)
    audit_signing_key: str = _setting("REFERRAL_API_AUDIT_SIGNING_KEY", _text, "", secret=True)
    issuer: str = _setting("REFERRAL_API_ISSUER", _text, "")
    trusted_proxy_count: int = _setting("TRUSTED_PROXY_COUNT", _non_negative_int, 0)
    ratelimit_storage_uri: str = _setting("RATELIMIT_STORAGE_URI", _ratelimit_uri, "memory://")
    access_token_ttl: int = _setting("ACCESS_TOKEN_TTL", _positive_int, 900)
    # How long a worker remembers a validated access token (auth/token_cache.py); 0 is never, at most 60.
    token_cache_seconds: int = _setting("TOKEN_CACHE_SECONDS", _non_negative_int, 5)
    # Rate limits of /oauth/token and the login form (auth/limits.py; README, Sizing the rate limits).
    ratelimit_token_per_client: str = _setting("AUTH_RATELIMIT_TOKEN_PER_CLIENT", _rates, "60/minute")
    ratelimit_token_per_address: str = _setting("AUTH_RATELIMIT_TOKEN_PER_ADDRESS", _rates, "120/minute")
    ratelimit_token_failures_per_address: str = _setting(
        "AUTH_RATELIMIT_TOKEN_FAILURES_PER_ADDRESS", _rates, "30/minute")
    ratelimit_token_failures_per_client_address: str = _setting(
        "AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", _rates, "10/minute")
    ratelimit_login_per_address: str = _setting("AUTH_RATELIMIT_LOGIN_PER_ADDRESS", _rates, "20/minute")
    require_private_key_jwt: bool = _setting("OAUTH_REQUIRE_PRIVATE_KEY_JWT", _bool, False)
    dpop_nonce_required: bool = _setting("DPOP_NONCE_REQUIRED", _bool, False)
    dpop_proof_max_age_seconds: int = _setting("DPOP_PROOF_MAX_AGE_SECONDS", _positive_int, 60)
    jwks_cache_max_seconds: int = _setting("JWKS_CACHE_MAX_SECONDS", _positive_int, 3600)
    retention_rejected_days: int = _setting("RETENTION_REJECTED_DAYS", _positive_int, 90)
    retention_closed_years: int = _setting("RETENTION_CLOSED_YEARS", _positive_int, 5)
    report_min_cell: int = _setting("REPORT_MIN_CELL", _positive_int, 11)
    max_content_length: int = _setting("MAX_CONTENT_LENGTH", _positive_int, 1024 * 1024)
    webhooks_allow_http_loopback: bool = _setting("WEBHOOKS_ALLOW_HTTP_LOOPBACK", _bool, False)
    webhook_secret_overlap_hours: int = _setting("WEBHOOK_SECRET_OVERLAP_HOURS", _positive_int, 24)
    idempotency_ttl_hours: int = _setting("IDEMPOTENCY_TTL_HOURS", _positive_int, 24)
    webhooks_claim_seconds: int = _setting("WEBHOOKS_CLAIM_SECONDS", _positive_int, 120)
    webhooks_test_visibility_module: str = _setting("WEBHOOKS_TEST_VISIBILITY_MODULE", _text, "")
    webhook_attempt_retention_days: int = _setting("WEBHOOK_ATTEMPT_RETENTION_DAYS", _positive_int, 30)
    prune_interval_seconds: int = _setting("PRUNE_INTERVAL_SECONDS", _positive_int, 3600)
    # Deadlines (deadlines/table.py): how long each wait may last before it is raised as overdue.
    deadline_review_hours: int = _setting("DEADLINE_REVIEW_HOURS", _positive_int, 24)
    deadline_review_urgent_hours: int = _setting("DEADLINE_REVIEW_URGENT_HOURS", _positive_int, 4)
    deadline_review_emergency_hours: int = _setting("DEADLINE_REVIEW_EMERGENCY_HOURS", _positive_int, 1)
    deadline_decision_hours: int = _setting("DEADLINE_DECISION_HOURS", _positive_int, 72)
    deadline_information_reminder_days: int = _setting("DEADLINE_INFORMATION_REMINDER_DAYS", _positive_int, 7)
    deadline_information_escalation_days: int = _setting(
        "DEADLINE_INFORMATION_ESCALATION_DAYS", _positive_int, 14)
    deadline_verification_days: int = _setting("DEADLINE_VERIFICATION_DAYS", _positive_int, 14)
    deadline_travel_documents_days: int = _setting("DEADLINE_TRAVEL_DOCUMENTS_DAYS", _positive_int, 14)
    deadline_travel_planning_days: int = _setting("DEADLINE_TRAVEL_PLANNING_DAYS", _positive_int, 21)
    deadline_arrival_days: int = _setting("DEADLINE_ARRIVAL_DAYS", _positive_int, 3)
    deadline_service_plan_days: int = _setting("DEADLINE_SERVICE_PLAN_DAYS", _positive_int, 7)
    deadline_follow_up_months: tuple[int, ...] = _setting(
        "DEADLINE_FOLLOW_UP_MONTHS", _increasing_ints, (3, 6, 12))
    deadlines_every_seconds: int = _setting("DEADLINES_EVERY_SECONDS", _positive_int, 300)
    documents_path: str = _setting("DOCUMENTS_PATH", _text, "")
    document_max_mb: int = _setting("DOCUMENT_MAX_MB", _positive_int, 20)
    swagger_ui: bool = _setting("SWAGGER_UI", _bool, True)
    console_idle_minutes: int = _setting("CONSOLE_IDLE_MINUTES", _positive_int, 15)
    debug: bool = _setting("REFERRAL_API_DEBUG", _bool, False)
    log_level: str = _setting("LOG_LEVEL", _text, "INFO")
    # Who may read /metrics (referral_api/metrics): empty, the default, is nobody.
    metrics_allow: tuple = _setting("METRICS_ALLOW", _networks, ())

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from `environ` (default os.environ); `overrides` win and are not parsed."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
                continue
            raw = environ.get(f.metadata["env"])
            if raw is not None:
                values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
        if overrides:
            raise ConfigError(f"unknown settings: {', '.join(sorted(overrides))}")
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that are unsafe or meaningless; each message names the variable."""
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(
                f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {self.log_level!r}"
            )
        if self.token_cache_seconds > 60:
            raise ConfigError("TOKEN_CACHE_SECONDS must be at most 60 (it bounds how late a revocation "
                              f"is seen), got {self.token_cache_seconds}")
        if self.deadline_information_escalation_days <= self.deadline_information_reminder_days:
            raise ConfigError(
                "DEADLINE_INFORMATION_ESCALATION_DAYS must be greater than DEADLINE_INFORMATION_REMINDER_DAYS"
            )
        if self.is_production:
            if self.debug:
                raise ConfigError("REFERRAL_API_DEBUG must be off when REFERRAL_API_ENV=production")
            if self.webhooks_allow_http_loopback:
                raise ConfigError(
                    "WEBHOOKS_ALLOW_HTTP_LOOPBACK is a development setting; "
                    "it must be off when REFERRAL_API_ENV=production"
                )
            if self.webhooks_test_visibility_module:
                raise ConfigError(
                    "WEBHOOKS_TEST_VISIBILITY_MODULE is a test hook; "
                    "it must be unset when REFERRAL_API_ENV=production"
                )
            if not self.database_url:
                raise ConfigError("DATABASE_URL must be set when REFERRAL_API_ENV=production")
            if not self.issuer.startswith("https://"):
                raise ConfigError(
                    "REFERRAL_API_ISSUER must be an https:// URL when REFERRAL_API_ENV=production"
                )
            # Development generates keys into the instance folder; production never invents them.
            if not (self.master_key or self.master_key_file):
                raise ConfigError(
                    "REFERRAL_API_MASTER_KEY or REFERRAL_API_MASTER_KEY_FILE must be set when "
                    "REFERRAL_API_ENV=production (see the README, Keys)"
                )
            if not self.index_key:
                raise ConfigError("REFERRAL_API_INDEX_KEY must be set when REFERRAL_API_ENV=production")
            # Without either, documents would go to `instance/documents` beside the installed package:
            # read-only under the systemd units, and lost with the next release.
            if not (self.documents_path or self.instance_path):
                raise ConfigError(
                    "DOCUMENTS_PATH must be set when REFERRAL_API_ENV=production (or "
                    "REFERRAL_API_INSTANCE_PATH, whose documents folder is then used): a folder the service "
                    "may write, such as /var/lib/referral-api/documents (see docs/deploy.md)"
                )

    def resolved_instance_path(self, default: str) -> Path:
        return Path(self.instance_path or default)

    def describe(self) -> dict[str, Any]:
        """The settings for logs: secret ones only say whether they are set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("set" if value else "unset") if f.metadata["secret"] else str(value)
        return out
