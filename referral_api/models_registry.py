"""Imports every models module so that Base.metadata knows every table (Alembic, tests, create_all)."""

from .auth import models as auth_models  # noqa: F401
from .organisations import models as organisations_models  # noqa: F401
