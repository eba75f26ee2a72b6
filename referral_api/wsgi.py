"""The WSGI entry point for gunicorn: `gunicorn referral_api.wsgi:app`."""

from . import create_app

app = create_app()
