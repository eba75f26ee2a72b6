"""A document's metadata row; its content lives sealed in the document store, never in the database."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, enum_column, utcnow
from ..privacy import EncryptedRecordMixin, encrypted_column


class DocumentKind(StrEnum):
    CONSENT_FORM = "consent_form"
    PASSPORT_COPY = "passport_copy"
    TRAVEL_DOCUMENT = "travel_document"
    POLICE_REPORT = "police_report"
    IDENTIFICATION_PHOTO = "identification_photo"
    MEDICAL = "medical"
    OTHER = "other"


# Never shown to a partner whose kind of organisation the person's consent does not cover.
PERSONAL_KINDS = frozenset(
    {DocumentKind.PASSPORT_COPY, DocumentKind.IDENTIFICATION_PHOTO, DocumentKind.MEDICAL}
)


class MediaType(StrEnum):
    """The content types accepted, as decided from the file's own bytes (content.py)."""

    PDF = "application/pdf"
    JPEG = "image/jpeg"
    PNG = "image/png"
    HEIC = "image/heic"


EXTENSIONS = {MediaType.PDF: "pdf", MediaType.JPEG: "jpg", MediaType.PNG: "png", MediaType.HEIC: "heic"}


class ParentType(StrEnum):
    REFERRAL = "referral"
    CASE = "case"


class Document(EncryptedRecordMixin, Base):
    """One file of a referral or of a case, sealed with that record's data key (`data_key_id`)."""

    __tablename__ = "documents"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    referral_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("referrals.id", ondelete="CASCADE")
    )
    case_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[DocumentKind] = mapped_column(enum_column(DocumentKind, "kind"), nullable=False)
    media_type: Mapped[MediaType] = mapped_column(enum_column(MediaType, "media_type"), nullable=False)
    size: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    chunk_size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # True for images re-encoded without EXIF, GPS or camera serial; PDFs are stored as sent.
    metadata_stripped: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    note = encrypted_column()
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    uploaded_by_organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id"), nullable=False
    )
    uploaded_by_client_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    uploaded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # The stored chunks were deleted when the parent's key was shredded (erasure, retention).
    discarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        sa.CheckConstraint(
            "(referral_id IS NULL) <> (case_id IS NULL)", name="one_parent"
        ),
        sa.CheckConstraint("size > 0", name="size_positive"),
        sa.Index("ix_documents_case_uploaded", "case_id", "uploaded_at", "id"),
        sa.Index("ix_documents_referral_uploaded", "referral_id", "uploaded_at", "id"),
    )

    @property
    def parent_type(self) -> ParentType:
        return ParentType.CASE if self.case_id is not None else ParentType.REFERRAL

    @property
    def parent_id(self) -> uuid.UUID:
        return self.case_id if self.case_id is not None else self.referral_id  # type: ignore[return-value]

    @property
    def storage_key(self) -> str:
        """The object's name in the document store: the id alone, nothing personal."""
        return self.id.hex
