"""The cases board: how many cases stand at each stage, and how many of them are on hold."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import Actor
from .models import Case
from .stages import Stage
from .visibility import visible_to


def stage_counts(session: Session, actor: Actor) -> dict[Stage, tuple[int, int]]:
    """Per stage, (cases, of which on hold), over the cases the caller may see; nothing personal."""
    rows = session.execute(
        sa.select(Case.stage, sa.func.count(), sa.func.count().filter(Case.on_hold.is_(True)))
        .where(visible_to(actor))
        .group_by(Case.stage)
    ).all()
    found = {Stage(stage): (int(n), int(held)) for stage, n, held in rows}
    return {stage: found.get(stage, (0, 0)) for stage in Stage}
