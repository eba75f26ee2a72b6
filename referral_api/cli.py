"""The `referral-api` command line: a Flask CLI group; each part adds its own commands."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext

from . import dbmigrate
from .db import database, get_session
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
    """The `--now` of a command: an ISO date or time (UTC when it names no zone), else the real now."""
    try:
        now = datetime.fromisoformat(text) if text else datetime.now(UTC)
    except ValueError:
        raise click.BadParameter("not an ISO date or time", param_hint=param_hint) from None
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def domain_command(fn: Callable) -> Callable:
    """Run in an app context; a DomainError ends the command with its message and exit status 1."""

    @functools.wraps(fn)
    @with_appcontext
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            detail = exc.detail
            if exc.errors:
                detail += " " + "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())
            raise click.ClickException(detail) from None

    return wrapper


def _create_app() -> Any:
    from . import create_app

    return create_app()


@click.group(cls=AppGroup)
@click.version_option(package_name="referral-api", prog_name="referral-api")
def cli() -> None:
    """Repatriation and referral API of the Mongolian Gender Equality Center.

    Settings come from environment variables (see the README); DATABASE_URL defaults to a SQLite
    file in the instance folder.
    """


def gunicorn_args(*, host: str, port: int, workers: int) -> list[str]:
    """The gunicorn command line of `serve`: gevent workers, so that slow clients cannot take it down.

    A sync (or gthread) worker gives each new connection a process (or thread) that waits for its
    request line and headers: a few clients sending them slowly hold every one. A gevent worker
    reads each connection in its own greenlet, so a slow one costs a little memory, not a worker.
    """
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "--bind", f"{host}:{port}", "--workers", str(workers),
            "--worker-class", "gevent", "--worker-connections", "1000",
            "--config", "python:referral_api.gunicorn_conf",
            "--no-control-socket", "referral_api.wsgi:app"]


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with gunicorn (gevent workers)."""
    import os

    from .metrics.multiproc import prepare

    prepare(os.environ, port=port)  # the workers' shared metrics folder, emptied (docs/deploy.md)
    args = gunicorn_args(host=host, port=port, workers=workers)
    os.execv(args[0], args)  # noqa: S606  (replaces this process with gunicorn, fixed arguments)


@cli.group("db")
def db_group() -> None:
    """Database schema migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    dbmigrate.upgrade(database(), revision)
    click.echo(f"database at {revision}", err=True)


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. -1, base)."""
    dbmigrate.downgrade(database(), revision)
    click.echo(f"database at {revision}", err=True)


@db_group.command("current")
@json_option
@with_appcontext
def db_current(as_json: bool) -> None:
    """Show the applied revision and whether it is the head."""
    db = database()
    with db.engine.connect() as conn:
        current = sorted(dbmigrate.current_revisions(conn))
    heads = sorted(dbmigrate.head_revisions(db))
    emit({"current": current, "heads": heads, "at_head": current == heads}, as_json=as_json,
         text=f"current: {' '.join(current) or '(empty)'}  head: {' '.join(heads)}")


@cli.group("openapi")
def openapi_group() -> None:
    """The committed OpenAPI document."""


@openapi_group.command("export")
@click.option("--output", "-o", default="openapi/swagger.json", show_default=True,
              type=click.Path(dir_okay=False, writable=True))
@with_appcontext
def openapi_export(output: str) -> None:
    """Write the Swagger 2.0 document the code generates (use '-' for stdout)."""
    text = openapi_document(current_app)
    if output == "-":
        click.echo(text, nl=False)
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


def openapi_document(app: Any) -> str:
    """The OpenAPI document as committed: sorted keys, two-space indent, trailing newline."""
    api = app.extensions["referral_api.api"]
    with app.test_request_context(base_url="http://127.0.0.1:5000"):
        spec = api.__schema__
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def register_part_commands() -> None:
    from .organisations.cli import orgs_group

    cli.add_command(orgs_group)
    from .privacy.cli import keys_group

    cli.add_command(keys_group)
    from .audit.cli import audit_group

    cli.add_command(audit_group)
    from .auth.cli import clients_group, users_group

    cli.add_command(clients_group)
    cli.add_command(users_group)
    from .webhooks.cli import webhooks_group

    cli.add_command(webhooks_group)
    from .reports.cli import retention_group

    cli.add_command(retention_group)
    from .deadlines.cli import deadlines_group

    cli.add_command(deadlines_group)
    from .demo import demo_group

    cli.add_command(demo_group)
    from .prune import prune_command

    cli.add_command(prune_command)
    from .backup import backup_command

    cli.add_command(backup_command)


def main() -> None:
    register_part_commands()
    cli.main(prog_name="referral-api", obj=ScriptInfo(create_app=_create_app, set_debug_flag=False))


__all__ = ["cli", "domain_command", "emit", "get_session", "json_option", "main", "parse_now"]
