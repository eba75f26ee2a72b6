"""Signed checkpoints of the chain head (Ed25519), to be kept off the database.

A checkpoint is `{"statement": {...}, "signature": base64}`; the statement names the seq and hash of
the head and the signer's public key. `verify_checkpoint` accepts only statements signed by the
configured key, so a checkpoint forged with another key is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import InvalidPayload
from .actions import AuditAction
from .models import AuditEvent
from .services import head

STATEMENT_TYPE = "referral-api audit checkpoint"


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _public_b64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def make_checkpoint(session: Session, signing_key: bytes,
                    verified: tuple[int, str] | None = None) -> dict[str, Any]:
    """A signed statement of a head's seq and hash: the `verified` one (the head a verify walked to),
    else the current one. Signing the head read again after a verify would sign events sealed since,
    which no one checked."""
    private = Ed25519PrivateKey.from_private_bytes(signing_key)
    seq, head_hash = verified if verified is not None else head(session)
    statement = {
        "type": STATEMENT_TYPE,
        "seq": seq,
        "head_hash": head_hash,
        "created_at": utcnow().isoformat(),
        "public_key": _public_b64(private.public_key()),
    }
    signature = base64.b64encode(private.sign(_canonical(statement))).decode()
    return {"statement": statement, "signature": signature}


def read_checkpoint(doc: Any, signing_key: bytes) -> tuple[int, str]:
    """(seq, head hash) of a checkpoint whose signature verifies under our key; InvalidPayload otherwise."""
    public = Ed25519PrivateKey.from_private_bytes(signing_key).public_key()
    try:
        statement = doc["statement"]
        signature = base64.b64decode(doc["signature"], validate=True)
        seq, head_hash = int(statement["seq"]), str(statement["head_hash"])
        if statement.get("type") != STATEMENT_TYPE:
            raise ValueError
    except (KeyError, TypeError, ValueError, OverflowError, binascii.Error):  # OverflowError: "seq": 1e999
        raise InvalidPayload("This is not an audit checkpoint.") from None
    if statement.get("public_key") != _public_b64(public):
        raise InvalidPayload("The checkpoint was signed by another key than this deployment's.")
    try:
        public.verify(signature, _canonical(statement))
    except InvalidSignature:
        raise InvalidPayload("The checkpoint's signature does not verify: it was altered.") from None
    return seq, head_hash


def noted_details(doc: dict[str, Any]) -> dict[str, Any]:
    """What the chain notes of a checkpoint it was given: the head it signs, and enough to check the
    signature again (when it was made, the signer's public key, the signature)."""
    statement = doc["statement"]
    return {"seq": statement["seq"], "head_hash": statement["head_hash"],
            "created_at": statement["created_at"], "public_key": statement["public_key"],
            "signature": doc["signature"]}


class SignatureStatus(StrEnum):
    VALID = "valid"  # signed by this deployment's key, unaltered
    INVALID = "invalid"  # another key, or altered
    NO_KEY = "no_key"  # no signing key set here: it cannot be checked
    NOT_NOTED = "not_noted"  # made before the chain noted signatures


@dataclass(frozen=True)
class LastCheckpoint:
    """The last `audit checkpoint` as the chain noted it: when, the head it signed, whether that head is
    still in the chain as it was, and whether its signature is this deployment's."""

    made_at: datetime
    seq: int
    head_hash: str
    head_still_there: bool
    signature: SignatureStatus


def _signature_status(details: dict[str, Any], signing_key: bytes | None) -> SignatureStatus:
    if "signature" not in details:
        return SignatureStatus.NOT_NOTED
    if signing_key is None:
        return SignatureStatus.NO_KEY
    statement = {"type": STATEMENT_TYPE, **{k: details.get(k) for k in
                                            ("seq", "head_hash", "created_at", "public_key")}}
    try:
        read_checkpoint({"statement": statement, "signature": details["signature"]}, signing_key)
    except InvalidPayload:
        return SignatureStatus.INVALID
    return SignatureStatus.VALID


def last_checkpoint(session: Session, signing_key: bytes | None) -> LastCheckpoint | None:
    """The newest checkpoint the chain records (None when none was ever made)."""
    noted = session.scalar(
        sa.select(AuditEvent)
        .where(AuditEvent.action == AuditAction.AUDIT_CHECKPOINT_CREATE.value)
        # by time, not seq: a checkpoint not yet sealed has no seq (NULL sorts first on PostgreSQL,
        # last on SQLite)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    if noted is None:
        return None
    details = noted.details or {}
    seq, head_hash = int(details.get("seq", 0)), str(details.get("head_hash", ""))
    signed = session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == seq))
    still_there = signed == head_hash or (seq == 0 and signed is None)
    return LastCheckpoint(noted.occurred_at, seq, head_hash, still_there,
                          _signature_status(details, signing_key))
