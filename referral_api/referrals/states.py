"""The referral state machine of docs/domain.md (Referral states) as one table of allowed moves."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReferralStatus(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    INFORMATION_REQUESTED = "information_requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ReferralAction(StrEnum):
    REVIEW = "review"
    ACCEPT = "accept"
    REJECT = "reject"
    REQUEST_INFORMATION = "request_information"
    INFORMATION = "information"
    WITHDRAW = "withdraw"


class Mover(StrEnum):
    """Who may make a move: an MGEC coordinator (a person with referrals:review) or the submitter."""

    COORDINATOR = "coordinator"
    SUBMITTER = "submitter"


FINAL = frozenset({ReferralStatus.ACCEPTED, ReferralStatus.REJECTED, ReferralStatus.WITHDRAWN})
OPEN = frozenset(ReferralStatus) - FINAL


@dataclass(frozen=True)
class Move:
    action: ReferralAction
    sources: frozenset[ReferralStatus]
    target: ReferralStatus
    by: Mover


_REVIEWABLE = frozenset({ReferralStatus.SUBMITTED, ReferralStatus.UNDER_REVIEW})
MOVES: dict[ReferralAction, Move] = {
    m.action: m
    for m in (
        Move(
            ReferralAction.REVIEW,
            frozenset({ReferralStatus.SUBMITTED}),
            ReferralStatus.UNDER_REVIEW,
            Mover.COORDINATOR,
        ),
        Move(ReferralAction.ACCEPT, _REVIEWABLE, ReferralStatus.ACCEPTED, Mover.COORDINATOR),
        Move(ReferralAction.REJECT, _REVIEWABLE, ReferralStatus.REJECTED, Mover.COORDINATOR),
        Move(
            ReferralAction.REQUEST_INFORMATION,
            _REVIEWABLE,
            ReferralStatus.INFORMATION_REQUESTED,
            Mover.COORDINATOR,
        ),
        Move(
            ReferralAction.INFORMATION,
            frozenset({ReferralStatus.INFORMATION_REQUESTED, ReferralStatus.SUBMITTED}),
            ReferralStatus.SUBMITTED,
            Mover.SUBMITTER,
        ),
        Move(ReferralAction.WITHDRAW, OPEN, ReferralStatus.WITHDRAWN, Mover.SUBMITTER),
    )
}


def allowed_actions(status: ReferralStatus) -> list[str]:
    """The moves the state allows, for the 409 answer and for clients."""
    return sorted(a.value for a, m in MOVES.items() if status in m.sources)
