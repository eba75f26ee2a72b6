"""Document use cases: add, list, download, delete. Each commits once; the file is sealed before."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit, events, privacy
from ..access import Actor, InsufficientScope, Scope
from ..audit.actions import AuditAction, Outcome
from ..errors import DataErased, Forbidden, NotFound
from . import content, sealing
from .erasure import delete_after_commit
from .models import EXTENSIONS, Document, DocumentKind, MediaType, ParentType
from .storage import DocumentStore
from .visibility import Parent, load_parent, may_see, visible_filter

log = logging.getLogger("referral_api.documents")

# Scopes follow the parent's: reading a referral's documents needs what reading the referral needs.
READ_SCOPES = {ParentType.REFERRAL: {Scope.REFERRALS_READ}, ParentType.CASE: {Scope.CASES_READ}}
WRITE_SCOPES = {
    ParentType.REFERRAL: {Scope.REFERRALS_SUBMIT, Scope.REFERRALS_REVIEW},
    ParentType.CASE: {Scope.CASES_UPDATE},
}


def _require(actor: Actor, needed: set[Scope]) -> None:
    if not any(actor.has(s) for s in needed):
        raise InsufficientScope(needed)


def _beyond_status(parent: Parent) -> None:
    if not parent.staff and not parent.personal_view:
        raise Forbidden("Your view of this referral is its status only: its documents are not yours to see.")


def _data_key(session: Session, parent: Parent) -> tuple[uuid.UUID, bytes]:
    """The parent's data key (410 when erased); a parent without one gets one now (caller commits)."""
    if parent.erased:
        raise DataErased(extra={"erased_at": parent.record.erased_at.isoformat()})
    keys = privacy.get_privacy(session)
    if parent.record.data_key_id is None:
        parent.record.data_key_id, raw = keys.keystore.create(session, keys.keyring)
        return parent.record.data_key_id, raw
    return parent.record.data_key_id, keys.keystore.get(session, keys.keyring, parent.record.data_key_id)


def _audit(session: Session, actor: Actor, action: AuditAction, document: Document, **details: Any) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        resource_type="document",
        resource_id=document.id,
        details={"parent": document.parent_type.value, "parent_id": str(document.parent_id),
                 "kind": document.kind.value, **details},
    )


@dataclass
class Upload:
    """A received file, whole in memory once (never on disk in plaintext)."""

    data: io.BytesIO
    size: int


def add(
    session: Session,
    actor: Actor,
    parent_type: ParentType,
    ref: str,
    *,
    kind: DocumentKind,
    note: str | None,
    upload: Upload,
    store: DocumentStore,
) -> tuple[Document, Parent]:
    """Seal `upload` with the parent's data key into the store and record it (audited, `document.added`)."""
    _require(actor, WRITE_SCOPES[parent_type])
    parent = load_parent(session, actor, parent_type, ref, for_update=True)
    _beyond_status(parent)
    if not may_see(actor, parent, kind, uploaded_by=actor.organisation_id):
        raise Forbidden(f"The person's consent does not cover your organisation for {kind.value} documents.")
    media_type = content.sniff(upload.data.getbuffer()[:64].tobytes())
    data_key_id, key = _data_key(session, parent)
    data = upload.data if media_type is MediaType.PDF else content.strip_image(upload.data, media_type)
    document = Document(
        id=uuid.uuid4(),
        referral_id=parent.record.id if parent_type is ParentType.REFERRAL else None,
        case_id=parent.record.id if parent_type is ParentType.CASE else None,
        kind=kind,
        media_type=media_type,
        size=data.getbuffer().nbytes,
        chunk_size=sealing.CHUNK_SIZE,
        metadata_stripped=media_type is not MediaType.PDF,
        data_key_id=data_key_id,
        uploaded_by_organisation_id=actor.organisation_id,
        uploaded_by_client_id=actor.client_id,
        uploaded_by_user_id=actor.user_id,
    )
    document.note = note
    with data.getbuffer() as view:
        store.put(document.storage_key, sealing.seal_chunks(
            key, view, document_id=document.id, data_key_id=data_key_id))
    session.add(document)
    _audit(session, actor, AuditAction.DOCUMENT_ADD, document, size=document.size)
    events.publish(
        session,
        events.EventType.DOCUMENT_ADDED,
        resource_type="document",
        resource_id=document.id,
        data={"kind": kind.value, f"{parent_type.value}_id": parent.record.id,
              f"{parent_type.value}_reference": parent.record.reference},
    )
    try:
        session.commit()
    except BaseException:
        session.rollback()
        store.delete(document.storage_key)
        raise
    return document, parent


