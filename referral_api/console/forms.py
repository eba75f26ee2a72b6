"""Forms of the console: read a posted form into a dict, load it with the API's own schema, and put
marshmallow's English messages into the person's language."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from ..access import Actor
from ..errors import InvalidPayload, NotFound
from ..http import load
from ..idempotency import idempotent
from ..validators import control_character_message

KEY_FIELD = "idempotency_key"
NOT_FIELDS = frozenset({"csrf_token", "version", KEY_FIELD})
_MESSAGES = (
    ("Missing data", _l("Please fill in this field.")),
    ("Must not be blank", _l("Please fill in this field.")),
    ("Must not repeat an item", _l("Please choose each option once.")),
    ("after situation.identified_on",
     _l("The date of birth must not be after the day the person was identified.")),
    ("Contradicts date_of_birth",
     _l("The estimated age contradicts the date of birth: leave it out when the date is known.")),
    ("child_protection is the legal basis for a minor only",
     _l("Child protection is a legal basis for a minor only: the person is an adult.")),
    ("Must hold at least", _l("A phone number has at least 5 digits.")),
    ("may not be null", _l("Please fill in this field.")),
    ("Not a valid date", _l("Please give a date.")),
    ("Not a year from", _l("Please give a year from 1900 to 2999.")),
    ("Must be a day from", _l("Please give a day from 1900 to 2999.")),
    ("is after `to`", _l("The start is after the end.")),
    ("future", _l("This date must not be in the future.")),
    ("Must be one of", _l("Please choose one of the options.")),
    ("Longer than", _l("This is too long.")),
    ("Shorter than", _l("Please fill in this field.")),
    ("no such case", _l("There is no case with this reference.")),
    ("free bed", _l("This shelter has no free bed.")),
    ("taken", _l("This organisation takes part already.")),
    ("Required when consent.given is false", _l("Without consent, choose the legal basis.")),
    ("Required when consent is given", _l("Required when the person consents.")),
    ("minor's consent", _l("A minor's consent is given by a guardian; otherwise choose child protection.")),
    ("Give date_of_birth", _l("Give the date of birth or, when it is unknown, an estimated age.")),
    ("Two Cyrillic letters", _l("Two Cyrillic letters and eight digits, e.g. УБ99112233.")),  # noqa: RUF001
    ("5 to 24 letters", _l("5 to 24 letters or digits.")),
    ("A phone number", _l("A phone number: digits, spaces, + ( ) -.")),
    ("ISO 639", _l("Language codes such as mn, ru, ko.")),
    ("country", _l("Please choose a country.")),
    ("Shorter than minimum", _l("Please choose at least one.")),
    ("Length must be between", _l("Please choose at least one.")),
)


def posted(*, skip_empty: bool = True) -> dict[str, Any]:
    """The posted form as a dict: repeated names become lists, empty optional fields are left out."""
    out: dict[str, Any] = {}
    for name in request.form:
        if name in NOT_FIELDS:
            continue
        values = [v.strip() for v in request.form.getlist(name)]
        if skip_empty:
            values = [v for v in values if v]
            if not values:
                continue
        out[name] = values if len(values) > 1 else values[0]
    return out


def one_line(form: dict[str, Any]) -> dict[str, Any]:
    """A form no schema loads: every value one line (a line break passes the console's request check
    for the multi-line fields of schemas, and is refused here, named, in a name or an e-mail)."""
    refused = {
        name: [message]
        for name, value in form.items()
        for text in (value if isinstance(value, list) else [value])
        if isinstance(text, str) and (message := control_character_message(text))
    }
    if refused:
        raise InvalidPayload(errors=refused)
    return form


@contextlib.contextmanager
def chosen(field: str) -> Iterator[None]:
    """What a form's select names (`field`) not found by the service (none chosen, an unknown id, one
    gone meanwhile): refused naming the field (422), the form kept, instead of a bare 404 page."""
    try:
        yield
    except NotFound:
        raise InvalidPayload(errors={field: ["Must be one of the options."]}) from None


def load_form(schema: ma.Schema, data: dict[str, Any]) -> Any:
    """The API's own validation (InvalidPayload naming each field on failure)."""
    return load(schema, data)


def field_errors(errors: dict[str, list[str]] | None, *, paths: bool = False) -> dict[str, str]:
    """Each field's first problem, in the person's language (`details.arrived_on` -> `arrived_on`; with
    `paths`, the dotted name is kept: `person.given_name`)."""
    out: dict[str, str] = {}
    for name, messages in (errors or {}).items():
        text = " ".join(messages)
        said = next((str(word) for key, word in _MESSAGES if key in text), None)
        out[name if paths else name.split(".")[-1]] = said or str(_l("Please check this field."))
    return out


def form_key() -> str:
    """The key of a form that creates something (its hidden `idempotency_key` field): the one posted when
    a refused form is shown again, so that its corrected sending is still the same form; else a new one."""
    return request.form.get(KEY_FIELD) or str(uuid.uuid4())


def once(
    session: Session,
    who: Actor,
    create: Callable[[], tuple[object, str]],
    still_seen: Callable[[str], object],
) -> str:
    """Create at most once per form sent (idempotency.idempotent under the form's key, the API's
    Idempotency-Key rules): a double click or a form sent again changes nothing more.

    `create` makes the change and names the page to go to; `still_seen` reads a repeat's resource for this
    person now (visibility applies, the read is audited). Answers the address of the page to go to."""

    def handler() -> tuple[object, Response]:
        resource_id, target = create()
        return resource_id, Response(status=201, headers={"Location": target})

    def replay(resource_id: str) -> Response:
        still_seen(resource_id)
        return Response(status=200)

    key = request.form.get(KEY_FIELD, "")
    answer = idempotent(session, actor=who, handler=handler, replay=replay, key=key)
    return answer.headers["Location"]
