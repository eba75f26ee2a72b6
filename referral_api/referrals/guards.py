"""Who may make a move on a referral, beyond seeing it: a coordinator, four eyes, the submitter."""

from __future__ import annotations

from ..access import Actor
from ..errors import Forbidden
from .models import Referral
from .queue import submitted_by_actor
from .visibility import Audience, is_submitter


def coordinator(actor: Actor, seen: Audience) -> None:
    """Only a person of MGEC (staff view) may review and decide."""
    if seen is not Audience.STAFF or not actor.is_person:
        raise Forbidden("Only an MGEC coordinator may make this move.")


def four_eyes(actor: Actor, referral: Referral) -> None:
    """A referral is decided by someone other than the one who submitted it."""
    if submitted_by_actor(actor, referral):
        raise Forbidden(
            "Four eyes: a referral is decided by a coordinator other than the one who submitted it."
        )


def submitter(actor: Actor, referral: Referral) -> None:
    """Only the submitting organisation answers questions or withdraws."""
    if not is_submitter(actor, referral):
        raise Forbidden("Only the organisation that submitted the referral may make this move.")
