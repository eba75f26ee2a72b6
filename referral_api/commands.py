"""What every part's `cli.py` uses: run in the app, print JSON or a line, `--json`, `--now`."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import with_appcontext

from .errors import DomainError


def emit(payload: Any, *, as_json: bool, text: str | None = None) -> None:
    """Print one JSON object with --json, or a human line otherwise."""
    if as_json:
        click.echo(json.dumps(payload, default=str, sort_keys=True))
    else:
        click.echo(text if text is not None else json.dumps(payload, default=str, indent=2))


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(fn)


def parse_now(text: str | None, *, param_hint: str = "--now") -> datetime:
    """The `--now` of a command: an ISO date or time (UTC when it names no zone), else the real now;
    in UTC (the clocks a command compares it with are)."""
    try:
        now = datetime.fromisoformat(text) if text else datetime.now(UTC)
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    except (ValueError, OverflowError):
        raise click.BadParameter("not an ISO date or time", param_hint=param_hint) from None


class CommandError(click.ClickException):
    """A DomainError as the command line reports it: its message, and with --json its code and fields."""

    def __init__(self, exc: DomainError) -> None:
        detail = exc.detail
        if exc.errors:
            detail += " " + "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())
        super().__init__(detail)
        self.code = exc.code
        self.errors = exc.errors


def domain_command(fn: Callable) -> Callable:
    """Run in an app context; a DomainError ends the command with its message and exit status 1."""

    @functools.wraps(fn)
    @with_appcontext
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            raise CommandError(exc) from None

    return wrapper
