"""Documents: round trips, metadata stripped from images, types by their bytes, size limit, events."""

from __future__ import annotations

import io
import re
import uuid

import pytest
import sqlalchemy as sa
from PIL import Image

from referral_api.audit.models import AuditEvent
from referral_api.documents.models import Document
from referral_api.events import OutboxEvent
from referral_api.webhooks import visibility as webhook_visibility
from tests.case_helpers import add_participant, open_case
from tests.document_helpers import (
    CAMERA_SERIAL,
    EXECUTABLE,
    SAMPLES,
    image_bytes,
    pdf_bytes,
    upload,
    upload_ok,
)

MIB = 1024 * 1024


def _store_files(app) -> set[str]:
    root = app.extensions["referral_api.documents.store"].root
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _count(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Document))


@pytest.mark.parametrize("media_type", list(SAMPLES))
def test_round_trip_of_each_accepted_type(client, world, media_type):
    case_id = open_case(client, world)
    make, name = SAMPLES[media_type]
    original = make()
    meta = upload_ok(client, world, "case", case_id, original, kind="passport_copy", name=name)
    assert meta["content_type"] == media_type and meta["kind"] == "passport_copy"
    assert meta["metadata_stripped"] is (media_type != "application/pdf")
    answer = client.get(meta["content_url"], headers=world.headers("coordinator"))
    assert answer.status_code == 200
    assert answer.mimetype == media_type
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    disposition = answer.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="passport_copy-[0-9a-f]{12}\.(pdf|jpg|png|heic)"', disposition)
    assert name.split(".")[0] not in disposition
    body = answer.get_data()
    assert len(body) == meta["size"] == int(answer.headers["Content-Length"])
    if media_type == "application/pdf":
        assert body == original  # stored as sent
    else:
        image = Image.open(io.BytesIO(body))
        assert image.size == Image.open(io.BytesIO(original)).size
        assert image.format == {"image/jpeg": "JPEG", "image/png": "PNG", "image/heic": "HEIF"}[media_type]
        assert not image.getexif()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "HEIF"])
def test_an_image_comes_back_without_any_exif(client, world, fmt):
    case_id = open_case(client, world)
    original = image_bytes(fmt)
    before = Image.open(io.BytesIO(original)).getexif()
    assert before.get_ifd(0x8825) and before[0xA431] == CAMERA_SERIAL  # the sample does carry GPS and serial
    meta = upload_ok(client, world, "case", case_id, original, kind="identification_photo", name="x.jpg")
    body = client.get(meta["content_url"], headers=world.headers("coordinator")).get_data()
    after = Image.open(io.BytesIO(body))
    assert len(after.getexif()) == 0 and not after.getexif().get_ifd(0x8825)
    assert after.info.get("exif") in (None, b"")
    assert CAMERA_SERIAL.encode() not in body and b"Canon" not in body


def test_a_jpeg_rotated_by_exif_comes_back_upright(client, world):
    case_id = open_case(client, world)
    image, exif = Image.new("RGB", (80, 40), (0, 0, 0)), Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    meta = upload_ok(client, world, "case", case_id, out.getvalue(), kind="identification_photo")
    body = client.get(meta["content_url"], headers=world.headers("coordinator")).get_data()
    assert Image.open(io.BytesIO(body)).size == (40, 80)


def test_a_renamed_executable_is_refused_with_415_naming_what_is_allowed(client, world, app, session):
    case_id = open_case(client, world)
    before, files = _count(session), _store_files(app)
    answer = upload(client, world, "case", case_id, EXECUTABLE, name="passport.pdf")
    assert answer.status_code == 415, answer.get_json()
    problem = answer.get_json()
    assert "application/pdf, image/jpeg, image/png, image/heic" in problem["errors"]["file"][0]
    assert _count(session) == before and _store_files(app) == files


def test_a_png_named_like_a_pdf_is_stored_as_png(client, world):
    case_id = open_case(client, world)
    meta = upload_ok(client, world, "case", case_id, image_bytes("PNG"), name="report.pdf")
    assert meta["content_type"] == "image/png"


