"""Cases: one person's way home and back into life in Mongolia (docs/domain.md, Case).

Opened when a referral is accepted. The case shares the person's data key with the referral that
opened it (the key is shared, not copied), so crypto-shredding one erases the person everywhere:
the case's own free text (hold reason, timeline notes, service notes) is sealed under that key too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, IdMixin, RaisedMixin, TimestampMixin, UTCDateTime, answered_index, enum_column, utcnow
from ..errors import Conflict, IllegalTransition
from ..privacy import EncryptedRecordMixin, encrypted_column
from .stages import (
    CLOCK_FROM_DETAIL,
    KEY_DATE_OF_DETAIL,
    KEY_DATE_OF_STAGE,
    MOVES,
    ClosureReason,
    Move,
    MoveKind,
    ParticipantRole,
    Stage,
    allowed_targets,
)


def _clock_default(context: Any) -> datetime:
    return context.get_current_parameters().get("stage_since") or utcnow()


class Case(IdMixin, TimestampMixin, RaisedMixin, Base):
    __tablename__ = "cases"

    reference: Mapped[str] = mapped_column(sa.String(20), unique=True, nullable=False)
    data_key_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    opened_by_organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id"), nullable=False
    )
    opened_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Whose consent rules govern the case: the organisation kinds the person agreed to share with.
    share_with: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)

    stage: Mapped[Stage] = mapped_column(
        enum_column(Stage, "stage"), nullable=False, default=Stage.VERIFICATION, server_default="verification"
    )
    stage_since: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    internal: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    on_hold: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    on_hold_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hold_reason = encrypted_column()
    # The clock of the current stage (deadlines/): when it started, moved later by each hold's length,
    # so that "overdue" is one comparison with a constant. held_seconds: the time on hold in this stage.
    clock_since: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=_clock_default)
    held_seconds: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    # Set by `referral-api deadlines run` when a deadline of this stage passed; cleared by the next move.
    overdue_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closure_reason: Mapped[ClosureReason | None] = mapped_column(enum_column(ClosureReason, "closure_reason"))
    # When the last recorded thing happened: a new move may not be dated before it.
    last_occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="1")

    # key dates of the status view (plain: no person in them, and reports count them)
    referred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    travel_document_issued_on: Mapped[date | None] = mapped_column(sa.Date)
    departed_on: Mapped[date | None] = mapped_column(sa.Date)
    arrived_on: Mapped[date | None] = mapped_column(sa.Date)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # crypto-shredded: the person and the case's sealed notes are gone; stage and dates stay for reports
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erasure_reason: Mapped[str | None] = mapped_column(sa.String(30))

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.Index("ix_cases_opened", "opened_at", "id"),
        sa.Index("ix_cases_stage_opened", "stage", "opened_at", "id"),
        # The deadlines evaluation reads only these columns of the waits it finds (index-only on PostgreSQL).
        sa.Index(
            "ix_cases_stage_clock", "stage", "clock_since",
            postgresql_include=[
                "id", "reference", "stage_since", "held_seconds", "on_hold", "erased_at",
                "raised_deadline", "raised_period", "raised_level",
            ],
        ),
        answered_index("cases", "stage_since"),
    )

    def move_to(self, target: Stage, *, occurred_at: datetime, details: dict[str, Any]) -> tuple[Stage, Move]:
        """Apply one move of the stage table (who may make it is checked by the service)."""
        move = MOVES.get((self.stage, target))
        if move is None:
            raise IllegalTransition(
                f"A case in {self.stage.value} cannot move to {target.value}.",
                extra={"current_stage": self.stage.value, "allowed_stages": allowed_targets(self.stage)},
            )
        previous = self.stage
        self.stage, self.stage_since, self.last_occurred_at = target, occurred_at, occurred_at
        clock_day = details.get(CLOCK_FROM_DETAIL.get(target, ""))
        self.clock_since = datetime.combine(clock_day, time(), UTC) if clock_day else occurred_at
        self.held_seconds, self.overdue_since = 0, None
        if move.kind is MoveKind.BACK and previous in KEY_DATE_OF_STAGE:
            setattr(self, KEY_DATE_OF_STAGE[previous], None)
        for detail, column in KEY_DATE_OF_DETAIL.items():
            if detail in details:
                setattr(self, column, details[detail])
        if target is Stage.CLOSED:
            self.closure_reason, self.closed_at = details["closure_reason"], occurred_at
            # a closed case waits for nothing: closing ends its hold (moves.transition records it)
            self.on_hold, self.on_hold_since, self.hold_reason = False, None, None
        elif previous is Stage.CLOSED:
            self.closure_reason, self.closed_at = None, None
        return previous, move

    def hold(self, *, reason: str, occurred_at: datetime) -> None:
        if self.on_hold:
            raise Conflict("The case is on hold already.", extra={"on_hold": True})
        if self.stage is Stage.CLOSED:
            raise Conflict("A closed case cannot be put on hold.", extra={"current_stage": "closed"})
        self.on_hold, self.on_hold_since, self.hold_reason = True, occurred_at, reason
        self.last_occurred_at = occurred_at

    def resume(self, *, occurred_at: datetime) -> None:
        if self.stage is Stage.CLOSED:
            raise Conflict("A closed case cannot be resumed.", extra={"current_stage": "closed"})
        if not self.on_hold:
            raise Conflict("The case is not on hold.", extra={"on_hold": False})
        # Only the part of the hold inside the current stage pauses its clock.
        held = occurred_at - max(self.on_hold_since or occurred_at, self.stage_since)
        if held.total_seconds() > 0:
            self.held_seconds += int(held.total_seconds())
            self.clock_since += held
        self.on_hold, self.on_hold_since, self.hold_reason = False, None, None
        self.last_occurred_at = occurred_at


class CaseEventKind(StrEnum):
    OPENED = "opened"
    MOVED = "moved"
    HELD = "held"
    RESUMED = "resumed"
    CONSENT_CHANGED = "consent_changed"


class CaseEvent(IdMixin, EncryptedRecordMixin, Base):
    """One entry of a case's timeline; the note and personal details are sealed under the case's key."""

    __tablename__ = "case_events"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), nullable=False)
    kind: Mapped[CaseEventKind] = mapped_column(enum_column(CaseEventKind, "kind"), nullable=False)
    from_stage: Mapped[Stage | None] = mapped_column(enum_column(Stage, "from_stage"))
    to_stage: Mapped[Stage | None] = mapped_column(enum_column(Stage, "to_stage"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    organisation_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organisations.id"), nullable=False)
    client_id: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False, default=dict)
    note = encrypted_column()
    personal_details = encrypted_column()

    __table_args__ = (sa.Index("ix_case_events_timeline", "case_id", "occurred_at", "recorded_at"),)


class CaseParticipant(Base):
    """An organisation taking part in a case; a referrer keeps its own case number for status look-ups."""

    __tablename__ = "case_participants"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organisations.id"), primary_key=True)
    role: Mapped[ParticipantRole] = mapped_column(enum_column(ParticipantRole, "role"), nullable=False)
    external_reference: Mapped[str | None] = mapped_column(sa.String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    added_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)

    __table_args__ = (
        sa.Index("ix_case_participants_organisation", "organisation_id", "case_id"),
        sa.Index("ix_case_participants_external_reference", "organisation_id", "external_reference"),
    )


class ServiceKind(StrEnum):
    SHELTER = "shelter"
    MEDICAL = "medical"
    PSYCHOSOCIAL = "psychosocial"
    LEGAL_AID = "legal_aid"
    VOCATIONAL_TRAINING = "vocational_training"
    JOB_PLACEMENT = "job_placement"
    SMALL_BUSINESS = "small_business"
    HOUSING = "housing"
    EDUCATION = "education"
    FAMILY_MEDIATION = "family_mediation"
    OTHER = "other"


class ServiceStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    DECLINED = "declined"


# A shelter bed is taken by a placement that is planned or under way.
ACTIVE_SERVICE = (ServiceStatus.PLANNED, ServiceStatus.IN_PROGRESS)


class Shelter(IdMixin, TimestampMixin, Base):
    __tablename__ = "shelters"

    name: Mapped[str] = mapped_column(sa.String(200), unique=True, nullable=False)
    city: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    capacity: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("organisations.id"))
    # A closed shelter takes no new placements; it stays listed for the placements it had.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (sa.CheckConstraint("capacity >= 0", name="capacity_not_negative"),)


class CaseService(IdMixin, TimestampMixin, EncryptedRecordMixin, Base):
    """A service given to the person of a case; the note is sealed under the case's data key."""

    __tablename__ = "case_services"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), nullable=False, index=True)
    kind: Mapped[ServiceKind] = mapped_column(enum_column(ServiceKind, "kind"), nullable=False)
    provider_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    shelter_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("shelters.id"), index=True)
    status: Mapped[ServiceStatus] = mapped_column(enum_column(ServiceStatus, "status"), nullable=False)
    starts_on: Mapped[date | None] = mapped_column(sa.Date)
    ends_on: Mapped[date | None] = mapped_column(sa.Date)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="1")
    note = encrypted_column()

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint("(kind = 'shelter') = (shelter_id IS NOT NULL)", name="shelter_iff_kind"),
        sa.CheckConstraint(
            "ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on", name="dates_order"
        ),
    )
