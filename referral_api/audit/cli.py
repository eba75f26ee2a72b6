"""`referral-api audit verify|checkpoint|seal`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..commands import domain_command, emit, json_option
from ..db import get_session
from ..errors import DomainError, InvalidPayload
from ..privacy import get_privacy
from ..progress import for_command
from . import services
from .actions import AuditAction
from .checkpoints import make_checkpoint, noted_details, read_checkpoint
from .schemas import VerifyResultSchema


def _signing_key() -> bytes:
    key = get_privacy().audit_signing_key
    if key is None:
        raise DomainError(
            "REFERRAL_API_AUDIT_SIGNING_KEY is not set: no checkpoint can be signed or checked."
        )
    return key


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint from `audit checkpoint`: the log must still extend it.")
@json_option
@domain_command
def verify(checkpoint_file: str | None, as_json: bool) -> None:
    """Check the whole chain; exit 0 when intact, 1 naming the first bad event."""
    checkpoint = None
    if checkpoint_file:
        try:
            doc = json.loads(Path(checkpoint_file).read_text(encoding="utf-8"))
        except ValueError:
            raise InvalidPayload(f"{checkpoint_file} is not JSON.") from None
        checkpoint = read_checkpoint(doc, _signing_key())
    with for_command("audit verify", as_json=as_json, unit="events") as progress:
        result = services.verify(get_session(), checkpoint=checkpoint, progress=progress)
    payload = VerifyResultSchema().dump(result)
    if result.ok:
        text = f"intact: {result.checked} events, head {result.head_seq} {result.head_hash}"
        if checkpoint:
            text += f"; extends the checkpoint at event {checkpoint[0]}"
        if result.unsealed:
            text += f"; {result.unsealed} events committed since are not sealed yet"
        emit(payload, as_json=as_json, text=text)
        return
    emit(payload, as_json=as_json, text=f"BROKEN at event {result.first_bad_seq}: {result.problem}")
    raise SystemExit(1)


@audit_group.command("seal")
@json_option
@domain_command
def seal(as_json: bool) -> None:
    """Seal every committed event still unsealed into the chain (writers that found the head busy
    leave theirs to the next sealer); waits for the head's lock, a batch per transaction."""
    sealed = services.seal_pending(get_session())
    emit({"sealed": sealed}, as_json=as_json, text=f"sealed {sealed} events")


@audit_group.command("checkpoint")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the checkpoint to this file as well (store it off the database).")
@json_option
@domain_command
def checkpoint(output: str | None, as_json: bool) -> None:
    """Verify the chain, then print an Ed25519-signed statement of its head's seq and hash, as JSON.

    A broken chain is not signed: the command names the first bad event and exits 1.
    """
    key = _signing_key()
    session = get_session()
    with for_command("audit checkpoint: verifying", as_json=as_json, unit="events") as progress:
        result = services.verify(session, progress=progress)
    if not result.ok:
        raise DomainError(f"The chain is broken at event {result.first_bad_seq} ({result.problem}): "
                          "no checkpoint signed.")
    doc = make_checkpoint(session, key, verified=(result.head_seq, result.head_hash))  # what was checked
    # Noted in the chain itself (after the head it signs), so that monitoring sees when the last was made
    # and the console can check its signature (checkpoints.last_checkpoint); a signature is no secret.
    services.record(session, actor=None, action=AuditAction.AUDIT_CHECKPOINT_CREATE,
                    resource_type="audit_chain",
                    resource_id=str(doc["statement"]["seq"]),
                    details=noted_details(doc))
    session.commit()
    text = json.dumps(doc, sort_keys=True)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    click.echo(text)
