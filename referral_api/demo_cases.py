"""Demo shelters and cases at several stages, so that a first-time user sees a living system.

The people are invented; their stories follow MGEC's public accounts (women recruited for work in
Macau and Korea, a man found on a farm in Kazakhstan, a girl trafficked within Mongolia).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from .access import Actor, OrganisationRef, Role
from .auth.models import User
from .cases import care, moves, participants
from .cases.models import ServiceKind, ServiceStatus, Shelter
from .cases.stages import MOVES, ParticipantRole, Stage
from .db import get_session
from .organisations.models import Organisation
from .referrals import services as referrals
from .referrals.models import Referral
from .referrals.schemas import ReferralInSchema

DEMO_SHELTERS = [
    ("MGEC shelter, Ulaanbaatar", "Ulaanbaatar", 12),
    ("MGEC transit shelter, Zamiin-Uud", "Zamiin-Uud", 6),
]


def seed_shelters() -> dict[str, Shelter]:
    session = get_session()
    out = {}
    for name, city, capacity in DEMO_SHELTERS:
        shelter = session.scalar(sa.select(Shelter).where(Shelter.name == name))
        if shelter is None:
            shelter = Shelter(name=name, city=city, capacity=capacity)
            session.add(shelter)
        out[city] = shelter
    session.commit()
    return out


def _day(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


# (external reference, referring kind, given name, family name, identified country and city, stage)
DEMO_CASES = [
    ("MO-PSP-DEMO-01", "police", "Oyunchimeg", "Bold", "MO", "Macau", Stage.TRAVEL_DOCUMENTS),
    ("MO-PSP-DEMO-02", "police", "Sarangerel", "Dorj", "MO", "Macau", Stage.IN_TRANSIT),
    ("KZ-IOM-DEMO-03", "iom", "Ganbaatar", "Tseren", "KZ", "Almaty", Stage.REHABILITATION),
    ("KR-EMB-DEMO-04", "embassy", "Enkhjargal", "Batsukh", "KR", "Seoul", Stage.REINTEGRATION),
]
_SAMPLE = {
    "verified_on": _day(20),
    "method": "interview",
    "document_type": "emergency_travel_document",
    "issued_on": _day(15),
    "route": "air",
    "departed_on": _day(10),
    "departure_place": "Macau airport",
    "entry_point": "chinggis_khaan_airport",
    "arrived_on": _day(9),
    "placement": "shelter",
}


def _body(ref: str, kind: str, given: str, family: str, country: str, city: str) -> dict[str, Any]:
    return ReferralInSchema().load(
        {
            "source": kind,
            "external_reference": ref,
            "concern": "trafficking",
            "person": {
                "given_name": given,
                "family_name": family,
                "sex": "female",
                "nationality": "MN",
                "date_of_birth": "1998-03-14",
                "languages": ["mn"],
            },
            "situation": {
                "identified_country": country,
                "identified_city": city,
                "identified_on": _day(30),
                "exploitation_types": ["sexual"],
                "urgency": "urgent",
                "needs": ["shelter"],
            },
            "consent": {
                "given": True,
                "obtained_on": _day(29),
                "method": "written",
                "share_with": ["embassy", "iom"],
            },
        }
    )


def _system(org: Organisation) -> Actor:
    return Actor(
        OrganisationRef(org.id, org.kind.value),
        client_id="demo-seed",
        user_id=None,
        role=None,
        scopes=frozenset(),
    )


def seed_cases(
    orgs: dict[str, Organisation], coordinator_email: str, shelters: dict[str, Shelter]
) -> list[str]:
    """Referrals accepted into cases, moved along to several stages (once: skipped when they exist)."""
    session = get_session()
    user = session.scalar(sa.select(User).where(User.email == coordinator_email))
    mgec = orgs["mgec"]
    coordinator = Actor(
        OrganisationRef(mgec.id, "mgec"),
        client_id="demo-seed",
        user_id=user.id,
        role=Role.MGEC_COORDINATOR,
        scopes=frozenset(),
    )
    out = []
    for ref, kind, given, family, country, city, stage in DEMO_CASES:
        if session.scalar(sa.select(Referral.id).where(Referral.external_reference == ref)):
            continue
        referral = referrals.submit(
            session, _system(orgs[kind]), data=_body(ref, kind, given, family, country, city)
        )
        case_id = str(referrals.accept(session, coordinator, ref=str(referral.id), data={}).case_id)
        if stage is Stage.TRAVEL_DOCUMENTS:
            # The embassy issues the travel document: its officer records it in the console.
            embassy = {"organisation_id": orgs["embassy"].id, "role": ParticipantRole.EMBASSY}
            participants.add_participant(session, coordinator, case_id, embassy)
        current = Stage.VERIFICATION
        while current is not stage:
            target = Stage(list(Stage)[list(Stage).index(current) + 1])
            details = {k: _SAMPLE[k] for k in MOVES[(current, target)].details().fields}
            moves.transition(session, coordinator, case_id, {"to": target, "details": details})
            current = target
        if stage is Stage.REHABILITATION:
            care.add_service(
                session,
                coordinator,
                case_id,
                {
                    "kind": ServiceKind.SHELTER,
                    "shelter_id": shelters["Ulaanbaatar"].id,
                    "status": ServiceStatus.IN_PROGRESS,
                    "starts_on": date.fromisoformat(_SAMPLE["arrived_on"]),
                    "note": "Room 3.",
                },
            )
        out.append(case_id)
    return out
