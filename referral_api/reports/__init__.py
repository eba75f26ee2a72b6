"""Anonymised reports: aggregates of the plain (non-personal) columns of referrals and cases.

This part sits above referrals/ and cases/ (docs/architecture.md) and reads their tables; it never decrypts.
"""
