"""The partners' docs cannot drift from the code: the vocabularies of stage details and of a referral,
the scopes, the webhook events and the demo clients' scopes are generated here from the code and
compared with docs/; every relative link of README.md and docs/*.md resolves; no shipped file points
to the design folder beside the project (it is not shipped)."""

from __future__ import annotations

import json
import re
import subprocess
from enum import StrEnum
from pathlib import Path

import marshmallow as ma
import pytest
from werkzeug.http import HTTP_STATUS_CODES

from referral_api.access import ALL_SCOPES, CLIENT_CREDENTIALS_SCOPES, ROLE_SCOPES, Role
from referral_api.cases import stages
from referral_api.cases.models import ServiceKind, ServiceStatus
from referral_api.errors import DomainError
from referral_api.events import EventType
from referral_api.referrals import vocab
from referral_api.referrals.schemas import SHAREABLE_KINDS

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _block(path: Path, name: str) -> str:
    """The text between `<!-- name:begin -->` and `<!-- name:end -->` of a page."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"{path.name} lacks the block {name}"
    return match.group(1)


def _values(enum: type[StrEnum] | list[str]) -> str:
    return ", ".join(f"`{m}`" for m in enum)


def _field_text(field: ma.fields.Field) -> str:
    if isinstance(field, ma.fields.Enum):
        return "one of " + _values(field.enum)
    if isinstance(field, ma.fields.Date):
        return "a date (`YYYY-MM-DD`), not in the future"
    if isinstance(field, ma.fields.String):
        length = next(v for v in field.validators if isinstance(v, ma.validate.Length))
        sealed = " (sealed: it may identify the person)" if field.name in stages.PERSONAL_DETAILS else ""
        return f"text, {length.min} to {length.max} characters{sealed}"
    raise AssertionError(f"describe {type(field).__name__} here")


def stage_details_table() -> str:
    """Each move's `details`, from `cases/stages.py`: which keys, and the values each accepts."""
    rows = ["| move | by (besides MGEC staff) | `details` (all required, nothing else accepted) |",
            "| --- | --- | --- |"]
    shown: set[stages.MoveKind] = set()
    moves = sorted(stages.MOVES.values(), key=lambda m: list(stages.MoveKind).index(m.kind))
    for move in moves:
        source, target = move.source, move.target
        fields = move.details().fields.items()
        details = "; ".join(f"`{name}`: {_field_text(field)}" for name, field in fields)
        by = ", ".join(sorted(f"`{r.value}`" for r in move.by)) or "MGEC only"
        if move.kind is stages.MoveKind.FORWARD or move.kind is stages.MoveKind.SKIP:
            label = f"`{source.value}` → `{target.value}`"
        elif move.kind in shown:
            continue  # one row for every step back, closing and reopening
        else:
            shown.add(move.kind)
            label = {stages.MoveKind.BACK: "a stage → the one before it",
                     stages.MoveKind.CLOSE: "any open stage → `closed`",
                     stages.MoveKind.REOPEN: "`closed` → any open stage"}[move.kind]
            if move.kind is stages.MoveKind.REOPEN:
                by = "an MGEC admin only"
        if move.needs_note:
            details = (details + "; " if details else "") + "and a `note` saying why"
        rows.append(f"| {label} ({move.kind.value}) | {by} | {details or 'none'} |")
    return "\n".join(rows) + "\n"


REFERRAL_VOCABULARIES = [
    ("`source`", vocab.Source), ("`concern`", vocab.Concern), ("`legal_basis`", vocab.LegalBasis),
    ("`person.sex`", vocab.Sex), ("`person.home_province`", vocab.Province),
    ("`situation.exploitation_types[]`", vocab.ExploitationType), ("`situation.urgency`", vocab.Urgency),
    ("`situation.needs[]`", vocab.Need), ("`situation.safety_risk`", vocab.SafetyRisk),
    ("`situation.contact_family`", vocab.ContactFamily), ("`consent.method`", vocab.ConsentMethod),
    ("`consent.share_with[]`", SHAREABLE_KINDS), ("`reject` `reason`", vocab.RejectReason),
    ("service `kind`", ServiceKind), ("service `status`", ServiceStatus),
]


def referral_vocabulary_table() -> str:
    rows = ["| field | values |", "| --- | --- |"]
    rows += [f"| {name} | {_values(enum)} |" for name, enum in REFERRAL_VOCABULARIES]
    return "\n".join(rows) + "\n"


def test_stage_details_in_the_docs_are_the_codes():
    assert _block(DOCS / "domain.md", "stage-details") == stage_details_table(), \
        "docs/domain.md's stage-details block is stale; put this in it:\n" + stage_details_table()


