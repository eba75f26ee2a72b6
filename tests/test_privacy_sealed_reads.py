"""What a session sealed it reads back without opening it again (same key held, same ids); anything read
from the database is opened as before. And `records.insert_now`: a Core INSERT leaves a record as a
flush would."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from referral_api import errors, privacy
from referral_api.privacy import crypto
from referral_api.privacy.models import DataKey
from referral_api.records import insert_now
from tests.throwaway import Person

people = Person.__table__


def test_the_associated_data_is_the_same_built_in_parts(psession):
    p = Person(family_name="Батцэцэг")
    psession.add(p)
    psession.flush()
    field = Person.__dict__["family_name"]
    assert field.aad(p) == crypto.associated_data("throwaway_people", "family_name", p.id, p.data_key_id)
    p.data_key_id = uuid.uuid4()  # the row's part follows its ids
    assert field.aad(p) == crypto.associated_data("throwaway_people", "family_name", p.id, p.data_key_id)


def test_what_this_session_sealed_reads_back_unopened_and_a_loaded_value_is_opened(psession, opened):
    p = Person(family_name="Энхжаргал", aliases=["Enkhee"])
    psession.add(p)
    psession.commit()
    assert (p.family_name, p.aliases) == ("Энхжаргал", ["Enkhee"])
    assert opened == []
    psession.expire(p, ["family_name_ciphertext"])  # read from the database again: a ciphertext to open
    assert p.family_name == "Энхжаргал"
    assert opened == [f"throwaway_people.family_name of {p.id}"]


def test_a_value_sealed_here_whose_key_is_shredded_is_erased(psession, opened):
    p = Person(family_name="Мөнхтуяа")
    psession.add(p)
    psession.flush()
    assert privacy.shred(psession, p.data_key_id) is True
    with pytest.raises(errors.DataErased):
        _ = p.family_name


def test_a_value_sealed_here_does_not_follow_its_ciphertext_to_another_row(psession):
    a = Person(family_name="Хишиг")
    psession.add(a)
    psession.flush()
    b = Person(given_name="Нямаа", data_key_id=a.data_key_id)
    psession.add(b)
    psession.flush()
    b.family_name_ciphertext = a.family_name_ciphertext  # another row's ciphertext: opened, and refused
    with pytest.raises(crypto.DecryptionFailed):
        _ = b.family_name


def test_insert_now_stores_the_row_sealed_and_leaves_it_persistent_clean_and_loaded(psession):
    p = Person(family_name="Сарангэрэл", aliases=["Saraa"], label="control")
    insert_now(psession, p)
    state = inspect(p)
    assert state.persistent and not state.modified and not state.expired_attributes
    assert p in psession and p not in psession.dirty and p not in psession.new
    assert p.id is not None and p.data_key_id is not None
    assert psession.get(DataKey, p.data_key_id) is not None  # the data key's row, INSERTed first
    row = psession.execute(sa.select(people).where(people.c.id == p.id)).one()
    assert b"Saraa" not in row.aliases and row.given_name is None and row.label == "control"
    psession.commit()
    psession.expunge_all()
    loaded = psession.get(Person, p.id)
    assert (loaded.family_name, loaded.aliases, loaded.given_name) == ("Сарангэрэл", ["Saraa"], None)


def test_insert_now_of_a_taken_key_fails_as_a_flush_would(psession):
    p = Person(family_name="Оюун")
    insert_now(psession, p)
    with pytest.raises(sa.exc.IntegrityError):
        insert_now(psession, Person(id=p.id, family_name="Оюун"))
