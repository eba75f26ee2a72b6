"""The `referral-api` command line: a Flask CLI group; each part adds its own commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext

from . import create_app, dbmigrate
from .audit.cli import audit_group
from .auth.cli import clients_group, users_group
from .backup import backup_command
from .commands import CommandError, emit, json_option
from .console.cli import console_group
from .db import database
from .deadlines.cli import deadlines_group
from .demo import demo_group
from .key_commands import keys_group
from .organisations.cli import orgs_group
from .prune import prune_command
from .reports.cli import retention_group
from .webhooks.cli import webhooks_group


def error_payload(exc: click.ClickException) -> dict[str, Any]:
    """The one JSON object a failing command prints under --json."""
    if isinstance(exc, CommandError):
        payload: dict[str, Any] = {"error": exc.code, "message": exc.message}
        if exc.errors:
            payload["errors"] = exc.errors
        return payload
    code = "usage_error" if isinstance(exc, click.UsageError) else "command_failed"
    return {"error": code, "message": exc.format_message()}


class CLIGroup(AppGroup):
    """Flask's command group; when `--json` is on the command line, every failure (bad usage, a
    DomainError, any other error) is one JSON object on stdout and the exit status is not 0."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            click.echo(json.dumps(error_payload(exc), sort_keys=True, default=str))
            sys.exit(exc.exit_code or 1)
        except click.Abort:
            click.echo(json.dumps({"error": "aborted", "message": "Aborted."}))
            sys.exit(1)
        except Exception as exc:  # the traceback still goes to stderr
            click.echo(json.dumps({"error": "internal_error", "message": type(exc).__name__}))
            raise
        sys.exit(result if isinstance(result, int) else 0)


def _create_app() -> Any:
    return create_app()


@click.group(cls=CLIGroup)
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
@click.option("--with-worker", is_flag=True,
              help="Run the webhook worker beside the server (as `make run` does): both are children of "
                   "this command; SIGTERM or Ctrl-C stops both, and when one ends the other is stopped.")
def serve(host: str, port: int, workers: int, with_worker: bool) -> None:
    """Serve the API with gunicorn (gevent workers), with --with-worker the webhook worker too."""
    import os

    from .metrics.multiproc import prepare

    prepare(os.environ, port=port)  # the workers' shared metrics folder, emptied (docs/deploy.md)
    args = gunicorn_args(host=host, port=port, workers=workers)
    if not with_worker:
        os.execv(args[0], args)  # noqa: S606  (replaces this process with gunicorn, fixed arguments)
    worker = [sys.executable, "-c", "from referral_api.cli import main; main()", "webhooks", "work"]
    click.echo(f"serving http://{host}:{port}/ with the webhook worker beside it; Ctrl-C stops both",
               err=True)
    sys.exit(supervise({"server": args, "webhook worker": worker}))


def _die_with_parent(parent: int) -> None:
    """In a child, before exec: on Linux, be sent SIGTERM when the supervising process dies (even by
    SIGKILL), so no server or worker outlives it."""
    import ctypes
    import os

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def supervise(commands: dict[str, list[str]], *, grace: float = 30.0, poll: float = 0.2) -> int:
    """Run the commands side by side as child processes until one ends or SIGTERM, SIGINT or SIGHUP
    arrives; then send SIGTERM to the others, wait up to `grace` seconds (then SIGKILL) and return
    0 after a signal, else the exit status of the child that ended first (1 when that was 0).

    The children run in their own session, so a Ctrl-C on the terminal reaches this process only, and
    it stops them in order; they also receive SIGTERM if this process dies (`_die_with_parent`)."""
    import functools
    import os

    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            procs[name] = subprocess.Popen(command, start_new_session=True,  # noqa: S603 (our own commands)
                                           preexec_fn=functools.partial(_die_with_parent, os.getpid()))
        while not received and all(p.poll() is None for p in procs.values()):
            time.sleep(poll)
    finally:
        ended = [(name, p.returncode) for name, p in procs.items() if p.poll() is not None]
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + grace
        for p in procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received or not ended:
        return 0
    name, status = ended[0]
    click.echo(f"the {name} ended (exit status {status}); stopped the others", err=True)
    return status or 1


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
    heads = sorted(dbmigrate.head_revisions())
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


for _group in (orgs_group, keys_group, audit_group, clients_group, users_group, webhooks_group,
               retention_group, deadlines_group, demo_group, prune_command, backup_command, console_group):
    cli.add_command(_group)


def main() -> None:
    cli.main(prog_name="referral-api", obj=ScriptInfo(create_app=_create_app, set_debug_flag=False))


__all__ = ["cli", "gunicorn_args", "main", "openapi_document", "supervise"]
