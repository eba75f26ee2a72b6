"""OAuth clients of partner organisations: register, list, revoke, rotate a secret (each audited)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import ALL_SCOPES, PERSON_ONLY_SCOPES
from ..audit.actions import AuditAction
from ..db import utcnow
from ..errors import Conflict, InvalidPayload, NotFound
from ..organisations import services as org_services
from ..validators import one_line_problems
from . import trail
from .models import GRANT_TYPES, SECRET_METHODS, Client, ClientAuthMethod, Token, secret_hash


@dataclass(frozen=True)
class IssuedClient:
    client: Client
    client_secret: str | None


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


MAX_REDIRECT_URI = 500  # AuthorizationCode.redirect_uri


def redirect_uri_problem(uri: str) -> str | None:
    """What is wrong with a redirect URI (None: nothing): https to any host, or http to a loopback
    host exactly (http://localhost.evil.org is not loopback); no fragment (RFC 6749, 3.1.2); at most
    MAX_REDIRECT_URI characters (an authorization code keeps its redirect URI in a column that long)."""
    if len(uri) > MAX_REDIRECT_URI:
        return f"a redirect URI has at most {MAX_REDIRECT_URI} characters"
    try:
        parts = urlsplit(uri)
        host, _port = parts.hostname, parts.port  # a malformed port raises here
    except ValueError:
        return f"{uri!r} is not a URL"
    if parts.username is not None or parts.password is not None:
        return f"{uri!r} must not carry a user name or password"
    if not (parts.scheme == "https" and host) and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return f"{uri!r} must be https (or http on 127.0.0.1, localhost or [::1])"
    if parts.fragment or uri.endswith("#"):
        return f"{uri!r} must have no fragment"
    return None


def _check_jwks(jwks: str | None) -> None:
    if jwks is None:
        return
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        key_set = KeySet.import_key_set(json.loads(jwks))
    except JoseError as exc:  # a key parameter missing or malformed, no key at all: joserfc says which
        raise InvalidPayload(errors={"jwks": [f"not a JSON Web Key Set: {exc.description}"]}) from None
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise InvalidPayload(errors={"jwks": [f"not a JSON Web Key Set: {type(exc).__name__}"]}) from None
    if any(key.is_private for key in key_set.keys):
        raise InvalidPayload(errors={"jwks": ["contains a private key; register the public keys only"]})
    if any(key.key_type == "oct" for key in key_set.keys):
        raise InvalidPayload(errors={"jwks": ["symmetric keys are refused; use RSA, EC or OKP keys"]})


def _client_problems(*, scopes: list[str], grant_types: list[str], redirect_uris: list[str],
                     auth_method: ClientAuthMethod, jwks: str | None, jwks_uri: str | None,
                     require_private_key_jwt: bool) -> dict[str, list[str]]:
    """What is wrong with a client's registration, by field (empty when nothing is)."""
    problems: dict[str, list[str]] = {}
    if any("," in scope for scope in scopes):
        scopes = [part for scope in scopes for part in scope.split(",") if part]
        problems["scopes"] = [f"separate scopes with spaces, not commas: \"{' '.join(scopes)}\""]
    elif unknown := sorted(set(scopes) - ALL_SCOPES):
        problems["scopes"] = [f"unknown scopes: {' '.join(unknown)}"]
    elif "authorization_code" not in grant_types and (
            person_only := sorted(set(scopes) & PERSON_ONLY_SCOPES)):
        problems["scopes"] = [f"{' '.join(person_only)} only ever go to a person's token (authorization_code "
                              "grant); a client_credentials client could never use them"]
    if not scopes:
        problems["scopes"] = ["name at least one scope"]
    if unknown := sorted(set(grant_types) - set(GRANT_TYPES)):
        problems["grant_types"] = [f"unsupported grant types: {' '.join(unknown)}"]
    if "authorization_code" in grant_types and not redirect_uris:
        problems["redirect_uris"] = ["an authorization_code client needs at least one redirect URI"]
    for uri in redirect_uris:
        if problem := redirect_uri_problem(uri):
            problems.setdefault("redirect_uris", []).append(problem)
    if auth_method is ClientAuthMethod.NONE and set(grant_types) != {"authorization_code"}:
        problems["grant_types"] = ["a public client (auth method none) takes the authorization code only"]
    if auth_method is ClientAuthMethod.PRIVATE_KEY_JWT:
        if bool(jwks) == bool(jwks_uri):
            problems["jwks"] = ["private_key_jwt needs exactly one of a JWKS or a JWKS URI"]
        if jwks_uri and not jwks_uri.startswith("https://"):
            problems["jwks_uri"] = ["must be an https:// URL"]
    elif require_private_key_jwt:
        public = auth_method is ClientAuthMethod.NONE
        kind = "a public client (auth method none)" if public else "a secret client"
        problems["auth_method"] = [
            f"this deployment requires private_key_jwt (OAUTH_REQUIRE_PRIVATE_KEY_JWT): {kind} is refused"]
    elif jwks or jwks_uri:
        problems["jwks"] = ["a JWKS is only for private_key_jwt clients"]
    return problems


def create_client(
    session: Session,
    *,
    organisation: str,
    name: str,
    scopes: list[str],
    grant_types: list[str] | None = None,
    redirect_uris: list[str] | None = None,
    auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC,
    jwks: str | None = None,
    jwks_uri: str | None = None,
    require_private_key_jwt: bool = False,
    require_dpop: bool = False,
    dpop_nonce: bool = False,
    actor: Any = None,
) -> IssuedClient:
    """Register a client of `organisation` (id or name); a secret client's secret is returned once.
    `actor`: the admin who acts in the console (None: the command line)."""
    org = org_services.find(session, organisation)
    grant_types = grant_types or ["client_credentials"]
    redirect_uris = redirect_uris or []
    problems = _client_problems(scopes=scopes, grant_types=grant_types, redirect_uris=redirect_uris,
                                auth_method=auth_method, jwks=jwks, jwks_uri=jwks_uri,
                                require_private_key_jwt=require_private_key_jwt)
    if name_problems := one_line_problems(name, max_len=Client.__table__.c.name.type.length):
        problems["name"] = name_problems
    if problems:
        raise InvalidPayload(errors=problems)
    _check_jwks(jwks)

    secret = secrets.token_urlsafe(32) if auth_method in SECRET_METHODS else None
    client = Client(
        client_id="cl_" + secrets.token_urlsafe(18),
        name=name,
        organisation_id=org.id,
        client_secret_hash=secret_hash(secret) if secret else None,
        token_endpoint_auth_method=auth_method,
        jwks=jwks,
        jwks_uri=jwks_uri,
        scope=" ".join(sorted(set(scopes))),
        grant_types=" ".join(g for g in GRANT_TYPES if g in grant_types),
        redirect_uris=" ".join(redirect_uris),
        require_dpop=require_dpop or dpop_nonce,
        dpop_nonce=dpop_nonce,
    )
    session.add(client)
    session.flush()
    trail.record(session, AuditAction.AUTH_CLIENT_CREATE, resource_type="client", resource_id=client.id,
                 details={"client_id": client.client_id, "organisation_id": org.id,
                          "auth_method": auth_method.value, "scope": client.scope,
                          "grant_types": client.grant_types, "require_dpop": client.require_dpop},
                 actor=actor)
    session.commit()
    return IssuedClient(client, secret)


def add_redirect_uris(session: Session, client: Client, redirect_uris: list[str], *,
                      actor: Any = None) -> Client:
    """Add redirect URIs to a client (those it has are skipped), checked as at registration and
    audited with the URIs before and after; commits. Adding nothing records nothing."""
    if problems := [p for uri in redirect_uris if (p := redirect_uri_problem(uri))]:
        raise InvalidPayload(errors={"redirect_uris": problems})
    before = client.redirect_uris.split()
    after = before + [u for u in dict.fromkeys(redirect_uris) if u not in before]
    if after != before:
        client.redirect_uris = " ".join(after)
        trail.record(session, AuditAction.AUTH_CLIENT_UPDATE, resource_type="client", resource_id=client.id,
                     details={"client_id": client.client_id, "redirect_uris_before": before,
                              "redirect_uris_after": after}, actor=actor)
    session.commit()
    return client


def find_client(session: Session, client_id: str) -> Client:
    client = session.scalar(sa.select(Client).where(Client.client_id == client_id))
    if client is None:
        raise NotFound(f"No client with client_id {client_id!r}.")
    return client


def list_clients(session: Session, *, organisation: str | None = None) -> list[Client]:
    query = sa.select(Client).order_by(Client.created_at, Client.client_id)
    if organisation:
        query = query.where(Client.organisation_id == org_services.find(session, organisation).id)
    return list(session.scalars(query))


def revoke_tokens(session: Session, where: Any) -> None:
    """Revoke every live token matching `where` (a client revoked or given a new secret, a person
    deactivated)."""
    now = utcnow()
    session.execute(sa.update(Token).where(where, Token.access_revoked_at.is_(None))
                    .values(access_revoked_at=now))
    session.execute(sa.update(Token).where(where, Token.refresh_token_hash.is_not(None),
                                           Token.refresh_revoked_at.is_(None))
                    .values(refresh_revoked_at=now))


def revoke_client(session: Session, client_id: str, *, actor: Any = None) -> Client:
    """Revoke a client: it cannot authenticate, and its tokens stop
    working within TOKEN_CACHE_SECONDS (default 5 s)."""
    client = find_client(session, client_id)
    client.revoked_at = client.revoked_at or utcnow()
    revoke_tokens(session, Token.client_pk == client.id)
    trail.record(session, AuditAction.AUTH_CLIENT_REVOKE, resource_type="client", resource_id=client.id,
                 details={"client_id": client.client_id}, actor=actor)
    session.commit()
    return client


def rotate_secret(session: Session, client_id: str, *, actor: Any = None) -> IssuedClient:
    """Give a secret client a new secret (shown once); the old one stops working at once, and the
    client's tokens are revoked (a secret is rotated because it leaked: whoever holds it may hold tokens
    got with it), stopping within TOKEN_CACHE_SECONDS (default 5 s)."""
    client = find_client(session, client_id)
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise Conflict("This client authenticates with private_key_jwt; it has no secret to rotate.")
    if client.is_revoked:
        raise Conflict("This client is revoked.")
    secret = secrets.token_urlsafe(32)
    client.client_secret_hash = secret_hash(secret)
    revoke_tokens(session, Token.client_pk == client.id)
    trail.record(session, AuditAction.AUTH_CLIENT_ROTATE_SECRET, resource_type="client",
                 resource_id=client.id, details={"client_id": client.client_id}, actor=actor)
    session.commit()
    return IssuedClient(client, secret)
