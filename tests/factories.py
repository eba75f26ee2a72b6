"""factory_boy factories; each part adds its own."""

from __future__ import annotations

import factory

from referral_api.organisations.models import Organisation, OrganisationKind, OrganisationStatus


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
