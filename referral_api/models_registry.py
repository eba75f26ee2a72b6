"""Imports every models module so that Base.metadata knows every table (Alembic, tests, create_all)."""

from . import events, idempotency, references  # noqa: F401
from .audit import models as audit_models  # noqa: F401
from .auth import models as auth_models  # noqa: F401
from .cases import models as cases_models  # noqa: F401
from .console import models as console_models  # noqa: F401
from .deadlines import models as deadlines_models  # noqa: F401
from .documents import models as documents_models  # noqa: F401
from .organisations import models as organisations_models  # noqa: F401
from .privacy import models as privacy_models  # noqa: F401
from .referrals import models as referrals_models  # noqa: F401
from .webhooks import models as webhooks_models  # noqa: F401