def list_for(
    session: Session, actor: Actor, parent_type: ParentType, ref: str
) -> tuple[Parent, list[Document]]:
    """The documents of a parent the caller may see (metadata only), oldest first."""
    parent = load_parent(session, actor, parent_type, ref)
    _beyond_status(parent)
    found = list(
        session.scalars(
            sa.select(Document)
            .where(parent.column(), visible_filter(actor, parent))
            .order_by(Document.uploaded_at, Document.id)
        )
    )
    return parent, found


def _load(session: Session, actor: Actor, document_id: str) -> tuple[Document, Parent]:
    """A document and its parent as the caller sees them; 404 unless the caller may see the document."""
    try:
        document = session.get(Document, uuid.UUID(document_id))
    except ValueError:
        document = None
    if document is not None:
        parent = load_parent(session, actor, document.parent_type, str(document.parent_id))
        if may_see(actor, parent, document.kind, uploaded_by=document.uploaded_by_organisation_id):
            return document, parent
    audit.record(
        session, actor=actor, action=AuditAction.HTTP_REQUEST_DENY, resource_type="document",
        resource_id=document.id if document else None, outcome=Outcome.DENIED,
        details={"reason": "not visible" if document else "no such document"},
    )
    session.commit()
    raise NotFound("No such document that you may see.")


def download_name(document: Document) -> str:
    """A generated file name (never the uploader's): kind, short id and the type's extension."""
    return f"{document.kind.value}-{document.id.hex[:12]}.{EXTENSIONS[document.media_type]}"


def open_content(
    session: Session, actor: Actor, document_id: str, *, store: DocumentStore
) -> tuple[Document, Iterator[bytes]]:
    """The document and its plaintext chunks, decrypted one at a time as they are sent (audited)."""
    document, parent = _load(session, actor, document_id)
    _require(actor, READ_SCOPES[document.parent_type])
    if document.discarded_at is not None:
        raise DataErased(extra={"erased_at": document.discarded_at.isoformat()})
    _key_id, key = _data_key(session, parent)
    _audit(session, actor, AuditAction.DOCUMENT_DOWNLOAD, document)
    session.commit()
    ids = {"document_id": document.id, "data_key_id": document.data_key_id, "chunk_size": document.chunk_size}
    opened = store.open(document.storage_key)
    stream = opened.__enter__()  # the with-block ends in _chunks, when the last chunk is sent

    def _chunks() -> Iterator[bytes]:
        try:
            yield from sealing.open_chunks(key, stream, **ids)
        finally:
            opened.__exit__(None, None, None)

    return document, _chunks()


def delete(session: Session, actor: Actor, document_id: str, *, store: DocumentStore) -> None:
    """Remove a document and its stored chunks (MGEC staff; the chunks go once the removal commits)."""
    document, parent = _load(session, actor, document_id)
    _require(actor, WRITE_SCOPES[document.parent_type])
    if not parent.staff:
        raise Forbidden("Only MGEC staff may delete documents.")
    _audit(session, actor, AuditAction.DOCUMENT_DELETE, document)
    delete_after_commit(session, store, [document.storage_key])
    session.delete(document)
    session.commit()
