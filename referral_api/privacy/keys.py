"""Master keys and the index key: parsing, the key ring, key files, development generation.

Formats
- `REFERRAL_API_MASTER_KEY`: `kid:base64key[,kid:base64key...]`; the FIRST entry is the active key,
  the others are kept for reading data keys not yet re-wrapped. Each key is 32 random bytes (AES-256)
  in standard or URL-safe base64; a kid is 1-64 characters of `A-Za-z0-9._-`.
- `REFERRAL_API_MASTER_KEY_FILE`: a JSON key ring `{"active": "kid", "keys": {"kid": "base64key", ...}}`.
  `referral-api keys rotate` adds a new key to this file and makes it active.
- `REFERRAL_API_INDEX_KEY`: 32 random bytes in base64, the HMAC key of the blind indexes.
- `REFERRAL_API_AUDIT_SIGNING_KEY`: 32 bytes in base64, the Ed25519 private key of audit checkpoints.

In development, missing keys are generated into `<instance>/keys/` (mode 0600) and the start says
so on stderr; in production a start without master or index key refuses to run (Settings.check()).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import secrets
import stat
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import ConfigError

KEY_BYTES = 32
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class UnknownMasterKey(Exception):
    """A data key is wrapped by a master key id the key ring does not hold."""


def decode_key(name: str, raw: str) -> bytes:
    """32 bytes from base64 (standard or URL-safe, padding optional); a ConfigError names `name`."""
    text = raw.strip()
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text)
                               else None, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} must be base64 of {KEY_BYTES} random bytes") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{name} must be base64 of {KEY_BYTES} random bytes, got {len(key)} bytes")
    return key


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def new_key_id() -> str:
    """A fresh master key id: the date and a random suffix, e.g. `mk-20261128-3f9a1c`."""
    return f"mk-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def _check_kid(name: str, kid: str) -> str:
    if not _KID.match(kid):
        raise ConfigError(f"{name}: key id {kid!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return kid


def parse_master_keys(raw: str, name: str = "REFERRAL_API_MASTER_KEY") -> tuple[str, dict[str, bytes]]:
    """`kid:base64[,kid:base64]` -> (active kid, {kid: key}); the first entry is active."""
    keys: dict[str, bytes] = {}
    active = ""
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep:
            raise ConfigError(f"{name} must look like kid:base64key[,kid:base64key]")
        kid = _check_kid(name, kid.strip())
        if kid in keys:
            raise ConfigError(f"{name}: key id {kid!r} appears twice")
        keys[kid] = decode_key(f"{name} ({kid})", b64)
        active = active or kid
    if not keys:
        raise ConfigError(f"{name} must look like kid:base64key[,kid:base64key]")
    return active, keys


def read_key_file(path: Path, name: str = "REFERRAL_API_MASTER_KEY_FILE") -> tuple[str, dict[str, bytes]]:
    """A JSON key ring `{"active": kid, "keys": {kid: base64}}` -> (active kid, {kid: key})."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{name}: {path} is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not doc["keys"]:
        raise ConfigError(f'{name}: {path} must hold {{"active": kid, "keys": {{kid: base64key}}}}')
    keys = {_check_kid(name, str(k)): decode_key(f"{name} ({k})", str(v)) for k, v in doc["keys"].items()}
    active = doc.get("active")
    if active not in keys:
        raise ConfigError(f"{name}: {path} names active key {active!r}, which is not among its keys")
    return active, keys


