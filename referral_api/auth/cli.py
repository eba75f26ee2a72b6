"""`referral-api clients ...` and `referral-api users ...`: OAuth clients and the people who log in."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app

from ..access import Role
from ..commands import domain_command, emit, json_option
from ..db import get_session
from ..errors import InvalidPayload
from . import services
from .models import GRANT_TYPES, ClientAuthMethod
from .schemas import ClientSchema, UserSchema

_client_out = ClientSchema()
_user_out = UserSchema()


def _client_payload(issued: services.IssuedClient) -> dict:
    payload = _client_out.dump(issued.client)
    if issued.client_secret:
        payload["client_secret"] = issued.client_secret
    return payload


def _client_text(issued: services.IssuedClient) -> str:
    lines = [f"client_id:     {issued.client.client_id}"]
    if issued.client_secret:
        lines.append(f"client_secret: {issued.client_secret}")
        lines.append("The secret is shown only now; store it safely.")
    return "\n".join(lines)


@click.group("clients")
def clients_group() -> None:
    """OAuth clients: the systems of MGEC and its partners."""


def _read_jwks(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload(errors={"jwks": [f"{path} is not UTF-8 text: a JWKS is a JSON file"]}) from None


@clients_group.command("create")
@click.option("--org", "org", required=True, help="The owning organisation's id or exact name.")
@click.option("--name", required=True, help="A name for people, e.g. 'Seoul embassy case system'.")
@click.option("--scopes", required=True,
              help='Space-separated scopes, e.g. "referrals:submit referrals:read"; referrals:review, '
                   "audit:read and admin only with the authorization_code grant (people's tokens).")
@click.option("--grant-types", default="client_credentials", show_default=True,
              help=f"Space-separated, of: {' '.join(GRANT_TYPES)}.")
@click.option("--redirect-uri", "redirect_uris", multiple=True,
              help="Redirect URI of an authorization_code client (repeatable).")
@click.option("--auth-method", type=click.Choice([m.value for m in ClientAuthMethod]),
              default=ClientAuthMethod.CLIENT_SECRET_BASIC.value, show_default=True)
@click.option("--jwks-uri", help="https URL of the client's public keys (private_key_jwt).")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file with the client's public JWKS (private_key_jwt).")
@click.option("--require-dpop", is_flag=True,
              help="Tokens only with a DPoP proof, bound to the proof's key (RFC 9449).")
@click.option("--dpop-nonce", is_flag=True,
              help="Proofs must carry the server's DPoP nonce (implies --require-dpop).")
@json_option
@domain_command
def create(org: str, name: str, scopes: str, grant_types: str, redirect_uris: tuple[str, ...],
           auth_method: str, jwks_uri: str | None, jwks_file: Path | None, require_dpop: bool,
           dpop_nonce: bool, as_json: bool) -> None:
    """Register a client; prints client_id and, for a secret client, client_secret, once."""
    if jwks_uri and jwks_file:
        raise click.UsageError("give --jwks-uri or --jwks-file, not both")
    issued = services.create_client(
        get_session(), organisation=org, name=name, scopes=scopes.split(),
        grant_types=grant_types.split(), redirect_uris=list(redirect_uris),
        auth_method=ClientAuthMethod(auth_method),
        jwks=_read_jwks(jwks_file), jwks_uri=jwks_uri,
        require_private_key_jwt=current_app.config["SETTINGS"].require_private_key_jwt,
        require_dpop=require_dpop, dpop_nonce=dpop_nonce,
    )
    emit(_client_payload(issued), as_json=as_json, text=_client_text(issued))


@clients_group.command("list")
@click.option("--org", "org", help="Only the clients of this organisation (id or exact name).")
@json_option
@domain_command
def list_(org: str | None, as_json: bool) -> None:
    """List clients (never their secrets)."""
    rows = _client_out.dump(services.list_clients(get_session(), organisation=org), many=True)
    text = "\n".join(f"{c['client_id']}  {c['token_endpoint_auth_method']:<19} "
                     f"{'revoked' if c['revoked'] else 'active ':<7}  {c['name']}\n"
                     f"    scopes: {' '.join(c['scopes'])}\n    grant types: {' '.join(c['grant_types'])}"
                     + ("\n    DPoP required" if c["require_dpop"] else "") for c in rows)
    emit({"items": rows}, as_json=as_json, text=text or "(no clients)")


@clients_group.command("revoke")
@click.argument("client_id")
@json_option
@domain_command
def revoke(client_id: str, as_json: bool) -> None:
    """Revoke CLIENT_ID: it cannot get tokens, and its tokens stop working
    within TOKEN_CACHE_SECONDS (default 5 s)."""
    client = services.revoke_client(get_session(), client_id)
    emit(_client_out.dump(client), as_json=as_json, text=f"revoked {client.client_id}")


@clients_group.command("rotate-secret")
@click.argument("client_id")
@json_option
@domain_command
def rotate_secret(client_id: str, as_json: bool) -> None:
    """Give CLIENT_ID a new secret, printed once; the old secret stops working at once, and the
    client's tokens within TOKEN_CACHE_SECONDS (default 5 s)."""
    issued = services.rotate_secret(get_session(), client_id)
    emit(_client_payload(issued), as_json=as_json, text=_client_text(issued))


