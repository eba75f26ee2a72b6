"""Words, not codes: every stored value a person reads, by vocabulary, in the chosen language."""

from __future__ import annotations

from enum import Enum
from typing import Any

from flask_babel import lazy_gettext as _l

WORDS: dict[str, dict[str, Any]] = {
    "referral_status": {
        "submitted": _l("Submitted"), "under_review": _l("Under review"),
        "information_requested": _l("Information requested"), "accepted": _l("Accepted"),
        "rejected": _l("Rejected"), "withdrawn": _l("Withdrawn"),
    },
    "urgency": {"routine": _l("Routine"), "urgent": _l("Urgent"), "emergency": _l("Emergency")},
    "source": {
        "police": _l("Police"), "embassy": _l("Embassy"), "iom": _l("IOM"), "ngo": _l("NGO"),
        "hotline": _l("Hotline"), "self": _l("The person themself"), "other": _l("Other"),
    },
    "concern": {"trafficking": _l("Trafficking in persons"), "sexual_violence": _l("Sexual violence"),
                "other": _l("Other")},
    "sex": {"female": _l("Female"), "male": _l("Male"), "other": _l("Other"), "unknown": _l("Unknown")},
    "exploitation_type": {
        "sexual": _l("Sexual exploitation"), "forced_labour": _l("Forced labour"),
        "forced_marriage": _l("Forced marriage"), "domestic_servitude": _l("Domestic servitude"),
        "begging": _l("Forced begging"), "criminal_activity": _l("Forced criminal activity"),
        "organ_removal": _l("Organ removal"), "other": _l("Other"),
    },
    "need": {
        "shelter": _l("Shelter"), "medical": _l("Medical care"), "psychosocial": _l("Psychosocial support"),
        "legal_aid": _l("Legal aid"), "travel_documents": _l("Travel documents"),
        "interpretation": _l("Interpretation"), "family_tracing": _l("Family tracing"),
    },
    "safety_risk": {"low": _l("Low"), "medium": _l("Medium"), "high": _l("High")},
    "contact_family": {"yes": _l("Yes"), "no": _l("No"), "unknown": _l("Unknown")},
    "consent_method": {"written": _l("Written"), "verbal": _l("Verbal"),
                       "guardian": _l("By the legal guardian")},
    "legal_basis": {"vital_interest": _l("Vital interest of the person"),
                    "child_protection": _l("Child protection"), "legal_obligation": _l("Legal obligation")},
    "reject_reason": {
        "not_trafficking": _l("Not trafficking in persons"), "not_mongolian": _l("Not a Mongolian citizen"),
        "duplicate": _l("Duplicate of another referral"),
        "insufficient_information": _l("Not enough information"),
        "declined_by_person": _l("The person declined help"), "outside_mandate": _l("Outside MGEC's mandate"),
        "other": _l("Other"),
    },
    "organisation_kind": {
        "mgec": _l("MGEC"), "police": _l("Police"), "embassy": _l("Embassy or consulate"), "iom": _l("IOM"),
        "ngo": _l("NGO"), "government": _l("Government agency"), "service_provider": _l("Service provider"),
    },
    "stage": {
        "verification": _l("Verification"), "travel_documents": _l("Travel documents"),
        "travel_planning": _l("Travel planning"), "in_transit": _l("In transit"), "arrived": _l("Arrived"),
        "rehabilitation": _l("Rehabilitation"), "reintegration": _l("Reintegration"),
        "follow_up": _l("Follow-up"), "closed": _l("Closed"),
    },
    "participant_role": {"referrer": _l("Referring organisation"), "embassy": _l("Embassy"),
                         "iom": _l("IOM"), "service_provider": _l("Service provider")},
    "method": {"passport": _l("Passport"), "national_id": _l("National ID card"),
               "interview": _l("Interview"), "family": _l("Through the family"), "other": _l("Other")},
    "document_type": {"passport": _l("Passport"),
                      "emergency_travel_document": _l("Emergency travel document")},
    "route": {"air": _l("By air"), "land": _l("By land")},
    "entry_point": {"chinggis_khaan_airport": _l("Chinggis Khaan International Airport"),
                    "zamiin_uud": _l("Zamiin-Uud border crossing"), "other": _l("Other")},
    "placement": {"shelter": _l("Shelter"), "family": _l("With the family"),
                  "independent": _l("Independent living")},
    "closure_reason": {
        "reintegrated": _l("Reintegrated"), "declined_assistance": _l("Declined assistance"),
        "lost_contact": _l("Lost contact"), "remained_abroad": _l("Remained abroad"),
        "transferred": _l("Transferred to another organisation"), "deceased": _l("Deceased"),
        "other": _l("Other"),
    },
    "service_kind": {
        "shelter": _l("Shelter"), "medical": _l("Medical care"), "psychosocial": _l("Psychosocial support"),
        "legal_aid": _l("Legal aid"), "vocational_training": _l("Vocational training"),
        "job_placement": _l("Job placement"), "small_business": _l("Small business support"),
        "housing": _l("Housing"), "education": _l("Education"), "family_mediation": _l("Family mediation"),
        "other": _l("Other"),
    },
    "service_status": {"planned": _l("Planned"), "in_progress": _l("In progress"),
                       "completed": _l("Completed"), "declined": _l("Declined")},
    "event_kind": {"opened": _l("Case opened"), "moved": _l("Moved"), "held": _l("Put on hold"),
                   "resumed": _l("Resumed")},
    "match_reason": {"passport": _l("Same passport number"), "national_id": _l("Same national ID"),
                     "name_birth_year": _l("Same name and year of birth"),
                     "date_of_birth": _l("Same date of birth")},
    "age_band": {"0-11": _l("0 to 11"), "12-17": _l("12 to 17"), "18-25": _l("18 to 25"),
                 "26-35": _l("26 to 35"), "36-49": _l("36 to 49"), "50+": _l("50 and over")},
    "province": {
        "arkhangai": _l("Arkhangai"), "bayan_olgii": _l("Bayan-Ölgii"), "bayankhongor": _l("Bayankhongor"),
        "bulgan": _l("Bulgan"), "darkhan_uul": _l("Darkhan-Uul"), "dornod": _l("Dornod"),
        "dornogovi": _l("Dornogovi"), "dundgovi": _l("Dundgovi"), "govi_altai": _l("Govi-Altai"),
        "govisumber": _l("Govisümber"), "khentii": _l("Khentii"), "khovd": _l("Khovd"),
        "khovsgol": _l("Khövsgöl"), "omnogovi": _l("Ömnögovi"), "orkhon": _l("Orkhon"),
        "ovorkhangai": _l("Övörkhangai"), "selenge": _l("Selenge"), "sukhbaatar": _l("Sükhbaatar"),
        "tov": _l("Töv"), "uvs": _l("Uvs"), "zavkhan": _l("Zavkhan"), "ulaanbaatar": _l("Ulaanbaatar"),
    },
    "report_group": {"year": _l("year"), "identified_country": _l("country"),
                     "exploitation_type": _l("exploitation"), "sex": _l("sex"), "age_band": _l("age group"),
                     "source": _l("source"), "entry_point": _l("entry point")},
    "field": {
        "family_name": _l("Family name"), "given_name": _l("Given name"),
        "names_cyrillic": _l("Name in Cyrillic"), "aliases": _l("Other names"), "sex": _l("Sex"),
        "date_of_birth": _l("Date of birth"), "estimated_age": _l("Estimated age"),
        "nationality": _l("Nationality"), "passport_number": _l("Passport number"),
        "national_id": _l("National ID number"), "phone": _l("Phone"), "home_province": _l("Home province"),
        "languages": _l("Languages"), "current_location": _l("Where the person is now"),
        "identified_country": _l("Country where identified"), "identified_city": _l("City"),
        "identified_on": _l("Identified on"), "exploitation_types": _l("Exploitation"),
        "narrative": _l("What happened"), "urgency": _l("Urgency"), "needs": _l("Needs"),
        "safety_risk": _l("Safety risk"), "contact_family": _l("May the family be contacted"),
        "verified_on": _l("Verified on"), "method": _l("How identity was verified"),
        "document_type": _l("Travel document"), "issued_on": _l("Issued on"), "route": _l("Route"),
        "departed_on": _l("Departed on"), "departure_place": _l("Departed from"),
        "entry_point": _l("Entry point"), "arrived_on": _l("Arrived on"), "placement": _l("Placement"),
        "closure_reason": _l("Why the case is closed"),
    },
}


def word(vocabulary: str, value: Any) -> str:
    """The word for `value` of `vocabulary`; an unknown value is shown as it is (never hidden)."""
    if value is None:
        return ""
    key = value.value if isinstance(value, Enum) else str(value)
    found = WORDS.get(vocabulary, {}).get(key)
    return str(found) if found is not None else key


def words(vocabulary: str, values: Any) -> str:
    return ", ".join(word(vocabulary, v) for v in values or [])
