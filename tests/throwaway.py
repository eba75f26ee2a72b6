"""A throwaway model with encrypted fields, on its own metadata (never in the app's migrations)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from referral_api.db import IdMixin
from referral_api.privacy import EncryptedRecordMixin, encrypted_column


class ThrowawayBase(DeclarativeBase):
    metadata = sa.MetaData()


class Person(IdMixin, EncryptedRecordMixin, ThrowawayBase):
    __tablename__ = "throwaway_people"

    family_name = encrypted_column()
    given_name = encrypted_column()
    birth_date = encrypted_column()
    aliases = encrypted_column()
    # Not personal: a control value that a dump must show, proving the dump check can see values.
    label: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
