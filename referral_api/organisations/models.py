"""Organisations: MGEC and the partners that refer, repatriate and serve (docs/domain.md)."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, IdMixin, TimestampMixin, enum_column


class OrganisationKind(StrEnum):
    MGEC = "mgec"
    POLICE = "police"
    EMBASSY = "embassy"
    IOM = "iom"
    NGO = "ngo"
    GOVERNMENT = "government"
    SERVICE_PROVIDER = "service_provider"


class OrganisationStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Organisation(IdMixin, TimestampMixin, Base):
    __tablename__ = "organisations"

    name: Mapped[str] = mapped_column(sa.String(200), unique=True, nullable=False)
    kind: Mapped[OrganisationKind] = mapped_column(enum_column(OrganisationKind, "kind"), nullable=False)
    country: Mapped[str] = mapped_column(sa.String(2), nullable=False)
    status: Mapped[OrganisationStatus] = mapped_column(
        enum_column(OrganisationStatus, "status"), nullable=False, default=OrganisationStatus.ACTIVE
    )
    # Whether its partner officers sign in with a TOTP code; an embassy's always do (requires_totp).
    totp_required: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )

    __table_args__ = (
        sa.CheckConstraint("length(country) = 2 AND upper(country) = country", name="country_alpha2"),
        # Exactly one home organisation: a partial unique index, enforced by the database itself.
        sa.Index(
            "uq_organisations_one_mgec",
            "kind",
            unique=True,
            sqlite_where=sa.text("kind = 'mgec'"),
            postgresql_where=sa.text("kind = 'mgec'"),
        ),
    )

    @property
    def is_active(self) -> bool:
        return self.status is OrganisationStatus.ACTIVE

    @property
    def requires_totp(self) -> bool:
        """Whether its people must sign in with a TOTP code: always for an embassy, else as set."""
        return self.kind is OrganisationKind.EMBASSY or bool(self.totp_required)

    def suspend(self) -> None:
        self.status = OrganisationStatus.SUSPENDED

    def activate(self) -> None:
        self.status = OrganisationStatus.ACTIVE
