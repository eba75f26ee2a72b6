"""The stage machine of docs/domain.md (Case: repatriation and reintegration) as one table of allowed moves.

Each row: from which stage, to which, what kind of move it is, who besides MGEC staff may make it
(by participant role), and the `details` schema the move records. MGEC staff may make any move but
the reopening of a closed case, which is an MGEC admin's alone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum

import marshmallow as ma

from ..validators import StrictSchema, enum_field, not_in_future


class Stage(StrEnum):
    VERIFICATION = "verification"
    TRAVEL_DOCUMENTS = "travel_documents"
    TRAVEL_PLANNING = "travel_planning"
    IN_TRANSIT = "in_transit"
    ARRIVED = "arrived"
    REHABILITATION = "rehabilitation"
    REINTEGRATION = "reintegration"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"


class ParticipantRole(StrEnum):
    REFERRER = "referrer"
    EMBASSY = "embassy"
    IOM = "iom"
    SERVICE_PROVIDER = "service_provider"


class MoveKind(StrEnum):
    FORWARD = "forward"
    SKIP = "skip"
    BACK = "back"
    CLOSE = "close"
    REOPEN = "reopen"


class VerificationMethod(StrEnum):
    PASSPORT = "passport"
    NATIONAL_ID = "national_id"
    INTERVIEW = "interview"
    FAMILY = "family"
    OTHER = "other"


class DocumentType(StrEnum):
    PASSPORT = "passport"
    EMERGENCY_TRAVEL_DOCUMENT = "emergency_travel_document"


class Route(StrEnum):
    AIR = "air"
    LAND = "land"


class EntryPoint(StrEnum):
    CHINGGIS_KHAAN_AIRPORT = "chinggis_khaan_airport"
    ZAMIIN_UUD = "zamiin_uud"
    OTHER = "other"


class Placement(StrEnum):
    SHELTER = "shelter"
    FAMILY = "family"
    INDEPENDENT = "independent"


class ClosureReason(StrEnum):
    REINTEGRATED = "reintegrated"
    DECLINED_ASSISTANCE = "declined_assistance"
    LOST_CONTACT = "lost_contact"
    REMAINED_ABROAD = "remained_abroad"
    TRANSFERRED = "transferred"
    DECEASED = "deceased"
    OTHER = "other"


ORDER: tuple[Stage, ...] = tuple(Stage)
OPEN: tuple[Stage, ...] = ORDER[:-1]
# Details that may hold personal data: stored encrypted under the case's data key, never in plain.
PERSONAL_DETAILS = frozenset({"departure_place"})
# Plain details about the person's life that only MGEC staff read (as the participant view leaves out
# `closure_reason`): why the case closed (`deceased`) and where the person lives (`placement`). A
# participant's timeline leaves them out, and no webhook carries them.
STAFF_ONLY_DETAILS = frozenset({"closure_reason", "placement"})


def _day(**kw: object) -> ma.fields.Date:
    return ma.fields.Date(required=True, validate=not_in_future, **kw)


def _enum(enum: type[StrEnum]) -> ma.fields.Enum:
    return enum_field(enum, required=True)


class _Details(StrictSchema):
    """The details of one move; unknown details are refused."""


class NoDetails(_Details):
    """A move that records nothing but who, when and an optional note."""


class VerifiedDetails(_Details):
    verified_on = _day()
    method = _enum(VerificationMethod)


class TravelDocumentDetails(_Details):
    document_type = _enum(DocumentType)
    issued_on = _day()


class VerifiedAndDocumentDetails(VerifiedDetails, TravelDocumentDetails):
    """verification → travel_planning: the passport is valid, so both skipped moves' details at once."""


class DepartureDetails(_Details):
    route = _enum(Route)
    departed_on = _day()
    departure_place = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))


class ArrivalDetails(_Details):
    entry_point = _enum(EntryPoint)
    arrived_on = _day()


class PlacementDetails(_Details):
    placement = _enum(Placement)


class ClosureDetails(_Details):
    closure_reason = _enum(ClosureReason)


@dataclass(frozen=True)
class Move:
    source: Stage
    target: Stage
    kind: MoveKind
    by: frozenset[ParticipantRole]  # participant roles that may make it, besides MGEC staff
    details: type[ma.Schema]
    needs_note: bool = False  # a step back and a reopening say why


_MGEC: frozenset[ParticipantRole] = frozenset()
_EMBASSY = frozenset({ParticipantRole.EMBASSY})
_TRAVEL = frozenset({ParticipantRole.EMBASSY, ParticipantRole.IOM})

# Moves into a stage record the outcome of the work just finished (docs/domain.md's stage table).
_FORWARD: dict[Stage, tuple[frozenset[ParticipantRole], type[ma.Schema]]] = {
    Stage.TRAVEL_DOCUMENTS: (_EMBASSY, VerifiedDetails),
    Stage.TRAVEL_PLANNING: (_EMBASSY, TravelDocumentDetails),
    Stage.IN_TRANSIT: (_TRAVEL, DepartureDetails),
    Stage.ARRIVED: (_MGEC, ArrivalDetails),
    Stage.REHABILITATION: (_MGEC, PlacementDetails),
    Stage.REINTEGRATION: (_MGEC, NoDetails),
    Stage.FOLLOW_UP: (_MGEC, NoDetails),
}


def _table() -> dict[tuple[Stage, Stage], Move]:
    moves: list[Move] = []
    for here, there in itertools.pairwise(OPEN):
        by, details = _FORWARD[there]
        moves.append(Move(here, there, MoveKind.FORWARD, by, details))
        moves.append(Move(there, here, MoveKind.BACK, _MGEC, NoDetails, needs_note=True))
    moves += [
        Move(Stage.VERIFICATION, Stage.TRAVEL_PLANNING, MoveKind.SKIP, _EMBASSY, VerifiedAndDocumentDetails),
        Move(Stage.ARRIVED, Stage.REINTEGRATION, MoveKind.SKIP, _MGEC, NoDetails),  # rehabilitation declined
    ]
    moves += [Move(s, Stage.CLOSED, MoveKind.CLOSE, _MGEC, ClosureDetails) for s in OPEN]
    moves += [Move(Stage.CLOSED, s, MoveKind.REOPEN, _MGEC, NoDetails, needs_note=True) for s in OPEN]
    return {(m.source, m.target): m for m in moves}


MOVES: dict[tuple[Stage, Stage], Move] = _table()


def allowed_targets(stage: Stage) -> list[str]:
    """The stages a case may move to from `stage`, in stage order (the 409 answer names them)."""
    return [t.value for t in ORDER if (stage, t) in MOVES]


# The key dates of the status view, filled from the details of the move that records them.
KEY_DATE_OF_DETAIL = {
    "issued_on": "travel_document_issued_on",
    "departed_on": "departed_on",
    "arrived_on": "arrived_on",
}

# The key date the move into a stage records: a step back out of that stage clears it (the person has
# not arrived after arrived → in_transit; the timeline keeps the move that recorded it).
KEY_DATE_OF_STAGE = {
    Stage.TRAVEL_PLANNING: "travel_document_issued_on",
    Stage.IN_TRANSIT: "departed_on",
    Stage.ARRIVED: "arrived_on",
}

# The clock of a stage (deadlines/) starts when the case moved into it, except where the move records
# the day the wait really began: the journey home is late 3 days after `departed_on`.
CLOCK_FROM_DETAIL = {Stage.IN_TRANSIT: "departed_on"}
