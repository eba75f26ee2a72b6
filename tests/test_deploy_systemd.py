"""The shipped systemd units and docs/deploy.md stay true (issue 19): every ExecStart is a real
`referral-api` command whose options parse, every timer starts a shipped service on a valid calendar,
and the guide names every unit and only commands that exist."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path

import click
import pytest

from referral_api.cli import cli
from tests.test_serve import BIN

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "deploy" / "systemd"
GUIDE = REPO / "docs" / "deploy.md"
RELEASE_BIN = "/opt/referral-api/.venv/bin/referral-api"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def _rest(ctx: click.Context) -> list[str]:
    with warnings.catch_warnings():  # click 8.2 keeps a group's subcommand in protected_args, 9.0 in args
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*getattr(ctx, "protected_args", []), *ctx.args]


def _parse(args: list[str]) -> list[str]:
    """Resolve and parse `referral-api ARGS` as click would, without running it; the command path."""
    ctx = cli.make_context("referral-api", list(args))
    command: click.Command = cli
    rest = _rest(ctx)
    path = []
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name, f"no command in {args}"
        ctx = sub.make_context(name, rest, parent=ctx)  # raises on an unknown option or a bad value
        command, path = sub, [*path, name]
        rest = _rest(ctx)
    assert command.callback is not None
    return path


def _services() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def test_units_are_shipped():
    names = {p.name for p in UNITS.iterdir()}
    assert {"referral-api.service", "referral-api-worker.service", "referral-api-retention.service",
            "referral-api-retention.timer", "referral-api-audit-checkpoint.service",
            "referral-api-audit-checkpoint.timer", "referral-api-backup.service",
            "referral-api-backup.timer"} <= names


@pytest.mark.parametrize("unit", _services(), ids=lambda p: p.name)
def test_every_exec_start_is_a_real_command_with_valid_options(unit):
    service = _unit(unit)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == RELEASE_BIN
    path = _parse(argv[1:])
    assert service["EnvironmentFile"] == "/etc/referral-api/env" and service["User"] == "referral-api"
    # And the installed command line agrees: `referral-api <command> --help` exits 0.
    done = subprocess.run([str(BIN / "referral-api"), *path, "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_wrong_option_would_be_caught():
    with pytest.raises(click.UsageError):
        _parse(["retention", "run", "--no-such-option"])
    with pytest.raises(click.BadParameter):
        _parse(["serve", "--port", "eighty"])


@pytest.mark.parametrize("timer", sorted(UNITS.glob("*.timer")), ids=lambda p: p.name)
def test_every_timer_starts_a_shipped_oneshot_service(timer):
    section = _unit(timer)["Timer"]
    target = UNITS / section["Unit"]
    assert target.exists() and _unit(target)["Service"]["Type"] == "oneshot"
    assert section["Persistent"] == "true"
    analyze = shutil.which("systemd-analyze")
    if analyze:
        done = subprocess.run([analyze, "calendar", section["OnCalendar"]], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr


def test_the_guide_names_every_unit_and_only_real_commands(tmp_path):
    text = GUIDE.read_text(encoding="utf-8")
    for unit in UNITS.iterdir():
        assert unit.name in text, f"docs/deploy.md does not mention {unit.name}"
    for name in ("roles.sql", "grants.sql", "referral-api.conf", "METRICS_ALLOW", "PROMETHEUS_MULTIPROC_DIR",
                 "TRUSTED_PROXY_COUNT", "KEYSTORE_URL", "RATELIMIT_STORAGE_URI", "db upgrade"):
        assert name in text
    inline = re.findall(r"`(?:\S*/)?referral-api ([^`]+)`", text)
    blocks = re.findall(r"^\s*(?:\S*/)?referral-api ([a-z][^\n#|>]*)", text, re.M)
    assert len(inline) >= 10 and len(blocks) >= 4
    for line in inline + blocks:
        args = [a for a in shlex.split(line.replace("\\", "")) if not a.startswith(("<", "$"))]
        if args[-1] in {"...", "REV"}:  # a placeholder for the reader's own value
            args = args[:-1] if args[-1] == "..." else [*args[:-1], "base"]
        if "--checkpoint" in args:  # a file that must exist: one of ours stands in for the reader's
            (tmp_path / "cp.json").write_text("{}")
            args[args.index("--checkpoint") + 1] = str(tmp_path / "cp.json")
        _parse(args)


# ---------------------------------------------------------------- documents, secrets and keys in the guide


def _sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)


def _is_env_file(block: str) -> bool:
    """A block that shows a settings file's content (every line NAME=value), not commands."""
    lines = [line for line in block.splitlines() if line.strip()]
    return bool(lines) and all(re.fullmatch(r"[A-Z][A-Z0-9_]*=\S.*", line) for line in lines)


