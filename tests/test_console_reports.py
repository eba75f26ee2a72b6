"""The console's reports page: its CTDC export form names whole calendar years, as the export takes them."""

from __future__ import annotations

import csv
import io
import re

from tests.console_helpers import console, signed_in  # noqa: F401  (the fixture and its sign-in)
from tests.report_seed import Group, seed


def _rows(answer) -> list[dict]:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def test_the_export_form_asks_for_years_not_days(client, session, console):
    signed_in(client, session, console)
    html = client.get("/console/reports?from=2025-03-01&to=2025-03-02").get_data(as_text=True)
    form = html[html.index('action="/console/reports/ctdc.csv"'):]
    form = form[: form.index("</form>")]
    assert 'name="from_year"' in form and 'name="to_year"' in form and 'type="date"' not in form
    assert "2025-03-01" not in form  # the summary's days are not carried into the export
    assert "whole calendar years" in html


def test_the_export_of_whole_years_from_the_console(client, session, console, world):
    groups = [Group(2024, "CN", 11, accepted=11), Group(2025, "KR", 12, accepted=12)]
    seed(session, world.orgs["mgec"].id, groups)
    signed_in(client, session, console)
    rows = _rows(client.get("/console/reports/ctdc.csv?from_year=2025&to_year=2025"))
    assert len(rows) == 12 and {r["yearOfRegistration"] for r in rows} == {"2025"}
    assert len(_rows(client.get("/console/reports/ctdc.csv?to_year=2024"))) == 11
    assert len(_rows(client.get("/console/reports/ctdc.csv?from_year=2024"))) == 23
    assert len(_rows(client.get("/console/reports/ctdc.csv"))) == 23


def _marked(html: str, field: str) -> str:
    """The error message shown under `field` (which is marked invalid and described by it)."""
    marked = rf'id="field-{field}"[^>]*aria-describedby="error-{field}" aria-invalid="true"'
    assert re.search(marked, html), html
    return re.search(rf'<p class="field-error" id="error-{field}">([^<]*)</p>', html).group(1)


def test_a_wrong_year_is_named_in_the_persons_language(client, session, console):
    signed_in(client, session, console)
    answer = client.get("/console/reports/ctdc.csv?from_year=2025-03&to_year=1899")
    assert answer.status_code == 422 and answer.mimetype == "text/html"
    html = answer.get_data(as_text=True)
    assert _marked(html, "from_year") == _marked(html, "to_year") == "Please give a year from 1900 to 2999."
    assert 'href="#field-from_year"' in html and 'value="2025-03"' in html
    backwards = client.get("/console/reports/ctdc.csv?from_year=2026&to_year=2025")
    assert backwards.status_code == 422
    assert _marked(backwards.get_data(as_text=True), "from_year") == "The start is after the end."
    client.get("/console/language/mn")
    in_mongolian = client.get("/console/reports/ctdc.csv?from_year=abc").get_data(as_text=True)
    assert _marked(in_mongolian, "from_year") == "1900-аас 2999 хүртэлх он оруулна уу."
