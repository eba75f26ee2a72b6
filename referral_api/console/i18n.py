"""Languages of the console: Mongolian first, English a click away; dates and durations in words."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_timedelta
from babel.lists import format_list
from flask import Flask, g, request
from flask_babel import Babel, get_locale

LANGUAGES = ("mn", "en")
DEFAULT_LANGUAGE = "mn"
LANGUAGE_COOKIE = "console_lang"
LANGUAGE_NAMES = {"mn": "Монгол", "en": "English"}
# English dates as `29 Nov 2026`: British order, the way MGEC's partners abroad write them.
_FORMAT_LOCALE = {"mn": "mn", "en": "en_GB"}
LOCAL_TIME = ZoneInfo("Asia/Ulaanbaatar")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def chosen_language() -> str:
    """The person's choice: this request's session, else the language cookie, else Mongolian in the
    console (MGEC's staff) and English elsewhere (the login form of partners' applications abroad;
    the console's own sign-in sets the cookie before it sends the browser there)."""
    current = g.get("console")
    if current is not None and current.row.language in LANGUAGES:
        return current.row.language
    cookie = request.cookies.get(LANGUAGE_COOKIE, "")
    if cookie in LANGUAGES:
        return cookie
    return DEFAULT_LANGUAGE if request.path.startswith("/console") else "en"


def language() -> str:
    return str(get_locale() or DEFAULT_LANGUAGE).split("_")[0]


def _locale() -> str:
    return _FORMAT_LOCALE.get(language(), "en_GB")


def _parsed(value: date | datetime | str) -> date | datetime:
    if not isinstance(value, str):
        return value
    return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)


def day(value: date | datetime | str | None) -> str:
    """`2026 оны 11-р сарын 29` / `29 Nov 2026` (a dumped ISO string too)."""
    if value is None or value == "":
        return ""
    value = _parsed(value)
    if isinstance(value, datetime):
        value = value.astimezone(LOCAL_TIME).date()
    return _plain(format_date(value, "medium", locale=_locale()))


def _plain(text: str) -> str:
    # CLDR puts narrow no-break spaces in Mongolian dates; old fonts show them as boxes.
    return text.replace("\u202f", " ")


def moment(value: datetime | str | None) -> str:
    """A date and time of day in Ulaanbaatar time."""
    if value is None or value == "":
        return ""
    parsed = _parsed(value)
    if not isinstance(parsed, datetime):
        return day(parsed)
    local = parsed.astimezone(LOCAL_TIME)
    return f"{day(local.date())} {local:%H:%M}"


def ago(value: datetime | None, now: datetime) -> str:
    """`3 days ago` / `3 өдрийн өмнө`."""
    if value is None:
        return ""
    return format_timedelta(value - now, add_direction=True, threshold=1.1, locale=_locale())


def listed(items: list[str]) -> str:
    """Words joined as the language joins them (`Embassy, IOM and NGO`); nothing for no words."""
    return format_list(items, locale=_locale()) if items else ""


def country(code: str | None) -> str:
    """A country's name in the chosen language (CLDR), from its ISO 3166 alpha-2 code."""
    if not code:
        return ""
    return Locale.parse(_locale()).territories.get(code.upper(), code)


def language_name(code: str | None) -> str:
    """A language's name in the chosen language (CLDR), from its ISO 639-1 code."""
    if not code:
        return ""
    return Locale.parse(_locale()).languages.get(code, code)


def init_app(app: Flask) -> Babel:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    babel = Babel(app, locale_selector=chosen_language)
    app.jinja_env.globals.update(
        day=day,
        moment=moment,
        language=language,
        LANGUAGE_NAMES=LANGUAGE_NAMES,
        country=country,
        language_name=language_name,
    )
    return babel
