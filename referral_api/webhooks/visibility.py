"""Who may see a record, as webhooks/ needs to know it: one rule per resource type, registered from above.

webhooks/ sits below referrals/ and cases/, so it cannot ask them; they tell it instead, when they are
imported:

    from referral_api.webhooks import visibility

    def _case_audience(session, case_id) -> set[uuid.UUID]:
        ...  # MGEC's id and the participants' ids, as docs/domain.md's visibility table says
    visibility.register("case", _case_audience)

An event is offered to the subscriptions of exactly the organisations the rule of its
`resource_type` returns. A resource type without a rule reaches nobody (fail closed). An event type
may have a rule of its own, which then decides instead (`register_event`): it sees the whole event,
e.g. to reach only the organisation a `case.participant_added` is about.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from ..events import OutboxEvent

Rule = Callable[[Session, uuid.UUID], "set[uuid.UUID]"]
EventRule = Callable[[Session, OutboxEvent], "set[uuid.UUID]"]

_rules: dict[str, Rule] = {}
_event_rules: dict[str, EventRule] = {}


def register(resource_type: str, rule: Rule) -> None:
    """Decide with `rule(session, resource_id) -> set of organisation ids` who sees `resource_type`."""
    existing = _rules.get(resource_type)
    if existing is not None and existing is not rule:
        raise ValueError(f"a visibility rule for {resource_type!r} is already registered")
    _rules[resource_type] = rule


def register_event(event_type: str, rule: EventRule) -> None:
    """Decide with `rule(session, event) -> set of organisation ids` who gets events of `event_type`."""
    existing = _event_rules.get(event_type)
    if existing is not None and existing is not rule:
        raise ValueError(f"a visibility rule for {event_type!r} events is already registered")
    _event_rules[event_type] = rule


def unregister(resource_type: str) -> None:
    """Forget the rule of `resource_type` (tests)."""
    _rules.pop(resource_type, None)


def audience(session: Session, resource_type: str, resource_id: uuid.UUID) -> set[uuid.UUID]:
    """The organisations allowed to see the record; none when no rule is registered for its type."""
    rule = _rules.get(resource_type)
    if rule is None:
        return set()
    return {uuid.UUID(str(org)) for org in rule(session, resource_id)}


def event_audience(session: Session, event: OutboxEvent) -> set[uuid.UUID]:
    """The organisations that get `event`: its type's rule, else the rule of its resource type."""
    rule = _event_rules.get(str(event.type))
    if rule is None:
        return audience(session, event.resource_type, event.resource_id)
    return {uuid.UUID(str(org)) for org in rule(session, event)}


def registered() -> frozenset[str]:
    return frozenset(_rules)
