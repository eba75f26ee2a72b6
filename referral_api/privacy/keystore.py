"""The key store: data keys in the main database (default) or in a database of their own (KEYSTORE_URL).

In the main database the data keys are written in the caller's transaction, so a record and its key
commit together. In a separate key store each new key is committed there first, before the record's
transaction commits: a crash between the two leaves an unused key, never a record without its key.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ..db import make_engine, utcnow
from ..errors import DataErased, DataKeyMissing
from . import crypto
from .keys import KeyRing
from .models import DataKey

_CACHE = "referral_api.privacy.data_keys"
log = logging.getLogger("referral_api.privacy")


def _wrap_aad(data_key_id: uuid.UUID, kid: str) -> bytes:
    return crypto.associated_data("data_key", data_key_id, kid)


def wrap(keyring: KeyRing, data_key_id: uuid.UUID, raw: bytes,
         active: tuple[str, bytes] | None = None) -> tuple[bytes, str]:
    """`raw` sealed under the active master key (or the given `(kid, key)`), and that key's id."""
    kid, key = active or keyring.active()
    return crypto.seal(key, raw, _wrap_aad(data_key_id, kid)), kid


def unwrap(keyring: KeyRing, data_key_id: uuid.UUID, wrapped: bytes, kid: str) -> bytes:
    return crypto.open_sealed(keyring.key(kid), wrapped, _wrap_aad(data_key_id, kid),
                              what=f"data key {data_key_id}")


def _new_key(keyring: KeyRing) -> tuple[dict, bytes]:
    """A new random data key: its row (wrapped by the active master key) and the key."""
    data_key_id = uuid.uuid4()
    raw = crypto.AESGCM.generate_key(bit_length=256)
    wrapped, kid = wrap(keyring, data_key_id, raw)
    return {"id": data_key_id, "wrapped_key": wrapped, "master_key_id": kid, "created_at": utcnow()}, raw


_INSERT_KEY = DataKey.__table__.insert()


@dataclass
class KeyStore:
    """Where data keys live; `own` is the session factory of a separate key-store database, or None."""

    own: sessionmaker[Session] | None = None

    @classmethod
    def from_url(cls, url: str) -> KeyStore:
        if not url:
            return cls()
        return cls(sessionmaker(bind=make_engine(url), expire_on_commit=False))

    @property
    def is_separate(self) -> bool:
        return self.own is not None

    def init_schema(self) -> None:
        """Create the data_keys table in a separate key store (`referral-api keys init`)."""
        if self.own is None:
            raise RuntimeError("the data keys live in the main database; `db upgrade` creates them")
        engine = self.own.kw["bind"]
        DataKey.__table__.create(engine, checkfirst=True)

    @contextlib.contextmanager
    def using(self, session: Session) -> Iterator[Session]:
        """The session that reaches the data keys: the caller's, or a committed one of the key store."""
        if self.own is None:
            yield session
            return
        with self.own() as ks:
            yield ks
            ks.commit()

    def sessionmaker_for(self, main: sessionmaker[Session]) -> sessionmaker[Session]:
        return self.own or main

    def create(self, session: Session, keyring: KeyRing) -> tuple[uuid.UUID, bytes]:
        """A new random data key, stored wrapped by the active master key; returns (id, key)."""
        row, raw = _new_key(keyring)
        with self.using(session) as ks:
            ks.add(DataKey(**row))
        session.info.setdefault(_CACHE, {})[row["id"]] = raw
        return row["id"], raw

    def create_now(self, session: Session, keyring: KeyRing) -> tuple[uuid.UUID, bytes]:
        """`create`, its row INSERTed at once on the session's connection (Core: nothing left for a
        flush; in a pipeline with the record's own INSERT). A separate key store: as `create`."""
        if self.own is not None:
            return self.create(session, keyring)
        row, raw = _new_key(keyring)
        session.connection().execute(_INSERT_KEY, row)
        session.info.setdefault(_CACHE, {})[row["id"]] = raw
        return row["id"], raw

    def holds(self, session: Session, data_key_id: uuid.UUID | None) -> bool:
        """Whether `session` has the data key unwrapped already (`get` would not read the store)."""
        return data_key_id in session.info.get(_CACHE, ())

    def get(self, session: Session, keyring: KeyRing, data_key_id: uuid.UUID | None) -> bytes:
        """The plaintext data key; DataErased when shredded, DataKeyMissing when absent."""
        if data_key_id is None:
            raise DataKeyMissing("This record has encrypted data but no data key.")
        cache = session.info.setdefault(_CACHE, {})
        if data_key_id in cache:
            return cache[data_key_id]
        with self.using(session) as ks:
            row = ks.execute(
                sa.select(DataKey.wrapped_key, DataKey.master_key_id, DataKey.erased_at)
                .where(DataKey.id == data_key_id)
            ).one_or_none()
        if row is None:
            log.error("data key %s is missing from the key store", data_key_id)
            raise DataKeyMissing(f"The data key {data_key_id} of this record is missing from the key store.")
        if row.erased_at is not None or row.wrapped_key is None:
            raise DataErased(extra={"erased_at": row.erased_at.isoformat() if row.erased_at else None})
        raw = unwrap(keyring, data_key_id, row.wrapped_key, row.master_key_id)
        cache[data_key_id] = raw
        return raw

    def prefetch(self, session: Session, keyring: KeyRing, data_key_ids: set[uuid.UUID]) -> None:
        """Unwrap many data keys with one query per 500, so that reading a list is not one query a row."""
        cache = session.info.setdefault(_CACHE, {})
        todo = sorted(i for i in data_key_ids if i is not None and i not in cache)
        for start in range(0, len(todo), 500):
            with self.using(session) as ks:
                rows = ks.execute(
                    sa.select(DataKey.id, DataKey.wrapped_key, DataKey.master_key_id)
                    .where(DataKey.id.in_(todo[start:start + 500]), DataKey.erased_at.is_(None))
                ).all()
            for row in rows:
                cache[row.id] = unwrap(keyring, row.id, row.wrapped_key, row.master_key_id)

    def shred(self, session: Session, data_key_id: uuid.UUID) -> bool:
        """Erase a data key for good; True when a live key was erased, False when it was already gone."""
        session.info.setdefault(_CACHE, {}).pop(data_key_id, None)
        with self.using(session) as ks:
            result = ks.execute(
                sa.update(DataKey)
                .where(DataKey.id == data_key_id, DataKey.erased_at.is_(None))
                .values(wrapped_key=None, master_key_id=None, erased_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount)
