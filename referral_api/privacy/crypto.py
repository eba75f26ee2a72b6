"""AES-256-GCM with random 96-bit nonces, the layout of a ciphertext, and the encoding of values.

A stored ciphertext is `version (1 byte) | nonce (12 bytes) | ciphertext and tag`. The associated
data is never stored: the reader rebuilds it from where the ciphertext sits, so a ciphertext read
from anywhere else fails its tag.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """A ciphertext does not authenticate where it was read: tampered, moved, or under another key."""


_HEADER = bytes([VERSION])
_AAD_PREFIX = b"referral-api"


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return seal_with(AESGCM(key), plaintext, aad)


def seal_with(cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """`seal` with a key's cipher made once, for the many fields of one record."""
    nonce = os.urandom(NONCE_BYTES)
    return _HEADER + nonce + cipher.encrypt(nonce, plaintext, _HEADER + aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes, *, what: str) -> bytes:
    """The plaintext of `blob`; DecryptionFailed names `what` (never the value) when it does not verify."""
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != VERSION:
        raise DecryptionFailed(f"{what}: not a ciphertext of version {VERSION}")
    try:
        return AESGCM(key).decrypt(blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:], bytes([VERSION]) + aad)
    except InvalidTag:
        raise DecryptionFailed(
            f"{what}: the ciphertext does not authenticate (tampered, or copied from another row or column)"
        ) from None


def associated_data(*parts: object) -> bytes:
    """Parts joined unambiguously (length-prefixed), e.g. table, column, row id, data key id."""
    return _AAD_PREFIX + length_prefixed(*parts)


def length_prefixed(*parts: object) -> bytes:
    """The parts of `associated_data` after its fixed prefix; built in pieces, a record's fields share
    their row's (`associated_data(a, b, c) == associated_data(a) + length_prefixed(b, c)`)."""
    out = []
    for part in parts:
        raw = str(part).encode()
        out.append(len(raw).to_bytes(4, "big"))
        out.append(raw)
    return b"".join(out)


def _tag(value: Any) -> Any:
    # datetime before date: a datetime is a date too.
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(
        f"an encrypted field holds str, numbers, bools, lists, dicts, dates; not {type(value).__name__}"
    )


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$date" in obj:
            return date.fromisoformat(obj["$date"])
        if "$datetime" in obj:
            return datetime.fromisoformat(obj["$datetime"])
    return obj


def encode_value(value: Any) -> bytes:
    """JSON of `value` (dates and datetimes tagged so they come back as such)."""
    return json.dumps(value, default=_tag, ensure_ascii=False, separators=(",", ":")).encode()


_DECODER = json.JSONDecoder(object_hook=_untag)  # one decoder: json.loads builds one per call


def decode_value(raw: bytes) -> Any:
    return _DECODER.decode(raw.decode())
