"""The Suppressions and Audit pages under AppTest, over a seeded SQLite workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from outreach_core.domain.access import hash_password
from outreach_core.domain.models import SuppressionReason
from outreach_core.services import compliance
from tests.e2e.dashboard import HOME, Demo


def start(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest) -> list[dict[str, str]]:
    return at.dataframe[0].value.to_dict("records")


def test_suppressions_page_lists_searches_adds_and_removes(demo: Demo) -> None:
    """Verify the list with search, a manual add (normalised), a bad address named, a remove."""
    compliance.suppress(demo.ws, "gone@example.com", reason=SuppressionReason.BOUNCED, actor="t")
    at = start("pages/suppressions.py")
    assert at.title[0].value == "Suppressions"
    assert at.metric[0].value == "1"
    assert [r["Email"] for r in table(at)] == ["gone@example.com"]

    at.text_input(key="supp_add_email").input("  New.Person@EXAMPLE.com ")
    at.button(key="supp_add").click().run()
    assert "added" in at.success[0].value
    assert {r["Email"]: r["Reason"] for r in table(at)} == {
        "new.person@example.com": "manual",
        "gone@example.com": "bounced",
    }
    at.text_input(key="supp_search").input("new.").run()
    assert [r["Email"] for r in table(at)] == ["new.person@example.com"]

    at.text_input(key="supp_add_email").input("not-an-address")
    at.button(key="supp_add").click().run()
    assert "'not-an-address' is not an email address" in at.error[0].value

    at.text_input(key="supp_remove_email").input("GONE@example.com")
    at.button(key="supp_remove").click().run()
    assert "removed" in at.success[0].value
    assert {s.email_normalized for s in compliance.list_suppressions(demo.ws)} == {
        "new.person@example.com"
    }


def test_suppression_import_reports_each_bad_row_and_adds_the_rest(demo: Demo) -> None:
    """Verify a CSV import: good rows added with their reason, bad rows named by line/column."""
    data = (
        b"email,reason\n"
        b"a@example.com,unsubscribed\n"
        b"bad-address,\n"
        b"b@example.com,spam\n"
        b"c@example.com,\n"
    )
    result = compliance.import_suppressions(demo.ws, data, source="list.csv", actor="ann")
    assert (result.added, result.already) == (2, 0)
    assert result.errors == [
        "line 3, column 'email': 'bad-address' is not an email address (An email address must "
        "have an @-sign.); fix or remove the row",
        "line 4, column 'reason': reason 'spam' is not one of unsubscribed, bounced, "
        "complained, manual",
    ]
    listed = {s.email_normalized: s.reason for s in compliance.list_suppressions(demo.ws)}
    assert listed == {"a@example.com": "unsubscribed", "c@example.com": "manual"}
    again = compliance.import_suppressions(demo.ws, data, source="list.csv", actor="ann")
    assert (again.added, again.already) == (0, 2)
    exported = compliance.export_suppressions_csv(demo.ws).splitlines()
    assert exported[0] == "email,reason,created_at,source"
    assert [line.split(",")[:2] for line in exported[1:]] == [
        ["a@example.com", "unsubscribed"],
        ["c@example.com", "manual"],
    ]


def test_audit_page_shows_who_did_what_and_searches(demo: Demo) -> None:
    """Verify the audit table lists the demo's set-up and a suppression, searchable."""
    compliance.suppress(demo.ws, "x@example.com", reason=SuppressionReason.MANUAL, actor="ann")
    at = start("pages/audit.py")
    assert at.title[0].value == "Audit"
    rows = table(at)
    assert rows[0]["Who"] == "ann" and rows[0]["Action"] == "suppression.add"
    assert rows[0]["Subject"] == "x@example.com" and '"reason": "manual"' in rows[0]["Detail"]
    assert any(r["Action"] == "audience.import" for r in rows)
    at.text_input(key="audit_search").input("SUPPRESSION").run()
    assert [r["Action"] for r in table(at)] == ["suppression.add"]
    at.text_input(key="audit_search").input("nothing-like-this").run()
    assert at.info[0].value == "No entry matches."


@pytest.fixture
def viewer_signed_in(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(
        "OUTREACH_DASHBOARD_USERS", f"vic:viewer:{hash_password('pw', scheme='scrypt')}"
    )
    st.config.set_option("server.address", "0.0.0.0")
    yield
    st.config.set_option("server.address", "127.0.0.1")


@pytest.mark.usefixtures("viewer_signed_in")
def test_a_viewer_sees_the_list_but_cannot_change_it(demo: Demo) -> None:
    """Verify the Suppressions page's editing widgets are disabled for a viewer."""
    at = AppTest.from_file(HOME, default_timeout=30).run().run()
    at.text_input(key="_outreach_login_name").input("vic")
    at.text_input(key="_outreach_login_password").input("pw")
    at.button(key="_outreach_sign_in").click().run()
    at.switch_page("pages/suppressions.py").run()
    assert at.title[0].value == "Suppressions"
    assert at.button(key="supp_add").disabled and at.button(key="supp_remove").disabled
    assert at.text_input(key="supp_add_email").disabled
