"""The enumerations of a referral (docs/domain.md, Vocabularies): stored as their values."""

from __future__ import annotations

from enum import StrEnum

# A case's consent changes take the referral's methods: one vocabulary, kept where cases (which never
# import referrals) can reach it.
from ..cases.persons import ConsentMethod  # noqa: F401  (part of this vocabulary)


class Concern(StrEnum):
    TRAFFICKING = "trafficking"
    SEXUAL_VIOLENCE = "sexual_violence"
    OTHER = "other"


class Source(StrEnum):
    POLICE = "police"
    EMBASSY = "embassy"
    IOM = "iom"
    NGO = "ngo"
    HOTLINE = "hotline"
    SELF = "self"
    OTHER = "other"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class ExploitationType(StrEnum):
    SEXUAL = "sexual"
    FORCED_LABOUR = "forced_labour"
    FORCED_MARRIAGE = "forced_marriage"
    DOMESTIC_SERVITUDE = "domestic_servitude"
    BEGGING = "begging"
    CRIMINAL_ACTIVITY = "criminal_activity"
    ORGAN_REMOVAL = "organ_removal"
    OTHER = "other"


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class Need(StrEnum):
    SHELTER = "shelter"
    MEDICAL = "medical"
    PSYCHOSOCIAL = "psychosocial"
    LEGAL_AID = "legal_aid"
    TRAVEL_DOCUMENTS = "travel_documents"
    INTERPRETATION = "interpretation"
    FAMILY_TRACING = "family_tracing"


class SafetyRisk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ContactFamily(StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class LegalBasis(StrEnum):
    VITAL_INTEREST = "vital_interest"
    CHILD_PROTECTION = "child_protection"
    LEGAL_OBLIGATION = "legal_obligation"


class RejectReason(StrEnum):
    NOT_TRAFFICKING = "not_trafficking"
    NOT_MONGOLIAN = "not_mongolian"
    DUPLICATE = "duplicate"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    DECLINED_BY_PERSON = "declined_by_person"
    OUTSIDE_MANDATE = "outside_mandate"
    OTHER = "other"


class Province(StrEnum):
    """Mongolia's 21 aimags and the capital."""

    ARKHANGAI = "arkhangai"
    BAYAN_OLGII = "bayan_olgii"
    BAYANKHONGOR = "bayankhongor"
    BULGAN = "bulgan"
    DARKHAN_UUL = "darkhan_uul"
    DORNOD = "dornod"
    DORNOGOVI = "dornogovi"
    DUNDGOVI = "dundgovi"
    GOVI_ALTAI = "govi_altai"
    GOVISUMBER = "govisumber"
    KHENTII = "khentii"
    KHOVD = "khovd"
    KHOVSGOL = "khovsgol"
    OMNOGOVI = "omnogovi"
    ORKHON = "orkhon"
    OVORKHANGAI = "ovorkhangai"
    SELENGE = "selenge"
    SUKHBAATAR = "sukhbaatar"
    TOV = "tov"
    UVS = "uvs"
    ZAVKHAN = "zavkhan"
    ULAANBAATAR = "ulaanbaatar"
