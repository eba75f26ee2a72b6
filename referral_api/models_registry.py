"""Imports every models module so that Base.metadata knows every table (Alembic, tests, create_all)."""

from .organisations import models as organisations_models  # noqa: F401
