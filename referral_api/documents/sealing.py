"""Files sealed in chunks: AES-256-GCM under the parent record's data key, one frame per chunk.

A stored document is a sequence of frames `length (4 bytes, big-endian) | sealed chunk`, each sealed
chunk laid out as privacy.crypto writes it (version, nonce, ciphertext and tag). The associated data
of chunk i binds the document id, the data key id, i and whether it is the last chunk, so a chunk
moved to another document or position, a reordered file, a truncated one (no last chunk) or one
with chunks appended after the last all fail to open. Only one chunk is in memory at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import BinaryIO

from ..privacy import crypto
from ..privacy.crypto import DecryptionFailed

CHUNK_SIZE = 64 * 1024
_FRAME_HEADER = 4
_OVERHEAD = 1 + crypto.NONCE_BYTES + 16  # version, nonce, tag


def _aad(document_id: uuid.UUID, data_key_id: uuid.UUID, index: int, last: bool) -> bytes:
    return crypto.associated_data("document", document_id, data_key_id, index, "last" if last else "more")


def seal_chunks(
    key: bytes, plaintext: memoryview, *, document_id: uuid.UUID, data_key_id: uuid.UUID,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes]:
    """The frames of `plaintext` (a memoryview: chunks are slices of it, never copies of the whole)."""
    total = len(plaintext)
    count = max(1, -(-total // chunk_size))
    for index in range(count):
        piece = plaintext[index * chunk_size:(index + 1) * chunk_size]
        sealed = crypto.seal(key, piece, _aad(document_id, data_key_id, index, index == count - 1))
        yield len(sealed).to_bytes(_FRAME_HEADER, "big") + sealed


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        piece = stream.read(size - len(out))
        if not piece:
            break
        out += piece
    return bytes(out)


def open_chunks(
    key: bytes, stream: BinaryIO, *, document_id: uuid.UUID, data_key_id: uuid.UUID,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes]:
    """The plaintext chunks of a stored document, each verified before it is given out."""
    what = f"document {document_id}"
    index = 0
    while True:
        header = _read_exactly(stream, _FRAME_HEADER)
        if len(header) < _FRAME_HEADER:
            raise DecryptionFailed(f"{what}: truncated (no last chunk)")
        length = int.from_bytes(header, "big")
        if not _OVERHEAD <= length <= chunk_size + _OVERHEAD:
            raise DecryptionFailed(f"{what}: chunk {index} has an impossible length")
        blob = _read_exactly(stream, length)
        if len(blob) < length:
            raise DecryptionFailed(f"{what}: truncated in chunk {index}")
        try:
            plain = crypto.open_sealed(key, blob, _aad(document_id, data_key_id, index, False), what=what)
        except DecryptionFailed:
            plain = crypto.open_sealed(key, blob, _aad(document_id, data_key_id, index, True), what=what)
            if stream.read(1):
                raise DecryptionFailed(f"{what}: data after the last chunk") from None
            yield plain
            return
        yield plain
        index += 1
