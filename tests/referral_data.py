"""Realistic referral bodies: Mongolian women and men found abroad and at home (see mgec-background)."""

from __future__ import annotations

import copy
from datetime import date, timedelta


def referral_body(**overrides) -> dict:
    body = {
        "source": "police",
        "external_reference": "MO-PSP-2026-0412",
        "concern": "trafficking",
        "person": {
            "family_name": "Dorj",
            "given_name": "Batbayar",
            "names_cyrillic": "Доржийн Батбаяр",
            "aliases": ["Bat"],
            "sex": "female",
            "date_of_birth": "1999-04-12",
            "nationality": "MN",
            "passport_number": "E1234567",
            "national_id": "УБ99041212",
            "phone": "+853 6612 3456",
            "home_province": "dornogovi",
            "languages": ["mn", "zh"],
            "current_location": "Police shelter, Macau",
        },
        "situation": {
            "identified_country": "MO",
            "identified_city": "Macau",
            "identified_on": (date.today() - timedelta(days=3)).isoformat(),
            "exploitation_types": ["sexual"],
            "narrative": "Recruited with a promise of hotel work in Macau.",
            "urgency": "urgent",
            "needs": ["shelter", "travel_documents", "psychosocial"],
            "safety_risk": "high",
            "contact_family": "no",
        },
        "consent": {
            "given": True,
            "obtained_on": (date.today() - timedelta(days=2)).isoformat(),
            "obtained_by": "Officer Leong",
            "method": "written",
            "language": "mn",
            "share_with": ["embassy", "iom"],
        },
    }
    body = copy.deepcopy(body)
    for path, value in overrides.items():
        target = body
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]
        if value is _DELETE:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


_DELETE = object()
DELETE = _DELETE