def test_21_mb_is_413_and_leaves_nothing_behind(client, world, app, session):
    case_id = open_case(client, world)
    before, files = _count(session), _store_files(app)
    answer = upload(client, world, "case", case_id, pdf_bytes(21 * MIB))
    assert answer.status_code == 413, answer.get_json()
    # just over the limit, within the multipart envelope: the file's own size is checked too
    answer = upload(client, world, "case", case_id, pdf_bytes(20 * MIB + 1))
    assert answer.status_code == 413, answer.get_json()
    assert _count(session) == before and _store_files(app) == files
    assert not session.scalar(sa.select(OutboxEvent).where(OutboxEvent.type == "document.added"))


def test_bad_uploads_are_problems_naming_the_field(client, world):
    case_id = open_case(client, world)
    url = f"/api/v1/cases/{case_id}/documents"
    assert upload(client, world, "case", case_id, pdf_bytes(), kind="selfie").get_json()["errors"].keys() == {
        "kind"}
    assert "note" in upload(client, world, "case", case_id, pdf_bytes(), note="").get_json()["errors"]
    assert "file" in upload(client, world, "case", case_id, b"").get_json()["errors"]
    missing = client.post(url, data={"kind": "other"}, headers=world.headers("coordinator"),
                          content_type="multipart/form-data")
    assert missing.status_code == 422 and "file" in missing.get_json()["errors"]
    as_json = client.post(url, json={"kind": "other"}, headers=world.headers("coordinator"))
    assert as_json.status_code == 415 and "Content-Type" in as_json.get_json()["errors"]
    broken = client.post(url, data=b"--x\r\nnonsense", headers=world.headers("coordinator"),
                         content_type="multipart/form-data; boundary=x")
    assert broken.status_code == 400 and "body" in broken.get_json()["errors"]  # not multipart: malformed
    assert upload(client, world, "case", case_id, pdf_bytes()).status_code == 201  # the same, well formed
    jpeg_lie = upload(client, world, "case", case_id, b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    assert jpeg_lie.status_code == 422 and "file" in jpeg_lie.get_json()["errors"]


def test_listing_shows_metadata_and_the_note_only_to_staff(client, world):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    upload_ok(client, world, "case", case_id, pdf_bytes(), kind="travel_document", note="Issued in Seoul")
    staff = client.get(f"/api/v1/cases/{case_id}/documents", headers=world.headers("coordinator")).get_json()
    embassy = client.get(f"/api/v1/cases/{case_id}/documents", headers=world.headers("embassy")).get_json()
    assert [d["note"] for d in staff["items"]] == ["Issued in Seoul"]
    assert [d["note"] for d in embassy["items"]] == [None]
    assert staff["items"][0]["erased"] is False


def test_document_added_is_a_thin_event_under_the_parents_visibility(client, world, session):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    meta = upload_ok(client, world, "case", case_id, pdf_bytes(), kind="police_report", note="secret note")
    event = session.scalar(sa.select(OutboxEvent).where(OutboxEvent.type == "document.added"))
    assert event.resource_type == "document" and str(event.resource_id) == meta["id"]
    assert event.payload["case_id"] == case_id and event.payload["kind"] == "police_report"
    assert "secret note" not in str(event.payload)
    seeing = webhook_visibility.audience(session, "document", uuid.UUID(meta["id"]))
    assert seeing == webhook_visibility.audience(session, "case", uuid.UUID(case_id))
    assert world.orgs["embassy"].id in seeing and world.orgs["ngo"].id not in seeing


def test_every_download_is_audited(client, world, session):
    case_id = open_case(client, world)
    meta = upload_ok(client, world, "case", case_id, pdf_bytes())
    for _ in range(2):
        assert client.get(meta["content_url"], headers=world.headers("coordinator")).status_code == 200
    downloads = session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "documents:document:download",
                                    AuditEvent.resource_id == meta["id"])
    ).all()
    assert len(downloads) == 2


def test_staff_delete_a_document_and_its_stored_chunks(client, world, app, session):
    case_id = open_case(client, world)
    meta = upload_ok(client, world, "case", case_id, pdf_bytes())
    assert uuid.UUID(meta["id"]).hex in _store_files(app)
    answer = client.delete(f"/api/v1/documents/{meta['id']}", headers=world.headers("coordinator"))
    assert answer.status_code == 204
    assert uuid.UUID(meta["id"]).hex not in _store_files(app)
    assert client.get(meta["content_url"], headers=world.headers("coordinator")).status_code == 404
