"""factory_boy factories; each part adds its own."""

from __future__ import annotations

import factory

from referral_api.organisations.models import Organisation, OrganisationKind, OrganisationStatus
from referral_api.referrals import services as referral_services
from referral_api.referrals.models import Referral
from referral_api.referrals.schemas import ReferralInSchema
from referral_api.referrals.vocab import RejectReason
from tests.referral_data import referral_body


class OrganisationFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = Organisation
        sqlalchemy_session_persistence = "flush"

    name = factory.Sequence(lambda n: f"Partner organisation {n}")
    kind = OrganisationKind.NGO
    country = "KR"
    status = OrganisationStatus.ACTIVE

    class Params:
        mgec = factory.Trait(
            kind=OrganisationKind.MGEC, country="MN", name="Mongolian Gender Equality Center"
        )
        embassy = factory.Trait(kind=OrganisationKind.EMBASSY)
        police = factory.Trait(kind=OrganisationKind.POLICE, country="MO")
        iom = factory.Trait(kind=OrganisationKind.IOM, country="KZ")
        suspended = factory.Trait(status=OrganisationStatus.SUSPENDED)


class ReferralFactory(factory.Factory):
    """A referral submitted through the service, as the API's POST does; traits move it on.

    `ReferralFactory(session=s, submitter=actor)` is submitted; `under_review=True`, `accepted=True`,
    `rejected=True` or `information_requested=True` also need `coordinator=` (an MGEC person's Actor).
    `fields={"person__family_name": ...}` changes the body (`referral_body(**fields)`; a dict, since
    factory_boy reads `a__b` keywords as its own).
    """

    class Meta:
        model = Referral

    class Params:
        under_review = factory.Trait(moves=("review",))
        accepted = factory.Trait(moves=("review", "accept"))
        rejected = factory.Trait(moves=("review", "reject"))
        information_requested = factory.Trait(moves=("review", "request_information"))

    moves: tuple[str, ...] = ()

    @classmethod
    def _create(cls, model_class, *, session, submitter, coordinator=None, moves=(), fields=None):
        body = ReferralInSchema().load(referral_body(**(fields or {})))
        referral = referral_services.submit(session, submitter, data=body)
        for move in moves:
            if coordinator is None:
                raise TypeError(f"ReferralFactory: the {move!r} move needs coordinator=")
            ref = str(referral.id)
            if move == "review":
                referral = referral_services.review(session, coordinator, ref=ref)
            else:
                move_to = getattr(referral_services, move)
                referral = move_to(session, coordinator, ref=ref, data=MOVE_BODIES[move])
        return referral

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise TypeError("ReferralFactory only creates: a referral exists once submitted")


MOVE_BODIES = {
    "accept": {},
    "reject": {"reason": RejectReason.NOT_TRAFFICKING, "note": "Not a trafficking case."},
    "request_information": {"questions": "Where is she now?"},
}
