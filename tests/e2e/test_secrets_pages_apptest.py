"""No page shows a stored secret: engines with a password and API keys and a SQL source with
a password are saved, then every page's text is searched for them."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.services import sources
from tests.e2e.dashboard import HOME, Demo
from tests.e2e.test_send_engines_pages import every_text

SMTP_PASSWORD = "Pg-Smtp-S3cret-a81c"
SENDGRID_KEY = "SG.Pg-Leak-Check-44d0"
SQL_PASSWORD = "Pg-Sql-S3cret-9e2f"
PAGES = [
    "pages/overview.py", "pages/audiences.py", "pages/dry_run.py", "pages/send.py",
    "pages/engines.py", "pages/runs.py", "pages/templates.py", "pages/suppressions.py",
    "pages/audit.py",
]  # fmt: skip


def test_no_page_shows_a_stored_secret(demo: Demo) -> None:
    """Verify every page's text (tables, captions, inputs, errors) holds none of the secrets."""
    services.save_engine(
        demo.ws, name="relay", url=f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:2525?tls=none",
        from_email="team@example.com", from_name="Team", actor="t",
    )  # fmt: skip
    services.save_engine(
        demo.ws, name="grid", url=f"sendgrid://{SENDGRID_KEY}@", from_email="team@example.com",
        from_name="Team", actor="t",
    )  # fmt: skip
    sources.save_source(
        demo.ws, name="crm", url=f"postgresql+psycopg://crm:{SQL_PASSWORD}@127.0.0.1:1/crm",
        query="SELECT email FROM people", values={}, actor="t",
    )  # fmt: skip
    at = AppTest.from_file(HOME, default_timeout=30).run()
    texts = []
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        texts.append(every_text(at))
    joined = "\n".join(texts)
    assert "relay" in joined and "crm" in joined  # the pages did list them
    assert [s for s in (SMTP_PASSWORD, SENDGRID_KEY, SQL_PASSWORD) if s in joined] == []
