"""The referral: a partner's request that MGEC take on a person (docs/domain.md, Referral).

Personal and sensitive fields are encrypted under the record's own data key (privacy/); the plain
columns are what filters, access rules and anonymised reports need, nothing more.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, IdMixin, RaisedMixin, TimestampMixin, UTCDateTime, answered_index, enum_column, utcnow
from ..errors import Conflict, IllegalTransition
from ..privacy import EncryptedRecordMixin, encrypted_column
from .states import FINAL, MOVES, ReferralAction, ReferralStatus, allowed_actions
from .vocab import Concern, ConsentMethod, LegalBasis, RejectReason, Sex, Source, Urgency


class AgeBand(StrEnum):
    """The bands of MGEC's and CTDC's reports; the exact age is never stored in plain."""

    CHILD = "0-11"
    ADOLESCENT = "12-17"
    AGE_18_25 = "18-25"
    AGE_26_35 = "26-35"
    AGE_36_49 = "36-49"
    AGE_50_PLUS = "50+"


def age_band(age: int) -> AgeBand:
    for upper, band in (
        (11, AgeBand.CHILD),
        (17, AgeBand.ADOLESCENT),
        (25, AgeBand.AGE_18_25),
        (35, AgeBand.AGE_26_35),
        (49, AgeBand.AGE_36_49),
    ):
        if age <= upper:
            return band
    return AgeBand.AGE_50_PLUS


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class Referral(IdMixin, TimestampMixin, RaisedMixin, EncryptedRecordMixin, Base):
    __tablename__ = "referrals"

    reference: Mapped[str] = mapped_column(sa.String(20), unique=True, nullable=False)
    status: Mapped[ReferralStatus] = mapped_column(
        enum_column(ReferralStatus, "status"), nullable=False, default=ReferralStatus.SUBMITTED
    )
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    concern: Mapped[Concern] = mapped_column(enum_column(Concern, "concern"), nullable=False)
    source: Mapped[Source] = mapped_column(enum_column(Source, "source"), nullable=False)
    external_reference: Mapped[str | None] = mapped_column(sa.String(100))

    # provenance
    submitted_by_organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id"), nullable=False
    )
    submitted_by_client_id: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    submitted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    # Set by `referral-api deadlines run` when a deadline of this status passed; cleared by the next move.
    overdue_since: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # person: encrypted, except what reports count (sex, age band, minority, nationality)
    family_name = encrypted_column()
    given_name = encrypted_column()
    names_cyrillic = encrypted_column()
    aliases = encrypted_column()
    date_of_birth = encrypted_column()
    estimated_age = encrypted_column()
    passport_number = encrypted_column()
    national_id = encrypted_column()
    phone = encrypted_column()
    home_province = encrypted_column()
    languages = encrypted_column()
    current_location = encrypted_column()
    sex: Mapped[Sex] = mapped_column(enum_column(Sex, "sex"), nullable=False, default=Sex.UNKNOWN)
    nationality: Mapped[str | None] = mapped_column(sa.String(2))
    is_minor: Mapped[bool | None] = mapped_column(sa.Boolean)
    age_band: Mapped[AgeBand | None] = mapped_column(enum_column(AgeBand, "age_band"))

    # situation: where and when in plain (filters, reports); the story and the needs encrypted
    identified_country: Mapped[str] = mapped_column(sa.String(2), nullable=False)
    identified_on: Mapped[date] = mapped_column(sa.Date, nullable=False)
    exploitation_types: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
    urgency: Mapped[Urgency] = mapped_column(enum_column(Urgency, "urgency"), nullable=False)
    identified_city = encrypted_column()
    narrative = encrypted_column()
    needs = encrypted_column()
    safety_risk = encrypted_column()
    contact_family = encrypted_column()

    # consent
    consent_given: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    consent_method: Mapped[ConsentMethod | None] = mapped_column(enum_column(ConsentMethod, "consent_method"))
    share_with: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
    legal_basis: Mapped[LegalBasis | None] = mapped_column(enum_column(LegalBasis, "legal_basis"))
    # Fields a partner sent that were not kept: without consent, only what the legal basis needs.
    minimised: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
    consent_obtained_on = encrypted_column()
    consent_obtained_by = encrypted_column()
    consent_language = encrypted_column()

    # review
    reviewed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    decided_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reject_reason: Mapped[RejectReason | None] = mapped_column(enum_column(RejectReason, "reject_reason"))
    decision_note = encrypted_column()
    case_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    possible_duplicates: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # crypto-shredded: the personal fields are gone for good; the plain facts stay for reports
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erasure_reason: Mapped[str | None] = mapped_column(sa.String(30))

    messages: Mapped[list[ReferralMessage]] = relationship(
        back_populates="referral", order_by="ReferralMessage.created_at", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # Keyset pages: newest first, by submission time then id; one index per audience's filter.
        sa.Index("ix_referrals_submitted", "submitted_at", "id"),
        sa.Index("ix_referrals_org_submitted", "submitted_by_organisation_id", "submitted_at", "id"),
        sa.Index("ix_referrals_status_submitted", "status", "submitted_at", "id"),
        sa.Index("ix_referrals_status_changed", "status", "status_changed_at"),
        answered_index("referrals", "status_changed_at"),
        sa.UniqueConstraint(
            "submitted_by_organisation_id", "external_reference", name="uq_referrals_org_external_reference"
        ),
        sa.CheckConstraint("consent_given OR legal_basis IS NOT NULL", name="consent_or_basis"),
    )

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL

    def move(self, action: ReferralAction, *, now: datetime) -> ReferralStatus:
        """Apply one move of the state table; anything the state does not allow is a 409."""
        move = MOVES[action]
        if self.status not in move.sources:
            raise IllegalTransition(
                f"A referral that is {self.status.value} cannot be moved by {action.value}.",
                extra={"current_status": self.status.value, "allowed_actions": allowed_actions(self.status)},
            )
        previous = self.status
        self.status = move.target
        self.status_changed_at = now
        self.overdue_since = None
        return previous

    def link_case(self, case_id: uuid.UUID) -> None:
        if self.case_id is not None:
            raise Conflict("This referral is linked to a case already.")
        self.case_id = case_id


class MessageKind(StrEnum):
    QUESTION = "question"
    ANSWER = "answer"


class ReferralMessage(IdMixin, EncryptedRecordMixin, Base):
    """A coordinator's questions and the partner's answers; encrypted under the referral's data key."""

    __tablename__ = "referral_messages"

    referral_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("referrals.id"), nullable=False, index=True)
    kind: Mapped[MessageKind] = mapped_column(enum_column(MessageKind, "kind"), nullable=False)
    organisation_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organisations.id"), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    text = encrypted_column()

    referral: Mapped[Referral] = relationship(back_populates="messages")


class MatchKey(Base):
    """A blind index of a referral (passport, national id, name with birth year) for duplicate search."""

    __tablename__ = "referral_match_keys"

    referral_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("referrals.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)

    __table_args__ = (sa.Index("ix_referral_match_keys_lookup", "kind", "digest"),)
