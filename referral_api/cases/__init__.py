"""Cases: one person's way home and back into life in Mongolia."""

from . import visibility  # noqa: F401  (registers who may see a case or a service, for webhooks)
