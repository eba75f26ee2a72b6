"""Anonymised reports: aggregates of the plain (non-personal) columns of referrals and cases.

This part sits above referrals/ and cases/ (ARCHITECTURE.md) and reads their tables; it never decrypts.
"""