@clients_group.command("docs-client")
@click.option("--origin", "origins", multiple=True, required=True,
              help="The origin serving /docs, e.g. https://api.example.org (repeat for several)")
@json_option
@domain_command
def docs_client(origins: tuple[str, ...], as_json: bool) -> None:
    """Register the public client of Swagger UI at /docs (authorization code with PKCE, no secret), or
    add origins to it; its redirect URI is each origin's /swaggerui/oauth2-redirect.html."""
    from .docs_ui import docs_redirect_uri, register_docs_client

    client = register_docs_client(get_session(), redirect_uris=[docs_redirect_uri(o) for o in origins],
                                  require_private_key_jwt=current_app.config["SETTINGS"].require_private_key_jwt)
    emit(_client_out.dump(client), as_json=as_json,
         text=f"docs client {client.client_id}  redirect URIs {client.redirect_uris}")


@click.group("users")
def users_group() -> None:
    """People who log in through /oauth/authorize."""


def _read_password() -> str:
    stdin = sys.stdin
    if stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return stdin.readline().rstrip("\r\n")


def _user_payload(issued: services.IssuedUser) -> dict:
    payload = _user_out.dump(issued.user)
    if issued.totp_uri:
        payload["totp_uri"] = issued.totp_uri
    return payload


def _user_text(issued: services.IssuedUser) -> str:
    lines = [f"{issued.user.id}  {issued.user.email}  {issued.user.role.value}"]
    if issued.totp_uri:
        lines += [f"totp_uri: {issued.totp_uri}",
                  "Add it to an authenticator app now; it is shown only this once."]
    return "\n".join(lines)


@users_group.command("create")
@click.option("--org", "org", required=True, help="The person's organisation (id or exact name).")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--name", default="", help="Full name.")
@click.option("--totp", is_flag=True, help="TOTP for a partner officer (embassy officers always have it).")
@json_option
@domain_command
def create_user(org: str, email: str, role: str, name: str, totp: bool, as_json: bool) -> None:
    """Create a person; reads the password from stdin; prints totp_uri once where the person needs one."""
    issued = services.create_user(get_session(), organisation=org, email=email, role=Role(role),
                                  password=_read_password(), name=name, totp=totp)
    emit(_user_payload(issued), as_json=as_json, text=_user_text(issued))


@users_group.command("deactivate")
@click.argument("user")
@json_option
@domain_command
def deactivate(user: str, as_json: bool) -> None:
    """Deactivate USER (id or e-mail): their tokens stop working within
    TOKEN_CACHE_SECONDS (default 5 s)."""
    u = services.deactivate_user(get_session(), user)
    emit(_user_out.dump(u), as_json=as_json, text=f"deactivated {u.email}")


@users_group.command("reset-totp")
@click.argument("user")
@json_option
@domain_command
def reset_totp(user: str, as_json: bool) -> None:
    """A new TOTP secret for USER (id or e-mail), their tokens revoked; prints the new totp_uri once."""
    issued = services.reset_totp(get_session(), user)
    emit(_user_payload(issued), as_json=as_json, text=_user_text(issued))
