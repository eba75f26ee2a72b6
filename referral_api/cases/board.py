"""The cases board: how many cases stand at each stage, how many are on hold; the list, overdue first."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import Actor
from .models import Case
from .services import list_for
from .stages import ParticipantRole, Stage
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


Listed = list[tuple[Case, Any, ParticipantRole | None]]


def overdue_first(session: Session, actor: Actor, args: dict[str, Any]) -> tuple[Listed, Listed, str | None]:
    """The case list as the console shows it: every overdue case first (newest first, only on the first
    page), then one keyset page of the others in the list's usual order, with its cursor."""
    overdue: Listed = []
    if not args.get("cursor"):
        cursor: str | None = None
        while True:  # all of them, page by page: an overdue case is never pushed off the first page
            page, cursor = list_for(session, actor, {**args, "overdue": True, "cursor": cursor})
            overdue += page
            if cursor is None:
                break
    rest, next_cursor = list_for(session, actor, {**args, "overdue": False})
    return overdue, rest, next_cursor
