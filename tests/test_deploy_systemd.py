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
