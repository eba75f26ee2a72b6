"""Privacy core: envelope encryption of personal fields, the key store, blind indexes, crypto-shredding.

What other parts use:
- `EncryptedRecordMixin` and `encrypted_column("family_name")` on a model (see fields.py);
- `load_keys(session, records)` before reading the fields of many records (one query, not one a row);
- `shred(session, data_key_id)` to erase a record's personal data for good (caller commits);
- `get_privacy(session).indexer.passport(...)` / `.national_id(...)` / `.name_birth_year(name, year)`;
- errors: `errors.DataErased`, `errors.DataKeyMissing` (410), `crypto.DecryptionFailed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from .blind_index import BlindIndexer, BlindIndexKind, normalise_document_number, normalise_name
from .context import EXTENSION, SESSION_INFO, Privacy, from_settings, get_privacy, init_app
from .crypto import DecryptionFailed
from .fields import EncryptedField, EncryptedRecordMixin, encrypted_column, has_sealed, readable
from .keys import KeyRing, UnknownMasterKey
from .keystore import KeyStore


def load_keys(session: Session, records: Iterable[Any]) -> None:
    """Unwrap the data keys of many records at once (call before reading the fields of a list)."""
    privacy = get_privacy(session)
    privacy.keystore.prefetch(session, privacy.keyring, {r.data_key_id for r in records})


def shred(session: Session, data_key_id: uuid.UUID) -> bool:
    """Crypto-shred: erase a record's data key so its encrypted fields can never be read again.

    In the caller's transaction when the keys live in the main database (the caller commits); in a
    separate key store (KEYSTORE_URL) the erasure is committed there at once. Returns False when the
    key was already erased. Record the `privacy:record:erase` audit event in the caller.
    """
    privacy = get_privacy(session)
    return privacy.keystore.shred(session, data_key_id)


__all__ = [
    "EXTENSION",
    "SESSION_INFO",
    "BlindIndexKind",
    "BlindIndexer",
    "DecryptionFailed",
    "EncryptedField",
    "EncryptedRecordMixin",
    "KeyRing",
    "KeyStore",
    "Privacy",
    "UnknownMasterKey",
    "encrypted_column",
    "from_settings",
    "get_privacy",
    "has_sealed",
    "init_app",
    "load_keys",
    "normalise_document_number",
    "normalise_name",
    "readable",
    "shred",
]
