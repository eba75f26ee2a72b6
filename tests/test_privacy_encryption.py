"""Envelope encryption on a throwaway model: round trip, nonces, moved or altered ciphertexts,
rotation, crypto-shredding, a separate key store."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import date

import pytest
import sqlalchemy as sa

from referral_api import errors, privacy
from referral_api.db import database
from referral_api.privacy import KeyRing, KeyStore, Privacy, get_privacy
from referral_api.privacy.crypto import DecryptionFailed
from referral_api.privacy.keys import write_key_file
from referral_api.privacy.models import DataKey
from referral_api.privacy.rotation import rewrap_all
from referral_api.progress import Progress
from tests.throwaway import Person

people = Person.__table__


def _fresh(session, person_id):
    """The record as a new request would load it (nothing cached from writing it)."""
    session.expunge_all()
    return session.get(Person, person_id)


def _raw(session, person_id, column):
    return session.execute(sa.select(people.c[column]).where(people.c.id == person_id)).scalar_one()


def test_round_trip_of_str_date_and_list(psession):
    p = Person(family_name="Батбаяр", given_name="Энхтуяа", birth_date=date(1999, 3, 4),
               aliases=["Bataa", {"note": "Улаанбаатар"}], label="control")
    psession.add(p)
    assert p.family_name == "Батбаяр"  # readable before the flush too
    psession.commit()
    loaded = _fresh(psession, p.id)
    assert loaded.family_name == "Батбаяр" and loaded.given_name == "Энхтуяа"
    assert loaded.birth_date == date(1999, 3, 4)
    assert loaded.aliases == ["Bataa", {"note": "Улаанбаатар"}]
    raw = _raw(psession, p.id, "family_name")
    assert "Батбаяр".encode() not in raw and len(raw) > 12 + 16
    assert loaded.data_key_id is not None and psession.get(DataKey, loaded.data_key_id) is not None


def test_update_and_none(psession):
    p = Person(family_name="Ганбаатар")
    psession.add(p)
    psession.commit()
    p = _fresh(psession, p.id)
    p.family_name = "Ганбаатар-Очир"
    p.given_name = None
    psession.commit()
    loaded = _fresh(psession, p.id)
    assert loaded.family_name == "Ганбаатар-Очир" and loaded.given_name is None
    assert _raw(psession, p.id, "given_name") is None


def test_same_plaintext_twice_gives_different_ciphertexts(psession):
    a, b = Person(family_name="Өлзий"), Person(family_name="Өлзий")
    psession.add_all([a, b])
    psession.commit()
    # Same record, same key, same value written again: a fresh nonce, so a fresh ciphertext.
    first = _raw(psession, a.id, "family_name")
    a = _fresh(psession, a.id)
    a.family_name = "Өлзий"
    psession.commit()
    again = _raw(psession, a.id, "family_name")
    assert len({first, again, _raw(psession, b.id, "family_name")}) == 3
    assert _fresh(psession, a.id).family_name == "Өлзий"


def _two_people_sharing_a_key(session):
    a = Person(family_name="Хишиг", given_name="Сарангэрэл")
    session.add(a)
    session.flush()
    # Same data key on purpose: then only the associated data (row, column) can tell them apart.
    b = Person(family_name="Болормаа", given_name="Нямаа", data_key_id=a.data_key_id)
    session.add(b)
    session.commit()
    return a.id, b.id


def test_ciphertext_moved_to_another_row_fails_loudly(psession):
    a_id, b_id = _two_people_sharing_a_key(psession)
    stolen = _raw(psession, a_id, "family_name")
    psession.execute(sa.update(people).where(people.c.id == b_id).values(family_name=stolen))
    b = _fresh(psession, b_id)
    with pytest.raises(DecryptionFailed, match="does not authenticate"):
        _ = b.family_name
    assert b.given_name == "Нямаа"  # the row's other fields are untouched


def test_ciphertext_moved_to_another_column_fails_loudly(psession):
    a_id, _ = _two_people_sharing_a_key(psession)
    moved = _raw(psession, a_id, "given_name")
    psession.execute(sa.update(people).where(people.c.id == a_id).values(family_name=moved))
    with pytest.raises(DecryptionFailed):
        _ = _fresh(psession, a_id).family_name


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_a_tampered_byte_fails_loudly(psession, position):
    p = Person(family_name="Цэцэгмаа")
    psession.add(p)
    psession.commit()
    raw = bytearray(_raw(psession, p.id, "family_name"))
    raw[position] ^= 0x01
    psession.execute(sa.update(people).where(people.c.id == p.id).values(family_name=bytes(raw)))
    with pytest.raises(DecryptionFailed):
        _ = _fresh(psession, p.id).family_name


def test_a_record_whose_key_is_missing_is_a_clear_error(psession):
    p = Person(family_name="Түмэнжаргал")
    psession.add(p)
    psession.commit()
    psession.execute(sa.update(people).where(people.c.id == p.id).values(data_key_id=uuid.uuid4()))
    with pytest.raises(errors.DataKeyMissing) as info:
        _ = _fresh(psession, p.id).family_name
    assert info.value.status == 410


def _own_privacy(app, tmp_path, keystore=None) -> Privacy:
    kid = "old-key"
    path = tmp_path / "ring.json"
    write_key_file(path, kid, {kid: secrets.token_bytes(32)})
    base = app.extensions[privacy.EXTENSION]
    return Privacy(keyring=KeyRing.from_file(path), keystore=keystore or KeyStore(), index_key=base.index_key)


def test_rotation_in_batches_resumes_and_leaves_nothing_on_the_old_key(app, psession, tmp_path):
    own = _own_privacy(app, tmp_path)
    psession.info[privacy.SESSION_INFO] = own
    names = [f"Алтанцэцэг {i}" for i in range(7)]
    ids = []
    for name in names:
        p = Person(family_name=name, birth_date=date(2001, 1, 1))
        psession.add(p)
        psession.flush()
        ids.append(p.id)
    psession.commit()
    own.keyring.add_active("new-key", secrets.token_bytes(32))
    sessions = database(app).sessionmaker

    interrupted = rewrap_all(own, sessions, batch_size=3, max_batches=1)
    assert (interrupted.rewrapped, interrupted.remaining) == (3, 4)
    # The service keeps serving in the middle of a rotation: old and new wrapped keys both read.
    assert [_fresh(psession, i).family_name for i in ids] == names

    resumed = rewrap_all(own, sessions, batch_size=3)
    assert (resumed.rewrapped, resumed.remaining, resumed.active_key_id) == (4, 0, "new-key")
    kids = psession.scalars(sa.select(DataKey.master_key_id).where(DataKey.id.in_(
        sa.select(people.c.data_key_id)))).all()
    assert set(kids) == {"new-key"}
    # Without the old key at all, every record still decrypts.
    del own.keyring.keys["old-key"]
    psession.info.pop("referral_api.privacy.data_keys", None)
    assert [_fresh(psession, i).family_name for i in ids] == names


def test_a_rotation_meeting_another_rotation_labels_each_row_with_its_real_key(app, psession, tmp_path):
    """`keys rotate` run twice at once: the first run's later batches follow the newer active key, and
    every data key stays readable by a key ring read afresh from the file."""
    own = _own_privacy(app, tmp_path)
    psession.info[privacy.SESSION_INFO] = own
    ids = []
    for i in range(4):
        p = Person(family_name=f"Должин {i}")
        psession.add(p)
        psession.flush()
        ids.append(p.id)
    psession.commit()
    own.keyring.add_active("second", secrets.token_bytes(32))

    class RotatedElsewhere(Progress):
        def advance(self, n: int = 1) -> None:  # after the first batch: `keys rotate` in another process
            super().advance(n)
            if self.done == n:
                KeyRing.from_file(own.keyring.path).add_active("third", secrets.token_bytes(32))

    result = rewrap_all(own, database(app).sessionmaker, batch_size=2, max_batches=10,
                        progress=RotatedElsewhere())
    assert (result.active_key_id, result.remaining) == ("third", 0)
    psession.info[privacy.SESSION_INFO] = Privacy(keyring=KeyRing.from_file(own.keyring.path),
                                                  keystore=KeyStore(), index_key=own.index_key)
    psession.info.pop("referral_api.privacy.data_keys", None)
    assert [_fresh(psession, i).family_name for i in ids] == [f"Должин {i}" for i in range(4)]


def test_keys_rotate_command(app, psession, run_cli):
    p = Person(family_name="Жаргалсайхан")
    psession.add(p)
    psession.commit()
    before = get_privacy().keyring.active_id
    result = run_cli("keys", "rotate", "--batch-size", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["previous_key_id"] == before and out["active_key_id"] != before and out["remaining"] == 0
    assert psession.scalar(sa.select(sa.func.count()).select_from(DataKey)
                           .where(DataKey.master_key_id == before)) == 0
    psession.info.pop("referral_api.privacy.data_keys", None)
    assert _fresh(psession, p.id).family_name == "Жаргалсайхан"
    status = json.loads(run_cli("keys", "status", "--json").output)
    assert status["active_key_id"] == out["active_key_id"] and before in status["key_ids"]


def test_rotate_refuses_to_invent_a_key_when_keys_come_from_the_environment(app, run_cli, monkeypatch):
    own = get_privacy_from(app)
    monkeypatch.setattr(own.keyring, "path", None)
    result = run_cli("keys", "rotate")
    assert result.exit_code == 1 and "REFERRAL_API_MASTER_KEY" in result.output


def get_privacy_from(app) -> Privacy:
    return app.extensions[privacy.EXTENSION]


def test_shredding_makes_one_record_unreadable_and_leaves_the_others(psession):
    a, b = Person(family_name="Оюунчимэг", aliases=["Oyuka"]), Person(family_name="Мөнхзул")
    psession.add_all([a, b])
    psession.commit()
    assert privacy.shred(psession, a.data_key_id) is True
    psession.commit()
    gone, kept = _fresh(psession, a.id), psession.get(Person, b.id)
    for field in ("family_name", "aliases"):
        with pytest.raises(errors.DataErased):
            getattr(gone, field)
    assert kept.family_name == "Мөнхзул"
    row = psession.get(DataKey, a.data_key_id)
    assert row.wrapped_key is None and row.master_key_id is None and row.erased_at is not None
    assert privacy.shred(psession, a.data_key_id) is False


def test_erased_data_is_a_clear_answer_not_a_500(app):
    with app.test_request_context("/api/v1/referrals/x"):
        response = errors.render(errors.DataErased())
    body = json.loads(response.get_data())
    assert response.status_code == 410 and body["type"].endswith("/data_erased")


def test_separate_key_store(app, psession, tmp_path):
    keystore = KeyStore.from_url(f"sqlite:///{tmp_path / 'keystore.sqlite3'}")
    keystore.init_schema()
    psession.info[privacy.SESSION_INFO] = _own_privacy(app, tmp_path, keystore)
    p = Person(family_name="Хонгорзул")
    psession.add(p)
    psession.commit()
    assert psession.scalar(sa.select(sa.func.count()).select_from(DataKey)) == 0  # not in the main database
    with keystore.own() as ks:
        assert ks.get(DataKey, p.data_key_id) is not None
    psession.info.pop("referral_api.privacy.data_keys", None)
    assert _fresh(psession, p.id).family_name == "Хонгорзул"
    own = get_privacy(psession)
    own.keyring.add_active("next-key", secrets.token_bytes(32))
    result = rewrap_all(own, keystore.sessionmaker_for(database(app).sessionmaker), batch_size=10)
    assert (result.rewrapped, result.remaining) == (1, 0)
    with keystore.own() as ks:
        assert ks.get(DataKey, p.data_key_id).master_key_id == "next-key"
    psession.info.pop("referral_api.privacy.data_keys", None)
    assert _fresh(psession, p.id).family_name == "Хонгорзул"
    privacy.shred(psession, p.data_key_id)
    with pytest.raises(errors.DataErased):
        _ = _fresh(psession, p.id).family_name


def test_load_keys_unwraps_a_lists_keys_in_one_go_and_keeps_erasure(psession):
    records = [Person(family_name=f"Нарангэрэл {i}") for i in range(4)]
    psession.add_all(records)
    psession.commit()
    erased = records[0].data_key_id
    privacy.shred(psession, erased)
    psession.commit()
    psession.expunge_all()
    psession.info.pop("referral_api.privacy.data_keys", None)
    loaded = list(psession.scalars(sa.select(Person).order_by(Person.id)))
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    bind = psession.connection()
    sa.event.listen(bind, "before_cursor_execute", seen)
    try:
        privacy.load_keys(psession, loaded)
        readable = [p.family_name for p in loaded if p.data_key_id != erased]
    finally:
        sa.event.remove(bind, "before_cursor_execute", seen)
    assert sum("data_keys" in s for s in statements) == 1
    assert sorted(readable) == sorted(f"Нарангэрэл {i}" for i in range(1, 4))
    with pytest.raises(errors.DataErased):
        _ = next(p for p in loaded if p.data_key_id == erased).family_name
