"""Where sealed documents live: a small store interface and its file-system implementation.

The interface is what an S3-compatible object store needs too (docs/documents.md says how): `put` a
stream of bytes under a key, `open` it for reading as a stream, `delete` it. The store only ever sees
ciphertext; keys are document ids.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import Flask, current_app

from ..config import Settings
from ..errors import PersonalDataUnavailable

log = logging.getLogger("referral_api.documents")
_KEY = re.compile(r"^[0-9a-f]{32}$")


class ContentMissing(PersonalDataUnavailable):
    """The document's row exists but its stored content does not (deleted, or lost from the store)."""

    code = "document_content_missing"
    title = "The document's content is not available"


class DocumentStore(Protocol):
    """What the documents part needs of a store; an object store can implement the same three calls."""

    def put(self, key: str, data: Iterable[bytes]) -> int:
        """Store the pieces of `data` under `key` as one object (all or nothing); the bytes written."""

    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A readable stream of the object `key`; ContentMissing when there is none."""

    def delete(self, key: str) -> bool:
        """Remove the object `key`; False when it was not there."""


class FileSystemStore:
    """Objects as files under `root` (folders 0700, files 0600), written to a temporary name and
    renamed into place, so a failed upload leaves no file behind and a reader never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("a document store key is a document id in hex")
        return self.root / key[:2] / key

    def _ensure(self, folder: Path) -> None:
        for path in (self.root, folder):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)

    def put(self, key: str, data: Iterable[bytes]) -> int:
        path = self._path(key)
        self._ensure(path.parent)
        partial = path.with_name(path.name + ".partial")
        written = 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for piece in data:
                    out.write(piece)
                    written += len(piece)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return written

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            stream = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            log.error("document %s has no stored content", key)
            raise ContentMissing("The stored content of this document is missing.") from None
        with stream:
            yield stream

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return False
        return True


def file_system_store(documents_path: str, instance_path: Path) -> FileSystemStore:
    """The store of DOCUMENTS_PATH, by default the `documents` folder of the instance folder."""
    return FileSystemStore(Path(documents_path) if documents_path else Path(instance_path) / "documents")


EXTENSION = "referral_api.documents.store"


def init_app(app: Flask, settings: Settings) -> DocumentStore:
    store = file_system_store(settings.documents_path, Path(app.instance_path))
    app.extensions[EXTENSION] = store
    return store


def get_store() -> DocumentStore:
    """The document store of the current app."""
    return current_app.extensions[EXTENSION]
