"""Blind indexes: Cyrillic and Latin spellings of one Mongolian name index alike; other values apart."""

from __future__ import annotations

import pytest

from referral_api.privacy import BlindIndexer, normalise_document_number, normalise_name

KEY = b"\x07" * 32
ix = BlindIndexer(KEY)

SAME_NAME = [
    ("Батбаяр", "Batbayar"),
    ("Өлзий", "Ulzii"),
    ("Өлзий", "Ölzii"),
    ("Өлзий", "Olziy"),
    ("Хишиг", "Khishig"),
    ("Хишиг", "Hishig"),
    ("Khishig", "HISHIG"),
    ("Энхтуяа", "Enkhtuya"),
    ("Болормаа", "Bolormaa"),
    ("Оюунчимэг", "Oyunchimeg"),
    ("Цэцэгмаа", "Tsetsegmaa"),
    ("Мөнхзул", "Munkhzul"),
    ("Мөнхзул", "Monkhzul"),
    ("Ганбаатар", "Ganbaatar"),
    ("Бат-Эрдэнэ", "Bat-Erdene"),
    ("Бат-Эрдэнэ", "baterdene"),
    ("Наранцэцэг", "Narantsetseg"),
    ("Жаргалсайхан", "Jargalsaikhan"),
    ("Жаргалсайхан", "Zhargalsaikhan"),
    ("Түмэнжаргал", "Tumenjargal"),
    ("Ариунаа", "Ariunaa"),
    ("Хонгорзул", "Khongorzul"),
    ("Дөлгөөн", "Dolgoon"),
    ("Баттулга", "Batulga"),
    ("Мягмарсүрэн", "Myagmarsuren"),
    ("Хүрэлбаатар", "Khurelbaatar"),
    ("Гантөмөр", "Gantumur"),
    ("Сүхбаатар", "Sukhbaatar"),
    ("Пүрэвдорж", "Purevdorj"),
    ("Цолмон", "Tsolmon"),
    ("Батбаяр Энхтуяа", "ENKHTUYA,  Batbayar"),
    ("  Batbayar\t", "batbayar."),
]


@pytest.mark.parametrize(("a", "b"), SAME_NAME)
def test_spellings_of_one_name_index_alike(a, b):
    assert normalise_name(a) == normalise_name(b)
    assert ix.name_birth_year(a, 1994) == ix.name_birth_year(b, 1994)
    assert ix.name_birth_year(b, 1994) == ix.name_birth_year(a, 1994)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Батбаяр", "Батболд"), ("Batbayar", "Enkhbayar"), ("Өлзий", "Өлзийбаяр"), ("Хишиг", "Хулан"),
     ("Сарангэрэл", "Гэрэлмаа"), ("Tsetseg", "Tsetsegmaa")],
)
def test_different_names_index_apart(a, b):
    assert ix.name_birth_year(a, 1994) != ix.name_birth_year(b, 1994)


def test_different_birth_years_index_apart():
    assert ix.name_birth_year("Batbayar", 1994) != ix.name_birth_year("Батбаяр", 1995)


def test_kinds_and_keys_are_separated():
    assert ix.passport("E1234567") != ix.national_id("E1234567")
    assert ix.passport("E1234567") != BlindIndexer(b"\x08" * 32).passport("E1234567")


def test_document_numbers_fold_case_spacing_punctuation_and_cyrillic():
    assert normalise_document_number(" e 123-4567 ") == "E1234567"
    assert ix.national_id("УБ99031212") == ix.national_id("ub 9903 1212")
    assert ix.passport("E1234567") != ix.passport("E1234568")


def test_index_shape_and_refusals():
    value = ix.passport("E1234567")
    assert len(value) == 32 and int(value, 16) >= 0  # 16 bytes in hex
    assert "E1234567" not in value
    with pytest.raises(ValueError, match="nothing left"):
        ix.passport(" -- ")
    with pytest.raises(ValueError, match="birth year"):
        ix.name_birth_year("Batbayar", 94)
