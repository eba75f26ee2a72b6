"""Referrals: intake from partners, review by MGEC coordinators, consent and duplicate detection."""

from . import visibility  # noqa: F401  (registers who may see a referral, for webhooks)
