"""`referral-api keys rotate|status|init`.

This command-line edge records its audit event itself, as an api.py module would (privacy/ sits
below audit/; its services never import it).
"""

from __future__ import annotations

import secrets

import click

from .audit import AuditAction, record
from .commands import domain_command, emit, json_option
from .db import database, get_session
from .errors import DomainError
from .privacy import get_privacy
from .privacy.keys import KEY_BYTES, new_key_id
from .privacy.rotation import counts_by_master_key, rewrap_all
from .progress import for_command


@click.group("keys")
def keys_group() -> None:
    """Master keys and data keys (envelope encryption)."""


@keys_group.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000),
              help="Data keys re-wrapped per transaction.")
@click.option("--no-new-key", is_flag=True,
              help="Do not add a key: re-wrap to the active one (resumes an interrupted rotation; the way "
                   "with REFERRAL_API_MASTER_KEY, where you put the new key first and restart beforehand).")
@json_option
@domain_command
def rotate(batch_size: int, no_new_key: bool, as_json: bool) -> None:
    """Make a new master key active and re-wrap every data key under it, in batches, while serving."""
    privacy = get_privacy()
    keyring = privacy.keyring
    previous = keyring.active()[0]
    if not no_new_key:
        if keyring.path is None:
            raise DomainError(
                "The master keys come from REFERRAL_API_MASTER_KEY: put the new key first in it "
                "(kid:base64key,old-kid:base64key), restart the service, then run `keys rotate --no-new-key`."
            )
        keyring.add_active(new_key_id(), secrets.token_bytes(KEY_BYTES))
    sessions = privacy.keystore.sessionmaker_for(database().sessionmaker)
    with for_command("keys rotate", as_json=as_json, unit="data keys") as progress:
        result = rewrap_all(privacy, sessions, batch_size=batch_size, progress=progress)
    session = get_session()
    record(session, actor=None, action=AuditAction.PRIVACY_KEY_ROTATE, resource_type="master_key",
           resource_id=result.active_key_id,
           details={"previous_key_id": previous, "rewrapped": result.rewrapped, "batches": result.batches})
    session.commit()
    payload = {"active_key_id": result.active_key_id, "previous_key_id": previous,
               "rewrapped": result.rewrapped, "batches": result.batches, "remaining": result.remaining}
    emit(payload, as_json=as_json,
         text=f"active key {result.active_key_id}: re-wrapped {result.rewrapped} data keys "
              f"in {result.batches} batches, {result.remaining} left")
    if result.remaining:
        raise SystemExit(1)


@keys_group.command("status")
@json_option
@domain_command
def status(as_json: bool) -> None:
    """The active master key and how many data keys each master key wraps."""
    privacy = get_privacy()
    sessions = privacy.keystore.sessionmaker_for(database().sessionmaker)
    with sessions() as session:
        counts = counts_by_master_key(session)
    active_id, _key = privacy.keyring.active()
    payload = {"active_key_id": active_id, "key_ids": sorted(privacy.keyring.keys),
               "data_keys": counts, "separate_key_store": privacy.keystore.is_separate}
    lines = [f"active: {payload['active_key_id']}"]
    text = "\n".join(lines + [f"{k}: {n}" for k, n in sorted(counts.items())])
    emit(payload, as_json=as_json, text=text)


@keys_group.command("init")
@domain_command
def init() -> None:
    """Create the data_keys table in the separate key store named by KEYSTORE_URL."""
    privacy = get_privacy()
    if not privacy.keystore.is_separate:
        raise DomainError("KEYSTORE_URL is not set: the data keys live in the main database (`db upgrade`).")
    privacy.keystore.init_schema()
    click.echo("key store ready", err=True)
