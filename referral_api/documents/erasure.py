"""Documents after crypto-shredding: mark them discarded and delete their stored chunks once committed.

The shredded key already makes the chunks unreadable in every copy; deleting them is housekeeping
that also frees the space. Deletion runs after the transaction commits, so a rolled-back erasure
never loses a document whose key still lives. A deletion that fails is logged and left: the chunks
stay undecryptable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..db import utcnow
from .models import Document
from .storage import DocumentStore, get_store

_DOOMED = "referral_api.documents.doomed"
log = logging.getLogger("referral_api.documents")


def delete_after_commit(session: Session, store: DocumentStore, keys: Iterable[str]) -> None:
    """Delete these objects from `store` when (and only if) the session's transaction commits."""
    session.info.setdefault(_DOOMED, []).extend((store, key) for key in keys)


@event.listens_for(Session, "after_commit")
def _delete_doomed(session: Session) -> None:
    for store, key in session.info.pop(_DOOMED, []):
        try:
            store.delete(key)
        except OSError:
            log.exception("could not delete the stored chunks of document %s; they stay undecryptable", key)


@event.listens_for(Session, "after_rollback")
def _forget_doomed(session: Session) -> None:
    session.info.pop(_DOOMED, None)


def discard_sealed_with(session: Session, data_key_ids: Iterable[uuid.UUID | None]) -> int:
    """Mark the documents sealed with these (shredded) keys discarded and delete their chunks after commit."""
    keys = [k for k in data_key_ids if k is not None]
    if not keys:
        return 0
    found = list(
        session.scalars(
            sa.select(Document).where(Document.data_key_id.in_(keys), Document.discarded_at.is_(None))
        )
    )
    now = utcnow()
    for document in found:
        document.discarded_at = now
    delete_after_commit(session, get_store(), [d.storage_key for d in found])
    return len(found)
