"""The hash-chained audit trail: `record()` in the caller's transaction, `verify()`, signed checkpoints."""

from .actions import AuditAction, Outcome
from .services import VerifyResult, list_events, record, record_many, verify

__all__ = ["AuditAction", "Outcome", "VerifyResult", "list_events", "record", "record_many", "verify"]
