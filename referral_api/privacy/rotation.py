"""Master key rotation: re-wrap every data key under the active master key, in batches.

Each batch is its own short transaction, so the service keeps serving and an interrupted run
resumes where it stopped: rows still under another key id are exactly what is left to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ..progress import Progress
from .context import Privacy
from .keystore import unwrap, wrap
from .models import DataKey


@dataclass
class RotationResult:
    active_key_id: str
    rewrapped: int
    batches: int
    remaining: int


def remaining(session: Session, active_id: str) -> int:
    return session.scalar(
        sa.select(sa.func.count()).select_from(DataKey)
        .where(DataKey.master_key_id.is_not(None), DataKey.master_key_id != active_id)
    ) or 0


def counts_by_master_key(session: Session) -> dict[str, int]:
    rows = session.execute(sa.select(DataKey.master_key_id, sa.func.count()).group_by(DataKey.master_key_id))
    return {kid or "(erased)": n for kid, n in rows}


def rewrap_all(privacy: Privacy, sessions: sessionmaker[Session], *, batch_size: int = 500,
               max_batches: int | None = None, progress: Progress | None = None) -> RotationResult:
    """Re-wrap data keys not under the active key until none is left (or `max_batches` ran).

    The active key is read (id and key together) for each batch: should another `keys rotate` make a
    newer key active meanwhile, the following batches re-wrap to that one, and every row is labelled
    with the id of the key that really sealed it.
    """
    keyring = privacy.keyring
    done = batches = 0
    progress = progress or Progress()
    with sessions() as session:
        progress.start(remaining(session, keyring.active()[0]))
    while max_batches is None or batches < max_batches:
        active = keyring.active()
        with sessions() as session:
            query = (
                sa.select(DataKey)
                .where(DataKey.master_key_id.is_not(None), DataKey.master_key_id != active[0])
                .order_by(DataKey.id)
                .limit(batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                # Two rotations at once, or a concurrent shred, skip each other's rows instead of waiting.
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            if not rows:
                break
            for row in rows:
                raw = unwrap(keyring, row.id, row.wrapped_key, row.master_key_id)
                row.wrapped_key, row.master_key_id = wrap(keyring, row.id, raw, active)
            session.commit()
        done += len(rows)
        batches += 1
        progress.advance(len(rows))
    active_id = keyring.active()[0]
    with sessions() as session:
        left = remaining(session, active_id)
    return RotationResult(active_key_id=active_id, rewrapped=done, batches=batches, remaining=left)
