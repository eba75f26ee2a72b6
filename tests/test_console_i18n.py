"""Every word of the console in Mongolian: the catalog covers every message; the compiled one is current."""

from __future__ import annotations

import gettext
import re
from datetime import date
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from referral_api.console import i18n

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "referral_api" / "console" / "translations"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _method_map() -> list[tuple[str, str]]:
    """The extraction map of babel.cfg (the same file `make translations` uses)."""
    out = []
    for line in (ROOT / "referral_api" / "console" / "babel.cfg").read_text().splitlines():
        match = re.match(r"\[(\w+): (.+)\]", line.strip())
        if match:
            out.append((match.group(2), match.group(1)))
    return out


def source_messages() -> set[str]:
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=_method_map(), keywords=keywords, options_map={}
    ):
        found.update(message if isinstance(message, tuple) else (message,))
    return {m for m in found if m}


def catalog(lang: str):
    with open(CATALOGS / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=lang)


def test_the_extraction_finds_the_console_words():
    messages = source_messages()
    assert {"Review queue", "Sign in", "Zamiin-Uud border crossing", "One-time code"} <= messages


def test_every_message_has_a_mongolian_translation():
    mn = catalog("mn")
    missing = sorted(
        m for m in source_messages() if not (mn.get(m) and mn.get(m).string and not mn.get(m).fuzzy)
    )
    assert missing == [], f"no Mongolian for: {missing}"


def test_translations_keep_their_placeholders_and_are_cyrillic():
    for message in catalog("mn"):
        if not message.id:
            continue
        assert set(_PLACEHOLDER.findall(message.id)) == set(_PLACEHOLDER.findall(message.string)), message.id
        letters = re.sub(r"%\(\w+\)s|CASE-|CSV|CTDC|README|[^A-Za-zА-Яа-яЁёӨөҮү]", "", message.string)
        if letters:
            assert re.search(r"[А-Яа-яӨөҮү]", letters), f"{message.id!r} is not in Mongolian"


@pytest.mark.parametrize("lang", ["mn", "en"])
def test_compiled_catalogs_are_current(lang):
    with open(CATALOGS / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        compiled = gettext.GNUTranslations(f)
    for message in catalog(lang):
        if message.id and message.string:
            assert compiled.gettext(message.id) == message.string, f"run `make translations`: {message.id!r}"


@pytest.mark.parametrize(("lang", "expected"), [("mn", "2026 оны 11-р сарын 29"), ("en", "29 Nov 2026")])
def test_dates_read_as_dates(app, lang, expected):
    with app.test_request_context("/console/queue", headers={"Cookie": f"console_lang={lang}"}):
        assert i18n.day(date(2026, 11, 29)) == expected
        assert i18n.day("2026-11-29") == expected
