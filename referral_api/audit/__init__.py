"""The hash-chained audit trail: `record()` in the caller's transaction, `verify()`, signed checkpoints."""

from .actions import AuditAction, Outcome
from .services import VerifyResult, commit_pipelined, list_events, record, record_many, seal_pending, verify

__all__ = ["AuditAction", "Outcome", "VerifyResult", "commit_pipelined", "list_events", "record",
           "record_many", "seal_pending", "verify"]
