"""The referral state machine of DOMAIN.md (Referral states) as one table of allowed moves."""

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


class Actor(StrEnum):
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
    by: Actor


_S = ReferralStatus
_REVIEWABLE = frozenset({_S.SUBMITTED, _S.UNDER_REVIEW})
MOVES: dict[ReferralAction, Move] = {
    m.action: m
    for m in (
        Move(ReferralAction.REVIEW, frozenset({_S.SUBMITTED}), _S.UNDER_REVIEW, Actor.COORDINATOR),
        Move(ReferralAction.ACCEPT, _REVIEWABLE, _S.ACCEPTED, Actor.COORDINATOR),
        Move(ReferralAction.REJECT, _REVIEWABLE, _S.REJECTED, Actor.COORDINATOR),
        Move(ReferralAction.REQUEST_INFORMATION, _REVIEWABLE, _S.INFORMATION_REQUESTED, Actor.COORDINATOR),
        Move(
            ReferralAction.INFORMATION,
            frozenset({_S.INFORMATION_REQUESTED, _S.SUBMITTED}),
            _S.SUBMITTED,
            Actor.SUBMITTER,
        ),
        Move(ReferralAction.WITHDRAW, OPEN, _S.WITHDRAWN, Actor.SUBMITTER),
    )
}


def allowed_actions(status: ReferralStatus) -> list[str]:
    """The moves the state allows, for the 409 answer and for clients."""
    return sorted(a.value for a, m in MOVES.items() if status in m.sources)
