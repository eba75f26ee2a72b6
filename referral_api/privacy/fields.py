"""Encrypted attributes on models: `family_name = encrypted_column("family_name")`.

The model needs an `id` primary key and a `data_key_id` column (use `EncryptedRecordMixin`). Each
encrypted attribute maps a nullable binary column of the given name holding the ciphertext; the
attribute itself reads as plaintext and encrypts on write:

- values are str, int, float, bool, None, lists and dicts of those, `date` and `datetime` (stored as
  JSON, dates tagged so they come back as dates);
- a write keeps the plaintext on the instance until the next flush, which encrypts it under the
  record's data key (creating one, and the row id, when the record has none yet);
- a read decrypts under the record's data key; an erased key raises `errors.DataErased` (410), a
  missing one `errors.DataKeyMissing`, a ciphertext that does not authenticate here (moved from
  another row or column, or altered) raises `crypto.DecryptionFailed`;
- the associated data binds table, column, row id and data key id;
- encrypted attributes cannot be queried: search through blind indexes (`blind_index.py`).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from ..errors import DataErased
from . import crypto
from .context import get_privacy

_PENDING = "_privacy_pending"
_SEALED = "_privacy_sealed"  # name -> (ciphertext, plaintext, (row id, data key id)) sealed here
_ROW_AAD = "_privacy_row_aad"  # ((row id, data key id), their part of the associated data)


class EncryptedRecordMixin:
    """The data key id of a record that has encrypted attributes (no FK: the key store may be elsewhere)."""

    data_key_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)


class EncryptedField:
    """A descriptor that encrypts into, and decrypts from, the mapped ciphertext column `column`."""

    def __init__(self, column: str | None = None) -> None:
        self.column = column
        self.name = ""
        self.storage = ""
        self._heads: dict[str, bytes] = {}  # the associated data's table and column, per table

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.column = self.column or name
        self.storage = f"{name}_ciphertext"
        # Declarative maps the class after __set_name__ has run, so this column is mapped with it.
        setattr(owner, self.storage, mapped_column(self.column, sa.LargeBinary, nullable=True))

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__
        pending = state.get(_PENDING)
        if pending and self.name in pending:
            return crypto.decode_value(pending[self.name])
        blob = getattr(obj, self.storage)
        if blob is None:
            return None
        session = object_session(obj)
        if session is None:
            raise RuntimeError(f"{type(obj).__name__}.{self.name}: a detached record cannot be decrypted")
        privacy = get_privacy(session)
        kept = state.get(_SEALED, {}).get(self.name)
        if kept is not None and kept[0] is blob and kept[2] == (obj.id, obj.data_key_id) \
                and privacy.keystore.holds(session, obj.data_key_id):
            # Sealed by this session moments ago, under the key it still holds: opening it would give
            # this plaintext back (a ciphertext read from the database is another object: opened).
            return crypto.decode_value(kept[1])
        key = privacy.keystore.get(session, privacy.keyring, obj.data_key_id)
        what = f"{obj.__tablename__}.{self.column} of {obj.id}"
        raw = crypto.open_sealed(key, blob, self.aad(obj), what=what)
        return crypto.decode_value(raw)

    def __set__(self, obj: Any, value: Any) -> None:
        pending = obj.__dict__.setdefault(_PENDING, {})
        if value is None:
            pending.pop(self.name, None)
            setattr(obj, self.storage, None)
            return
        pending[self.name] = crypto.encode_value(value)
        # A placeholder puts the record among the session's dirty ones; the flush replaces it.
        setattr(obj, self.storage, b"")

    def aad(self, obj: Any) -> bytes:
        """`crypto.associated_data(table, column, row id, data key id)`, from parts built once: the
        table's and column's per field, the row's per record (while its ids stay the same)."""
        head = self._heads.get(obj.__tablename__)
        if head is None:
            head = self._heads[obj.__tablename__] = crypto.associated_data(obj.__tablename__, self.column)
        ids = (obj.id, obj.data_key_id)
        row = obj.__dict__.get(_ROW_AAD)
        if row is None or row[0] != ids:
            row = obj.__dict__[_ROW_AAD] = (ids, crypto.length_prefixed(*ids))
        return head + row[1]

    def seal_with(self, obj: Any, cipher: crypto.AESGCM, plaintext: bytes) -> None:
        """Seal `plaintext` into the column with the record's key's `cipher`; the plaintext is kept
        beside its ciphertext, so that reading the value back in this session opens nothing."""
        blob = crypto.seal_with(cipher, plaintext, self.aad(obj))
        setattr(obj, self.storage, blob)
        obj.__dict__.setdefault(_SEALED, {})[self.name] = (blob, plaintext, (obj.id, obj.data_key_id))


def encrypted_column(column: str | None = None) -> Any:
    """An encrypted attribute stored in the binary column `column` (default: the attribute's name)."""
    return EncryptedField(column)


def has_sealed(record: Any, name: str) -> bool:
    """Whether the encrypted attribute `name` of `record` holds a value (without decrypting it)."""
    field = encrypted_fields(type(record))[name]
    return name in record.__dict__.get(_PENDING, {}) or getattr(record, field.storage) is not None


@functools.cache
def encrypted_fields(cls: type) -> dict[str, EncryptedField]:
    """The encrypted attributes of a model class (walked once per class: classes do not change)."""
    out: dict[str, EncryptedField] = {}
    for klass in reversed(cls.__mro__):
        out.update({k: v for k, v in vars(klass).items() if isinstance(v, EncryptedField)})
    return out


@event.listens_for(Session, "before_flush")
def _encrypt_pending(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Encrypt what was written to encrypted attributes since the last flush."""
    todo = [obj for obj in (*session.new, *session.dirty) if obj.__dict__.get(_PENDING)]
    if not todo:
        return
    privacy = get_privacy(session)
    for obj in todo:
        _seal_pending(session, privacy, obj, at_once=False)


def seal_now(session: Session, obj: Any) -> None:
    """Seal what was written to `obj`'s encrypted attributes now, as the next flush would; a new data
    key's row is INSERTed at once on the session's connection. For a record INSERTed with Core
    (`records.insert_now`), which no flush sees."""
    if obj.__dict__.get(_PENDING):
        _seal_pending(session, get_privacy(session), obj, at_once=True)


def _seal_pending(session: Session, privacy: Any, obj: Any, *, at_once: bool) -> None:
    if obj.id is None:
        obj.id = uuid.uuid4()  # the associated data needs the row id before the INSERT
    if obj.data_key_id is None:
        create = privacy.keystore.create_now if at_once else privacy.keystore.create
        obj.data_key_id, key = create(session, privacy.keyring)
    else:
        key = privacy.keystore.get(session, privacy.keyring, obj.data_key_id)
    fields, cipher = encrypted_fields(type(obj)), crypto.AESGCM(key)
    for name, plaintext in obj.__dict__.pop(_PENDING).items():
        fields[name].seal_with(obj, cipher, plaintext)


def readable(record: Any, name: str) -> Any:
    """An attribute as a view may show it: None for an encrypted one of an erased record (never
    decrypted) or one whose data key was shredded; anything else as it is."""
    if isinstance(getattr(type(record), name, None), EncryptedField) and getattr(record, "erased_at", None):
        return None
    try:
        return getattr(record, name)
    except DataErased:
        return None
