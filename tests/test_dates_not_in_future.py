"""A date of something that happened is not in the future: not after today anywhere on Earth (UTC+14),
so that today's date in Ulaanbaatar (UTC+8) is accepted before 08:00 local, when UTC is still on yesterday."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import marshmallow as ma
import pytest

import referral_api.validators as validators
from referral_api.cases.stages import Stage
from tests.case_helpers import details_for, open_case, transition


def _clock(monkeypatch, now: datetime) -> None:
    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return now if tz is not None else now.replace(tzinfo=None)

    monkeypatch.setattr(validators, "datetime", Clock)


def test_ulaanbaatars_today_is_not_in_the_future_before_eight_in_the_morning(monkeypatch):
    utc_now = datetime(2027, 3, 9, 23, 30, tzinfo=UTC)  # 07:30 on 10 March in Ulaanbaatar
    _clock(monkeypatch, utc_now)
    validators.not_in_future((utc_now + timedelta(hours=8)).date())  # no error
    validators.not_in_future(utc_now.date())


@pytest.mark.parametrize("utc_time, refused_from", [
    (time(0, 0), "2027-03-11"),  # UTC+14 is on 10 March: 11 March is the future everywhere
    (time(9, 59), "2027-03-11"),
    (time(10, 0), "2027-03-12"),  # from 10:00 UTC it is 11 March in UTC+14
])
def test_a_date_after_today_everywhere_is_refused(monkeypatch, utc_time, refused_from):
    _clock(monkeypatch, datetime.combine(datetime(2027, 3, 10).date(), utc_time, UTC))
    refused = datetime.fromisoformat(refused_from).date()
    validators.not_in_future(refused - timedelta(days=1))
    with pytest.raises(ma.ValidationError, match="future"):
        validators.not_in_future(refused)


def test_an_arrival_recorded_on_ulaanbaatars_date_is_accepted(client, world, monkeypatch):
    case_id = open_case(client, world)
    here = Stage.VERIFICATION
    for there in (Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT):
        transition(client, world, case_id, there.value, details=details_for(here, there))
        here = there
    utc_now = datetime.combine(datetime.now(UTC).date(), time(23, 30), UTC)  # 07:30 tomorrow in Ulaanbaatar
    _clock(monkeypatch, utc_now)
    ulaanbaatar_today = (utc_now + timedelta(hours=8)).date().isoformat()
    arrived = client.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={"to": "arrived",
              "details": {"entry_point": "chinggis_khaan_airport", "arrived_on": ulaanbaatar_today}},
        headers=world.headers("caseworker"),
    )
    assert arrived.status_code == 200, arrived.get_json()
    assert arrived.get_json()["key_dates"]["arrived_on"] == ulaanbaatar_today
