"""What an audit event says happened: `part:resource:action`, and how it ended."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


class AuditAction(StrEnum):
    """Every audited action. Parts add theirs here (no migration needed: the column is free text)."""

    # auth/
    AUTH_TOKEN_ISSUE = "auth:token:issue"
    AUTH_TOKEN_REFRESH = "auth:token:refresh"
    AUTH_TOKEN_REVOKE = "auth:token:revoke"
    AUTH_TOKEN_INTROSPECT = "auth:token:introspect"
    AUTH_TOKEN_DENY = "auth:token:deny"
    AUTH_CODE_REUSE = "auth:code:reuse"
    AUTH_LOGIN_SUCCEED = "auth:login:succeed"
    AUTH_LOGIN_FAIL = "auth:login:fail"
    AUTH_ACCOUNT_LOCK = "auth:account:lock"
    AUTH_TOTP_ENROL = "auth:totp:enrol"
    AUTH_CLIENT_CREATE = "auth:client:create"
    AUTH_CLIENT_UPDATE = "auth:client:update"
    AUTH_CLIENT_REVOKE = "auth:client:revoke"
    AUTH_CLIENT_ROTATE_SECRET = "auth:client:rotate_secret"
    AUTH_USER_CREATE = "auth:user:create"
    AUTH_USER_DEACTIVATE = "auth:user:deactivate"
    AUTH_USER_RESET_PASSWORD = "auth:user:reset_password"
    # any part: a request refused at the edge (scope, object access)
    HTTP_REQUEST_DENY = "http:request:deny"
    # organisations/
    ORGANISATION_CREATE = "organisations:organisation:create"
    ORGANISATION_SUSPEND = "organisations:organisation:suspend"
    ORGANISATION_ACTIVATE = "organisations:organisation:activate"
    ORGANISATION_REQUIRE_TOTP = "organisations:organisation:require_totp"
    # referrals/
    REFERRAL_SUBMIT = "referrals:referral:submit"
    REFERRAL_READ = "referrals:referral:read"
    REFERRAL_UPDATE = "referrals:referral:update"
    REFERRAL_ACCEPT = "referrals:referral:accept"
    REFERRAL_REJECT = "referrals:referral:reject"
    REFERRAL_WITHDRAW = "referrals:referral:withdraw"
    REFERRAL_SEARCH_DUPLICATES = "referrals:referral:search_duplicates"
    # cases/
    CASE_OPEN = "cases:case:open"
    CASE_READ = "cases:case:read"
    CASE_UPDATE = "cases:case:update"
    CASE_MOVE = "cases:case:move"
    CASE_CLOSE = "cases:case:close"
    SERVICE_CREATE = "cases:service:create"
    SERVICE_UPDATE = "cases:service:update"
    CONSENT_GIVE = "cases:consent:give"
    CONSENT_WITHDRAW = "cases:consent:withdraw"
    SHELTER_CREATE = "cases:shelter:create"
    SHELTER_UPDATE = "cases:shelter:update"
    # documents/
    DOCUMENT_ADD = "documents:document:add"
    DOCUMENT_DOWNLOAD = "documents:document:download"
    DOCUMENT_DELETE = "documents:document:delete"
    # privacy/
    PRIVACY_KEY_ROTATE = "privacy:key:rotate"
    PRIVACY_RECORD_ERASE = "privacy:record:erase"
    PRIVACY_RETENTION_RUN = "privacy:retention:run"
    # audit/
    AUDIT_EVENT_LIST = "audit:event:list"
    AUDIT_CHAIN_VERIFY = "audit:chain:verify"
    AUDIT_CHECKPOINT_CREATE = "audit:checkpoint:create"
    # webhooks/
    WEBHOOK_SUBSCRIPTION_CREATE = "webhooks:subscription:create"
    WEBHOOK_SUBSCRIPTION_UPDATE = "webhooks:subscription:update"
    WEBHOOK_SUBSCRIPTION_DELETE = "webhooks:subscription:delete"
    WEBHOOK_SUBSCRIPTION_DISABLE = "webhooks:subscription:disable"
    WEBHOOK_SUBSCRIPTION_FLAG = "webhooks:subscription:flag"
    WEBHOOK_SUBSCRIPTION_PING = "webhooks:subscription:ping"
    WEBHOOK_DELIVERY_REDELIVER = "webhooks:delivery:redeliver"
    WEBHOOK_SECRET_ROTATE = "webhooks:secret:rotate"
    # deadlines/
    DEADLINE_RAISE = "deadlines:item:raise"
    # reports/
    REPORT_EXPORT = "reports:report:export"
