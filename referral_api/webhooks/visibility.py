"""Who may see a record, as webhooks/ needs to know it: one rule per resource type, registered from above.

webhooks/ sits below referrals/ and cases/, so it cannot ask them; they tell it instead, when they are
imported:

    from referral_api.webhooks import visibility

    def _case_audience(session, case_id) -> set[uuid.UUID]:
        ...  # MGEC's id and the participants' ids, as DOMAIN.md's visibility table says
    visibility.register("case", _case_audience)

An event is offered to the subscriptions of exactly the organisations the rule of its
`resource_type` returns. A resource type without a rule reaches nobody (fail closed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

Rule = Callable[[Session, uuid.UUID], "set[uuid.UUID]"]

_rules: dict[str, Rule] = {}


def register(resource_type: str, rule: Rule) -> None:
    """Decide with `rule(session, resource_id) -> set of organisation ids` who sees `resource_type`."""
    existing = _rules.get(resource_type)
    if existing is not None and existing is not rule:
        raise ValueError(f"a visibility rule for {resource_type!r} is already registered")
    _rules[resource_type] = rule


def unregister(resource_type: str) -> None:
    """Forget the rule of `resource_type` (tests)."""
    _rules.pop(resource_type, None)


def audience(session: Session, resource_type: str, resource_id: uuid.UUID) -> set[uuid.UUID]:
    """The organisations allowed to see the record; none when no rule is registered for its type."""
    rule = _rules.get(resource_type)
    if rule is None:
        return set()
    return {uuid.UUID(str(org)) for org in rule(session, resource_id)}


def registered() -> frozenset[str]:
    return frozenset(_rules)
