"""Blind indexes: HMAC-SHA256 under the index key of a normalised value, for duplicate search.

An index is `HMAC(index_key, kind || 0x00 || normalised)` truncated to 16 bytes, in hex. The kind is
a domain separator: a passport number and a national id with the same characters index apart.
Low-entropy values are never indexed alone: a name only together with a birth year.

Name folding (so that spellings of one Mongolian name by different officers index alike):
0. NFKC, and format characters (Unicode category Cf: zero-width space and joiners, soft hyphen,
   LRM/RLM and other direction marks) dropped: invisible, they must not hide a duplicate.
1. Mongolian Cyrillic is transliterated to Latin (close to MNS 5217 / passport practice: х -> h,
   ө and ү -> u, й -> i, ц -> ts, ж -> j, я -> ya, ...).
2. Lower case; ö, ü -> u; other diacritics dropped (é -> e); punctuation and hyphens dropped; tokens
   split on spaces.
3. Latin variants folded: kh -> h, zh -> j, o -> u (о/ө/у/ү are confused in every Latin spelling),
   iy/yi -> i; then every run of one letter collapses (aa -> a, ii -> i, tt -> t).
4. Tokens are sorted, so "Batbayar Enkhtuya" and "Enkhtuya Batbayar" index alike.
So Батбаяр/Batbayar, Өлзий/Ulzii/Ölzii/Olziy, Хишиг/Khishig/Hishig fold alike. The folding is
deliberately coarse: a match only proposes a candidate duplicate for a person to look at.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from enum import StrEnum

INDEX_BYTES = 16


class BlindIndexKind(StrEnum):
    PASSPORT = "passport"
    NATIONAL_ID = "national_id"
    NAME_BIRTH_YEAR = "name_birth_year"


_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "ye", "ё": "yo", "ж": "j", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "ө": "u", "п": "p",
    "р": "r", "с": "s", "т": "t", "у": "u", "ү": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch",
    "ш": "sh", "щ": "sh", "ъ": "", "ы": "i", "ь": "i", "э": "e", "ю": "yu", "я": "ya",
    # Kazakh letters of western Mongolia, to their nearest Mongolian reading.
    "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ұ": "u", "һ": "h", "і": "i",
}
_LATIN_SPECIAL = {"ö": "u", "ü": "u", "ø": "u", "ß": "ss", "æ": "ae", "œ": "oe", "ı": "i"}
_FOLDS = [("kh", "h"), ("zh", "j"), ("o", "u"), ("iy", "i"), ("yi", "i")]
_NOT_LETTER = re.compile(r"[^a-z ]+")
_RUNS = re.compile(r"(.)\1+")
_DOC_CHARS = re.compile(r"[^A-Z0-9]+")


def transliterate(text: str) -> str:
    """Mongolian (and Kazakh) Cyrillic to Latin, lower case; other characters pass through."""
    return "".join(_CYRILLIC.get(ch, ch) for ch in text.lower())


def _strip_diacritics(text: str) -> str:
    text = "".join(_LATIN_SPECIAL.get(ch, ch) for ch in text)
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _fold_token(token: str) -> str:
    for old, new in _FOLDS:
        token = token.replace(old, new)
    return _RUNS.sub(r"\1", token)


def _visible(text: str) -> str:
    """NFKC, without format characters (category Cf), which show nothing but change the string."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")


def normalise_name(name: str) -> str:
    """A person's name folded so that its usual Cyrillic and Latin spellings compare equal."""
    text = _strip_diacritics(transliterate(_visible(name)))
    text = text.replace("-", "").replace("'", "").replace("\u2019", "")
    tokens = [_fold_token(t) for t in _NOT_LETTER.sub(" ", text).split()]
    return " ".join(sorted(t for t in tokens if t))


def normalise_document_number(number: str) -> str:
    """A passport or national id number: Latin capitals and digits only (Cyrillic transliterated)."""
    text = _strip_diacritics(transliterate(_visible(number)))
    return _DOC_CHARS.sub("", text.upper())


def blind_index(key: bytes, kind: BlindIndexKind, normalised: str) -> str:
    """The truncated HMAC of an already normalised value; refuses an empty one."""
    if not normalised:
        raise ValueError(f"nothing left to index for {kind.value} after normalisation")
    mac = hmac.new(key, kind.value.encode() + b"\x00" + normalised.encode(), hashlib.sha256)
    return mac.digest()[:INDEX_BYTES].hex()


class BlindIndexer:
    """The blind indexes the referral and case parts store, each over its own normalisation."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def passport(self, number: str) -> str:
        return blind_index(self._key, BlindIndexKind.PASSPORT, normalise_document_number(number))

    def national_id(self, number: str) -> str:
        return blind_index(self._key, BlindIndexKind.NATIONAL_ID, normalise_document_number(number))

    def name_birth_year(self, name: str, birth_year: int) -> str:
        """A name never alone: always with the birth year."""
        if not 1900 <= int(birth_year) <= 2100:
            raise ValueError("birth year out of range")
        value = f"{normalise_name(name)}|{int(birth_year)}"
        return blind_index(self._key, BlindIndexKind.NAME_BIRTH_YEAR, value)
