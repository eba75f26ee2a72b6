"""A small world of organisations, clients and people, with real tokens from the real endpoints.

Partner systems get theirs by client credentials at /oauth/token; MGEC people by the login form and
the authorization code with PKCE. Tests then call the API with these bearer tokens, as partners do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from referral_api.access import ALL_SCOPES, CLIENT_CREDENTIALS_SCOPES, Role
from referral_api.organisations.models import Organisation, OrganisationKind
from tests import oauth_helpers as h

PARTNER_SCOPES = " ".join(sorted(CLIENT_CREDENTIALS_SCOPES))
PEOPLE_SCOPES = " ".join(sorted(ALL_SCOPES))

# who -> (organisation key, role or None for a system with client credentials)
ACTORS = {
    "coordinator": ("mgec", Role.MGEC_COORDINATOR),
    "coordinator2": ("mgec", Role.MGEC_COORDINATOR),
    "caseworker": ("mgec", Role.MGEC_CASEWORKER),
    "admin": ("mgec", Role.MGEC_ADMIN),
    "hotline": ("mgec", None),
    "police": ("police", None),
    "embassy": ("embassy", None),
    "iom": ("iom", None),
    "ngo": ("ngo", None),
    "police_officer": ("police", Role.PARTNER_OFFICER),
}
ORGS = {
    "mgec": ("Mongolian Gender Equality Center", OrganisationKind.MGEC, "MN"),
    "police": ("Public Security Police Force of Macau", OrganisationKind.POLICE, "MO"),
    "embassy": ("Embassy of Mongolia in Seoul", OrganisationKind.EMBASSY, "KR"),
    "iom": ("IOM Mission in Kazakhstan", OrganisationKind.IOM, "KZ"),
    "ngo": ("FIZ Zurich", OrganisationKind.NGO, "CH"),
}


@dataclass
class World:
    http: object
    session: object
    orgs: dict[str, Organisation] = field(default_factory=dict)
    users: dict[str, object] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, tuple] = field(default_factory=dict)

    def token(self, who: str, scope: str | None = None) -> str:
        """A bearer token of `who` (cached per scope)."""
        key = f"{who}|{scope}"
        if key not in self._tokens:
            self._tokens[key] = self._fetch(who, scope)
        return self._tokens[key]

    def headers(self, who: str, scope: str | None = None, **extra: str) -> dict[str, str]:
        return {**h.bearer(self.token(who, scope)), **extra}

    def _client(self, org_key: str, person: bool) -> tuple:
        key = f"{org_key}|{person}"
        if key not in self._clients:
            org = self.orgs[org_key]
            if person:
                self._clients[key] = h.secret_client(
                    self.session,
                    org,
                    scopes=PEOPLE_SCOPES,
                    grant_types="authorization_code refresh_token",
                    redirect_uris=[h.REDIRECT_URI],
                )
            else:
                self._clients[key] = h.secret_client(self.session, org, scopes=PARTNER_SCOPES)
        return self._clients[key]

    def _fetch(self, who: str, scope: str | None) -> str:
        org_key, role = ACTORS[who]
        client, secret = self._client(org_key, role is not None)
        if role is None:
            response = self.http.post(
                "/oauth/token",
                headers=h.basic(client.client_id, secret),
                data={"grant_type": "client_credentials", "scope": scope or PARTNER_SCOPES},
            )
            assert response.status_code == 200, response.get_json()
            return response.get_json()["access_token"]
        user, totp = h.person(self.session, self.orgs[org_key], role)
        self.users[who] = user
        return person_token(self.http, client, secret, user, totp, scope or PEOPLE_SCOPES)


def person_token(http, client, secret, user, totp, scope: str = PEOPLE_SCOPES) -> str:
    """A person's bearer token through `client`: the login form, then the authorization code with PKCE."""
    verifier, challenge = h.pkce_pair()
    login = h.login_with_test_client(
        http,
        h.authorize_params(client.client_id, challenge, scope=scope),
        email=user.email,
        totp_code=totp.now() if totp else "",
    )
    assert login.status_code == 302, login.get_data(as_text=True)
    code = h.code_from(login.headers["Location"])["code"]
    response = http.post(
        "/oauth/token",
        headers=h.basic(client.client_id, secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": h.REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def build(http, session) -> World:
    world = World(http=http, session=session)
    for key, (name, kind, country) in ORGS.items():
        org = Organisation(name=name, kind=kind, country=country)
        session.add(org)
        world.orgs[key] = org
    session.commit()
    return world
