"""Documents after crypto-shredding, and the sealing's own guarantees (tampering, truncation, reordering)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api import privacy
from referral_api.cases.models import Case
from referral_api.documents import sealing
from referral_api.documents.models import Document
from referral_api.privacy.crypto import DecryptionFailed
from referral_api.privacy.keystore import unwrap
from referral_api.privacy.models import DataKey
from tests.case_helpers import open_case, transition
from tests.document_helpers import MARKER, pdf_bytes, upload, upload_ok
from tests.referral_data import referral_body

ERASE = {"reason": "person_request"}


def _stored_path(app, document_id: str):
    store = app.extensions["referral_api.documents.store"]
    return store._path(uuid.UUID(document_id).hex)


def _opens(key: bytes, blob: bytes, document: Document) -> bytes:
    return b"".join(sealing.open_chunks(key, io.BytesIO(blob), document_id=document.id,
                                        data_key_id=document.data_key_id))


def test_after_erasure_of_the_case_downloads_are_410_and_no_key_left_opens_the_chunks(
    client, world, app, session
):
    case_id = open_case(client, world)
    original = pdf_bytes(200_000)  # several chunks
    meta = upload_ok(client, world, "case", case_id, original, kind="passport_copy", note="note")
    document = session.get(Document, uuid.UUID(meta["id"]))
    path = _stored_path(app, meta["id"])
    sealed = path.read_bytes()
    keys = app.extensions[privacy.EXTENSION]
    key_before = keys.keystore.get(session, keys.keyring, document.data_key_id)
    assert _opens(key_before, sealed, document) == original  # the check below can succeed with the right key

    erased = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert erased.status_code == 200, erased.get_json()
    answer = client.get(meta["content_url"], headers=world.headers("coordinator"))
    assert answer.status_code == 410 and answer.mimetype == "application/problem+json"
    listed = client.get(f"/api/v1/cases/{case_id}/documents", headers=world.headers("coordinator")).get_json()
    assert [(d["id"], d["erased"], d["note"]) for d in listed["items"]] == [(meta["id"], True, None)]
    assert not path.exists()  # the chunks are deleted once the erasure commits
    session.expire_all()
    assert session.get(Document, document.id).discarded_at is not None

    # Every data key still alive, unwrapped by the master keys, and the master keys themselves: none opens it.
    live = session.execute(
        sa.select(DataKey.id, DataKey.wrapped_key, DataKey.master_key_id).where(DataKey.erased_at.is_(None))
    ).all()
    candidates = [unwrap(keys.keyring, row.id, row.wrapped_key, row.master_key_id) for row in live]
    candidates += list(keys.keyring.keys.values())
    assert candidates
    for key in candidates:
        with pytest.raises(DecryptionFailed):
            _opens(key, sealed, document)
    assert session.get(DataKey, document.data_key_id).wrapped_key is None


def test_erasing_a_referral_discards_its_documents(client, world, app):
    police = world.headers("police")
    submitted = client.post("/api/v1/referrals", json=referral_body(), headers=police).get_json()
    meta = upload_ok(client, world, "referral", submitted["id"], pdf_bytes(), who="police")
    assert _stored_path(app, meta["id"]).exists()
    url = f"/api/v1/referrals/{submitted['id']}/erase"
    erased = client.post(url, json=ERASE, headers=world.headers("admin"))
    assert erased.status_code == 200, erased.get_json()
    assert client.get(meta["content_url"], headers=world.headers("coordinator")).status_code == 410
    assert not _stored_path(app, meta["id"]).exists()


def test_uploading_to_an_erased_case_is_410(client, world):
    case_id = open_case(client, world)
    erased = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert erased.status_code == 200
    assert upload(client, world, "case", case_id, pdf_bytes()).status_code == 410


def test_the_retention_run_discards_the_documents_of_what_it_erases(client, world, app, session, run_cli):
    old_case = open_case(client, world, external_reference="P-OLD")
    young_case = open_case(client, world, external_reference="P-YOUNG")
    old = upload_ok(client, world, "case", old_case, pdf_bytes(), kind="consent_form")
    young = upload_ok(client, world, "case", young_case, pdf_bytes(), kind="consent_form")
    for case_id in (old_case, young_case):
        transition(client, world, case_id, "closed", details={"closure_reason": "reintegrated"})
    session.execute(sa.update(Case).where(Case.id == uuid.UUID(old_case))
                    .values(closed_at=datetime.now(UTC) - timedelta(days=6 * 366)))
    session.commit()
    result = run_cli("retention", "run", "--json")
    assert result.exit_code == 0, result.output
    assert not _stored_path(app, old["id"]).exists() and _stored_path(app, young["id"]).exists()
    assert client.get(old["content_url"], headers=world.headers("coordinator")).status_code == 410
    assert client.get(young["content_url"], headers=world.headers("coordinator")).status_code == 200


# ---- the sealing itself -------------------------------------------------------------------------------

KEY, DOC, DATA_KEY = bytes(range(32)), uuid.uuid4(), uuid.uuid4()
PLAIN = bytes(range(256)) * 40 + MARKER  # 10 KiB: 10 chunks of 1 KiB and a short one


def _frames(plain=PLAIN, doc=DOC) -> list[bytes]:
    return list(sealing.seal_chunks(KEY, memoryview(plain), document_id=doc, data_key_id=DATA_KEY,
                                    chunk_size=1024))


def _open(frames: list[bytes], doc=DOC) -> bytes:
    return b"".join(sealing.open_chunks(KEY, io.BytesIO(b"".join(frames)), document_id=doc,
                                        data_key_id=DATA_KEY, chunk_size=1024))


def test_sealed_chunks_round_trip_and_hide_the_plaintext():
    frames = _frames()
    assert len(frames) == 11 and MARKER not in b"".join(frames)
    assert _open(frames) == PLAIN


@pytest.mark.parametrize(
    "tamper",
    [
        lambda f: f[:-1],  # truncated at a chunk boundary: no last chunk
        lambda f: [*f[:3], f[4], f[3], *f[5:]],  # two chunks swapped
        lambda f: [*f, f[0]],  # a chunk appended after the last
        lambda f: [*f[:-1], f[-1][:-5]],  # the last chunk cut short
        lambda f: [f[0][:20] + bytes([f[0][20] ^ 1]) + f[0][21:], *f[1:]],  # one bit flipped
        lambda f: f[:2] + _frames(doc=uuid.uuid4())[2:3] + f[3:],  # a chunk of another document
    ],
    ids=["truncated", "reordered", "appended", "cut", "bit-flip", "moved"],
)
def test_tampered_sealed_files_do_not_open(tamper):
    with pytest.raises(DecryptionFailed):
        _open(tamper(_frames()))
