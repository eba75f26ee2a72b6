"""Documents on the console's referral and case pages: list, upload, download, delete (issue 18)."""

from __future__ import annotations

import io
import re
from html import unescape

import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.documents.models import Document
from tests import console_helpers as c
from tests.case_helpers import open_case
from tests.console_helpers import console, signed_in  # noqa: F401  (the fixture and its sign-in)
from tests.document_helpers import EXECUTABLE, pdf_bytes, upload
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)

MIB = 1024 * 1024


def _post(client, path: str, data: bytes, *, token: str | None, kind: str | None = "consent_form", note=None):
    form = {"file": (io.BytesIO(data), "scan.pdf")}
    if kind is not None:
        form["kind"] = kind
    if token is not None:
        form["csrf_token"] = token
    if note is not None:
        form["note"] = note
    return client.post(f"{path}/documents", data=form, content_type="multipart/form-data")


def _count(session) -> int:
    session.expire_all()
    return session.scalar(sa.select(sa.func.count()).select_from(Document))


def _signed_in_case(client, session, console) -> tuple[str, str]:
    case_id = open_case(client, console, external_reference="DOC-1")
    signed_in(client, session, console)
    path = f"/console/cases/{case_id}"
    return path, c.csrf_of(client.get(path).get_data(as_text=True))


def test_upload_list_download_and_delete_on_the_case_page(client, session, console):
    path, token = _signed_in_case(client, session, console)
    original = pdf_bytes()
    added = _post(client, path, original, token=token, note="Signed at the embassy")
    assert added.status_code == 303 and added.headers["Location"].endswith(path + "#documents")
    html = client.get(path).get_data(as_text=True)
    assert "Consent form" in html and "Signed at the embassy" in html and "1 KB" in html
    links = re.findall(r'href="(/console/documents/[^"]+/content)"', html)
    assert len(links) == 1
    got = client.get(unescape(links[0]))
    assert got.status_code == 200 and got.data == original
    assert got.headers["Content-Disposition"].startswith('attachment; filename="consent_form-')
    assert got.headers["X-Content-Type-Options"] == "nosniff" and got.headers["Cache-Control"] == "no-store"
    assert got.mimetype == "application/pdf"
    document_id = links[0].split("/")[3]
    session.expire_all()
    downloads = session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.action == "documents:document:download", AuditEvent.resource_id == document_id
        )
    ).all()
    assert len(downloads) == 1  # through the documents service: audited
    gone = client.post(f"{path}/documents/{document_id}/delete", data={"csrf_token": token})
    assert gone.status_code == 303 and _count(session) == 0
    assert "No document yet." in client.get(path).get_data(as_text=True)


def test_upload_on_the_referral_page(client, session, console):
    signed_in(client, session, console)
    path = f"/console/referrals/{console.referral.id}"
    token = c.csrf_of(client.get(path).get_data(as_text=True))
    added = _post(client, path, pdf_bytes(), token=token, kind="police_report")
    assert added.status_code == 303
    html = client.get(path).get_data(as_text=True)
    assert "Police report" in html and "/content" in html and _count(session) == 1


def test_a_wrong_type_is_said_on_the_page_and_nothing_is_stored(client, session, console):
    path, token = _signed_in_case(client, session, console)
    refused = _post(client, path, EXECUTABLE, token=token)
    assert refused.status_code == 415
    html = refused.get_data(as_text=True)
    assert "This type of file is not accepted" in html and 'id="documents"' in html
    assert _count(session) == 0


def test_a_missing_kind_is_named_on_the_page(client, session, console):
    path, token = _signed_in_case(client, session, console)
    refused = _post(client, path, pdf_bytes(), token=token, kind=None)
    assert refused.status_code == 422
    assert 'id="error-document-kind"' in refused.get_data(as_text=True) and _count(session) == 0


def test_an_upload_without_or_with_a_wrong_csrf_token_is_400(client, session, console):
    path, token = _signed_in_case(client, session, console)
    assert _post(client, path, pdf_bytes(), token=None).status_code == 400
    assert _post(client, path, pdf_bytes(), token="0" * len(token)).status_code == 400
    assert _count(session) == 0
    document = _post(client, path, pdf_bytes(), token=token)
    assert document.status_code == 303 and _count(session) == 1
    html = client.get(path).get_data(as_text=True)
    document_id = re.findall(r"/console/documents/([^/]+)/content", html)[0]
    kept = client.post(f"{path}/documents/{document_id}/delete", data={})
    assert kept.status_code == 400 and _count(session) == 1  # deleting needs the token too


def test_a_file_over_the_limit_is_said_in_words(client, session, console):
    path, token = _signed_in_case(client, session, console)
    refused = _post(client, path, pdf_bytes(21 * MIB), token=token)
    assert refused.status_code == 413
    assert "The file is too large" in refused.get_data(as_text=True) and _count(session) == 0
    just_over = _post(client, path, pdf_bytes(20 * MIB + 1), token=token)  # within the multipart envelope
    assert just_over.status_code == 413 and _count(session) == 0


def test_a_caseworker_is_neither_offered_nor_allowed_documents_on_a_referral(app, client, session, partners):
    """A caseworker reads referrals but adds or deletes none of their documents: no controls on the page,
    and a form posted anyway is the console's 403 page (the service's InsufficientScope), never a 500."""
    added = upload(client, partners, "referral", str(partners.referral.id), pdf_bytes())
    assert added.status_code == 201, added.get_json()
    document_id = added.get_json()["id"]
    http = sign_in_as(app, session, partners, "caseworker")
    path = f"/console/referrals/{partners.referral.id}"
    html = http.get(path).get_data(as_text=True)
    assert "Add a document" not in html and "Delete the document" not in html
    token = c.csrf_of(html)
    refused = _post(http, path, pdf_bytes(), token=token)
    assert refused.status_code == 403 and "This page is not for your role" in refused.get_data(as_text=True)
    before = _count(session)
    deleted = http.post(f"{path}/documents/{document_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 403
    assert _count(session) == before
