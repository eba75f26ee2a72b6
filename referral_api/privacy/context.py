"""The keys of the running service and where a session finds them (every part of privacy/ reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

from ..config import Settings
from .blind_index import BlindIndexer
from .keys import KeyRing, load_key_ring, load_secret_key
from .keystore import KeyStore

EXTENSION = "referral_api.privacy"
SESSION_INFO = "referral_api.privacy"


@dataclass
class Privacy:
    """The keys of one running service: master key ring, key store, index key, audit signing key."""

    keyring: KeyRing
    keystore: KeyStore
    index_key: bytes
    audit_signing_key: bytes | None = None

    @property
    def indexer(self) -> BlindIndexer:
        return BlindIndexer(self.index_key)


def from_settings(settings: Settings, instance_path: Path) -> Privacy:
    """Load (or, in development, generate) every key; production without keys is a ConfigError."""
    prod = settings.is_production
    return Privacy(
        keyring=load_key_ring(master_key=settings.master_key, master_key_file=settings.master_key_file,
                              instance_path=instance_path, production=prod),
        keystore=KeyStore.from_url(settings.keystore_url),
        index_key=load_secret_key(value=settings.index_key, name="REFERRAL_API_INDEX_KEY",
                                  instance_path=instance_path, filename="index.key", production=prod),
        audit_signing_key=None if prod and not settings.audit_signing_key else load_secret_key(
            value=settings.audit_signing_key, name="REFERRAL_API_AUDIT_SIGNING_KEY",
            instance_path=instance_path, filename="audit_signing.key", production=prod),
    )


def init_app(app: Flask, settings: Settings) -> Privacy:
    privacy = from_settings(settings, Path(app.instance_path))
    app.extensions[EXTENSION] = privacy
    # Sessions of the app's own factory carry its keys, in or out of an app context (tools, tests).
    from ..db import database

    database(app).sessionmaker.configure(info={SESSION_INFO: privacy})
    return privacy


def get_privacy(session: Session | None = None) -> Privacy:
    """The keys for `session`: its own (session.info, for tools and tests) or the current app's."""
    if session is not None and SESSION_INFO in session.info:
        return session.info[SESSION_INFO]
    if has_app_context() and EXTENSION in current_app.extensions:
        return current_app.extensions[EXTENSION]
    raise RuntimeError("no privacy keys: run inside the app, or set session.info['referral_api.privacy']")