def test_referral_vocabularies_in_the_docs_are_the_codes():
    assert _block(DOCS / "domain.md", "referral-vocabularies") == referral_vocabulary_table(), \
        "docs/domain.md's referral-vocabularies block is stale; put this in it:\n" \
        + referral_vocabulary_table()


def test_the_stage_details_block_would_catch_a_new_value():
    """The comparison is with the live enums: a value added to one changes the generated table."""
    before = stage_details_table()
    extended = StrEnum("Route", {"AIR": "air", "LAND": "land", "SEA": "sea"})
    original = stages.DepartureDetails._declared_fields["route"].enum
    stages.DepartureDetails._declared_fields["route"].enum = extended
    try:
        assert stage_details_table() != before and "`sea`" in stage_details_table()
    finally:
        stages.DepartureDetails._declared_fields["route"].enum = original


def test_scopes_table_says_which_scopes_client_credentials_and_each_role_may_hold():
    block = _block(DOCS / "api.md", "scopes")
    header = block.splitlines()[0].split("|")[1:-1]
    roles = [re.search(r"`(\w+)`", cell).group(1) for cell in header[3:]]
    assert roles == [r.value for r in Role]
    documented = {}
    for row in block.splitlines()[2:]:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        documented[cells[0].strip("`")] = [cell == "yes" for cell in cells[2:]]
    assert set(documented) == set(ALL_SCOPES)
    for scope, (client_credentials, *by_role) in documented.items():
        assert client_credentials == (scope in CLIENT_CREDENTIALS_SCOPES), scope
        assert by_role == [scope in ROLE_SCOPES[Role(r)] for r in roles], scope


def _problem_codes() -> set[str]:
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    werkzeug = {name.lower().replace(" ", "_").replace("'", "") for name in HTTP_STATUS_CODES.values()}
    return {cls.code for cls in subclasses(DomainError)} | werkzeug | {"invalid_token", "insufficient_scope"}


def test_documented_error_types_are_codes_the_service_answers_with():
    rows = [row.split("|")[1:3] for row in _block(DOCS / "api.md", "errors").splitlines()[2:]]
    documented = {code for _, cell in rows for code in re.findall(r"`([a-z_]+)`", cell)}
    statuses = {int(status.strip(" `")) for status, _ in rows}
    assert documented and documented <= _problem_codes(), documented - _problem_codes()
    assert {400, 401, 403, 404, 409, 412, 415, 422, 429, 503} <= statuses


def test_webhook_events_listed_are_the_codes():
    listed = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", _block(DOCS / "webhooks.md", "events")))
    assert listed == {e.value for e in EventType}


def test_demo_clients_scopes_in_the_docs_are_what_demo_seed_creates(run_cli):
    result = run_cli("demo", "seed", "--json")
    assert result.exit_code == 0, result.output
    seeded = json.loads(result.stdout)
    clients = {c["client_id"]: c for c in json.loads(run_cli("clients", "list", "--json").stdout)["items"]}
    documented = {}
    for kind, scopes, grants in re.findall(r"^\| `([a-z]+)` \| [^|]+ \| ([^|]+) \| ([^|]+) \|$",
                                           _block(DOCS / "api.md", "demo-clients"), re.M):
        documented[kind] = (set(re.findall(r"`([a-z:]+)`", scopes)), set(re.findall(r"`([a-z_]+)`", grants)))
    actual = {kind: (set(clients[c["client_id"]]["scopes"]), set(clients[c["client_id"]]["grant_types"]))
              for kind, c in seeded["clients"].items()}
    assert documented == actual


# ---------------------------------------------------------------- links and the design folder

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        missing_anchor = anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(target)
    assert broken == []


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n[fine](#title) [gone](missing.md) [bad anchor](#nowhere)\n")
    text = page.read_text()
    found = [t for t in LINK.findall(text)
             if not (page.parent / t.partition("#")[0]).exists() or
             (t.partition("#")[2] and t.partition("#")[2] not in _anchors(page))]
    assert found == ["missing.md", "#nowhere"]


DESIGN_NAMES = ("DOMAIN", "API", "SECURITY", "CONSOLE", "ARCHITECTURE")
# Built from parts, so that this file does not point to the folder itself.
DESIGN = re.compile(r"\b(?:" + "|".join(DESIGN_NAMES) + r")\.md\b|" + "shared" + r"/(?:design|context)\b")


def test_no_shipped_file_points_to_the_design_folder():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True,
                           text=True).stdout.split("\0")
    pointing = []
    for name in filter(None, files):
        path = REPO / name
        if not path.is_file() or path.suffix in (".png", ".jpg", ".mo", ".ico", ".woff2", ".pdf", ".heic"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        pointing += [f"{name}: {m.group(0)}" for m in DESIGN.finditer(text)]
    assert pointing == []
