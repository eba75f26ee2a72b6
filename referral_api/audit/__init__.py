"""The hash-chained audit trail: `record()` in the caller's transaction, `verify()`, signed checkpoints."""

from .actions import AuditAction, Outcome
from .sealing import commit_pipelined, seal_pending, send_with_commit
from .services import VerifyResult, list_events, record, record_many, record_with_commit, verify

__all__ = ["AuditAction", "Outcome", "VerifyResult", "commit_pipelined", "list_events", "record",
           "record_many", "record_with_commit", "seal_pending", "send_with_commit", "verify"]