def _keep_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """Give the new key file (still empty) the owner, group and mode of the one it replaces: `keys rotate`
    run as root must leave the file readable by the service user that owned it."""
    if os.geteuid() == 0:
        os.fchown(fd, old.st_uid, old.st_gid)
    elif old.st_gid != os.getegid():
        with contextlib.suppress(PermissionError):  # not one of our groups: the owner still reads it
            os.fchown(fd, -1, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def write_key_file(path: Path, active: str, keys: dict[str, bytes]) -> None:
    """Write a key ring atomically: a new file readable by its owner only (0600), a replaced one with
    the old file's owner, group and mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    doc = {"active": active, "keys": {kid: encode_key(k) for kid, k in keys.items()}}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        try:
            if old is not None:
                _keep_owner_and_mode(fh.fileno(), old)
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)


def write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


@dataclass
class KeyRing:
    """Master keys by id, one of them active (new data keys are wrapped by it).

    A key ring read from a file re-reads it when the file changes, so a running service picks up the
    key that `keys rotate` adds without a restart (and wraps new data keys under it at once).
    """

    active_id: str
    keys: dict[str, bytes]
    path: Path | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        # The key file is replaced (new inode) on every write, so inode and mtime tell a change.
        if self.path is None:
            return None
        st = self.path.stat()
        return st.st_ino, st.st_mtime_ns

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        active, keys = read_key_file(path)
        return cls(active, keys, path)

    def refresh(self) -> None:
        """Re-read the key file if it changed since it was read."""
        if self.path is None:
            return
        try:
            stamp = self._file_stamp()
        except OSError:
            return
        if stamp != self._stamp:
            with self._lock:
                active, keys = read_key_file(self.path)
                self.active_id, self.keys, self._stamp = active, keys, stamp

    def active(self) -> tuple[str, bytes]:
        """The active key id and its key, read together after picking up a changed key file.

        Never read `active_id` and a key separately to wrap: a refresh between the two (`keys rotate` in
        another process) would label data sealed under the new key with the old id.
        """
        self.refresh()
        with self._lock:
            return self.active_id, self.keys[self.active_id]

    def key(self, kid: str) -> bytes:
        if kid not in self.keys:
            self.refresh()
        try:
            return self.keys[kid]
        except KeyError:
            raise UnknownMasterKey(
                f"master key {kid!r} is not in the key ring; add it (REFERRAL_API_MASTER_KEY or the key file)"
            ) from None

    def add_active(self, kid: str, key: bytes) -> None:
        """Add a new key and make it active; written to the key file when there is one."""
        if self.path is None:
            raise ConfigError(
                "the master keys come from REFERRAL_API_MASTER_KEY: put the new key first in it, restart, "
                "then run `referral-api keys rotate --no-new-key`"
            )
        with self._lock:
            _, keys = read_key_file(self.path)
            keys[kid] = key
            write_key_file(self.path, kid, keys)
            self.active_id, self.keys, self._stamp = kid, keys, self._file_stamp()


def _say(message: str) -> None:
    print(f"referral-api: {message}", file=sys.stderr)  # the start must say so on stderr


def load_key_ring(*, master_key: str, master_key_file: str, instance_path: Path, production: bool) -> KeyRing:
    """The master key ring from the environment, the key file, or (development) a generated file."""
    if master_key:
        active, keys = parse_master_keys(master_key)
        return KeyRing(active, keys)
    if master_key_file:
        path = Path(master_key_file)
        if production and path.exists() and path.stat().st_mode & 0o077:
            raise ConfigError(
                f"REFERRAL_API_MASTER_KEY_FILE: {path} is readable by others; chmod 600 it"
            )
        return KeyRing.from_file(path)
    if production:
        raise ConfigError("REFERRAL_API_MASTER_KEY or REFERRAL_API_MASTER_KEY_FILE must be set in production")
    path = instance_path / "keys" / "master_keys.json"
    if not path.exists():
        kid = new_key_id()
        write_key_file(path, kid, {kid: secrets.token_bytes(KEY_BYTES)})
        _say(f"development: generated a master key ring at {path} (never use it in production)")
    return KeyRing.from_file(path)


def load_secret_key(*, value: str, name: str, instance_path: Path, filename: str, production: bool) -> bytes:
    """A 32-byte key from a setting, or (development) from a file generated in the instance folder."""
    if value:
        return decode_key(name, value)
    if production:
        raise ConfigError(f"{name} must be set in production")
    path = instance_path / "keys" / filename
    if not path.exists():
        write_secret_file(path, encode_key(secrets.token_bytes(KEY_BYTES)))
        _say(f"development: generated {name} at {path} (never use it in production)")
    return decode_key(f"{name} (from {path})", path.read_text(encoding="utf-8"))
