"""Who sees which document: the parent record's own view, and the person's consent for personal kinds.

Nothing here re-decides who sees a referral or a case: the parent is loaded through its own part's
`load` (404 and the audited denial included), and consent is `cases.persons.covered`, the rule the
case view applies to the person's fields (a referral carries the same `share_with`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import Actor, OrganisationRef
from ..cases import persons
from ..cases import services as case_services
from ..cases import visibility as case_visibility
from ..cases.models import Case
from ..organisations.models import Organisation
from ..referrals import services as referral_services
from ..referrals import visibility as referral_visibility
from ..referrals.models import Referral
from ..webhooks import visibility as webhook_visibility
from .models import PERSONAL_KINDS, Document, DocumentKind, ParentType


@dataclass(frozen=True)
class Parent:
    """The referral or case a document belongs to, as the caller sees it."""

    type: ParentType
    record: Referral | Case
    staff: bool
    # The parent's view shows the caller the person at all (a referral's status-only view does not).
    personal_view: bool

    @property
    def erased(self) -> bool:
        return self.record.erased_at is not None

    def column(self) -> sa.ColumnElement[bool]:
        """The documents of this parent, as a query condition."""
        if self.type is ParentType.CASE:
            return Document.case_id == self.record.id
        return Document.referral_id == self.record.id


def load_parent(
    session: Session, actor: Actor, parent_type: ParentType, ref: str, *, for_update: bool = False
) -> Parent:
    """The parent `ref` (id or reference) through its own part's rules: 404 when the caller may not see it."""
    if parent_type is ParentType.CASE:
        case, seen, _role = case_services.load(session, actor, ref, for_update=for_update)
        return _parent(case, seen)
    referral, seen = referral_services.load(session, actor, ref=ref, for_update=for_update)
    return _parent(referral, seen)


def _parent(record: Referral | Case, seen: case_visibility.Audience | referral_visibility.Audience) -> Parent:
    """The parent as a caller sees it, from the view (`Audience`) its own part's rule gave."""
    if isinstance(record, Case):
        return Parent(ParentType.CASE, record, seen is case_visibility.Audience.STAFF, True)
    return Parent(
        ParentType.REFERRAL,
        record,
        seen is referral_visibility.Audience.STAFF,
        seen is not referral_visibility.Audience.STATUS,
    )


def consent_covers(actor: Actor, parent: Parent) -> bool:
    """Whether the person's consent covers the caller's kind of organisation (MGEC always)."""
    return persons.covered(actor, parent.record)  # type: ignore[arg-type]  # a referral has share_with too


def may_see(actor: Actor, parent: Parent, kind: DocumentKind, *, uploaded_by: uuid.UUID) -> bool:
    """A document of `kind` on `parent`: the parent's view allows it, and consent for personal kinds.

    On a referral the submitter sees what it sent (docs/domain.md), so its own personal documents too.
    """
    if parent.staff:
        return True
    if not parent.personal_view:
        return False
    if kind not in PERSONAL_KINDS or consent_covers(actor, parent):
        return True
    return parent.type is ParentType.REFERRAL and uploaded_by == actor.organisation_id


def visible_filter(actor: Actor, parent: Parent) -> sa.ColumnElement[bool]:
    """The listing condition matching `may_see` (a query filter, never a post-filter)."""
    if parent.staff:
        return sa.true()
    if not parent.personal_view:
        return sa.false()
    if consent_covers(actor, parent):
        return sa.true()
    plain = Document.kind.not_in(sorted(PERSONAL_KINDS))
    if parent.type is ParentType.REFERRAL:
        return sa.or_(plain, Document.uploaded_by_organisation_id == actor.organisation_id)
    return plain


def organisations_seeing(session: Session, document_id: uuid.UUID) -> set[uuid.UUID]:
    """For webhooks: exactly the organisations the document routes would show the document to.

    The candidates are those who see the parent (the parent's own rule, MGEC included); each is then
    put through the routes' own checks: the parent's view of it (a referral's status-only view shows
    no documents) and `may_see` (consent for personal kinds, the uploader on a referral).
    """
    document = session.get(Document, document_id)
    if document is None:
        return set()
    record: Referral | Case | None
    if document.case_id is not None:
        record = session.get(Case, document.case_id)
        candidates = case_visibility.organisations_seeing(session, document.case_id)
    else:
        record = session.get(Referral, document.referral_id)
        candidates = referral_visibility.organisations_seeing(session, document.referral_id)
    if record is None or not candidates:
        return set()
    organisations = session.execute(
        sa.select(Organisation.id, Organisation.kind).where(Organisation.id.in_(candidates))
    ).all()
    seeing = set()
    for organisation_id, kind in organisations:
        actor = _organisation_actor(organisation_id, str(kind))
        if isinstance(record, Case):
            seen = case_visibility.audience(actor, case_visibility.role_of(session, actor, record.id))
        else:
            seen = referral_visibility.audience(actor, record)
        if seen is not None and may_see(actor, _parent(record, seen), document.kind,
                                        uploaded_by=document.uploaded_by_organisation_id):
            seeing.add(organisation_id)
    return seeing


def _organisation_actor(organisation_id: uuid.UUID, kind: str) -> Actor:
    """Any caller of an organisation, as the visibility rules see it (they look at the organisation only)."""
    return Actor(organisation=OrganisationRef(organisation_id, kind), client_id="", user_id=None, role=None,
                 scopes=frozenset())


webhook_visibility.register("document", organisations_seeing)