def _guide_env() -> dict[str, str]:
    """/etc/referral-api/env as the guide writes it."""
    block = next(b for b in _sh_blocks() if b.startswith("REFERRAL_API_ENV=production\n"))
    assert _is_env_file(block)
    return dict(line.split("=", 1) for line in block.splitlines() if line.strip())


def _writable(unit: str) -> list[str]:
    service = _unit(UNITS / unit)["Service"]
    return service.get("ReadWritePaths", "").split()


def _within(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def test_the_guides_settings_pass_the_production_checks():
    """The guide's settings are what production requires (DOCUMENTS_PATH among them)."""
    from referral_api.config import Settings

    settings = Settings.from_env(_guide_env())
    assert settings.is_production and settings.documents_path == "/var/lib/referral-api/documents"


def test_the_units_that_write_or_delete_documents_may_write_the_document_store():
    """ProtectSystem=strict makes every path read-only but ReadWritePaths: the service stores and deletes
    documents, the retention run deletes those of the records it erases. The guide makes the folder, the
    service user's, and the backup unit copies it after the dumps."""
    documents = _guide_env()["DOCUMENTS_PATH"]
    for unit in ("referral-api.service", "referral-api-retention.service"):
        assert _unit(UNITS / unit)["Service"]["ProtectSystem"] == "strict"
        assert _within(documents, _writable(unit)), (unit, documents, _writable(unit))
    assert f"install -d -o referral-api -g referral-api -m 0700 {documents}\n" in GUIDE.read_text()
    backup = _unit(UNITS / "referral-api-backup.service")["Service"]
    copy = shlex.split(backup["ExecStartPost"])
    assert copy[0] == "/usr/bin/rsync" and copy[-2] == documents + "/" and _within(copy[-1], _writable(
        "referral-api-backup.service"))
    assert "rsync" in GUIDE.read_text() and "DOCUMENTS_PATH" in GUIDE.read_text()


def test_the_guide_puts_no_secret_on_a_command_line():
    """A command's arguments are in `ps` for every local user and in the shell's history: no password in a
    URL, no `env $(cat /etc/referral-api/env ...)` (every key and password of the settings) in any command
    the guide gives. Settings files' contents are shown as such, with placeholders."""
    text = GUIDE.read_text(encoding="utf-8")
    commands = [b for b in _sh_blocks() if not _is_env_file(b)]
    commands += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    offending = [line for block in commands for line in block.splitlines()
                 if re.search(r"\$\(\s*cat [^)]*/etc/referral-api/", line)
                 or re.search(r"://[^/\s:@]+:[^@\s]+@", line) or "PGPASSWORD=" in line]
    assert offending == []
    # The migration role's URLs are in a root-only file of their own, read by systemd.
    migrate = next(b for b in commands if "db upgrade" in b and "keys init" in b)
    assert "--property=EnvironmentFile=/etc/referral-api/migrator.env" in migrate
    assert "--uid=referral-api" in migrate


def test_the_guide_rotates_keys_as_the_service_user_in_a_folder_it_owns():
    """`keys rotate` replaces the key file (a new file, renamed into place): run as the service user, which
    must own the folder; run as root the file becomes root's and the service cannot read its keys."""
    rotate = next(b for b in _sh_blocks() if re.search(r"referral-api keys rotate\b", b))
    assert "--uid=referral-api" in rotate and "--property=EnvironmentFile=/etc/referral-api/env" in rotate
    key_folder = str(Path(_guide_env()["REFERRAL_API_MASTER_KEY_FILE"]).parent)
    assert key_folder != "/etc/referral-api"  # root's, with the settings file in it
    assert f"install -d -o referral-api\n  -g referral-api -m 0700 {key_folder}" in GUIDE.read_text() or (
        f"install -d -o referral-api -g referral-api -m 0700 {key_folder}" in GUIDE.read_text())
