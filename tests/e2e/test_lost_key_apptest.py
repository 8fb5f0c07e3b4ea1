"""The dashboard with its key file gone: it shows the refusal naming the key file and
OUTREACH_SECRET_KEY instead of any page, makes no new key, and opens again once the key file
is restored."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from outreach_core.adapters import crypto
from tests.e2e.dashboard import HOME, Demo


def test_the_dashboard_refuses_a_missing_key_and_says_how_to_restore_it(
    demo: Demo, data_dir: Path
) -> None:
    """Verify the demo's key file removed: Home shows the error naming the key file and
    OUTREACH_SECRET_KEY, no page is drawn, no key file appears; restored, Overview opens."""
    demo.ws.close()
    key_file = data_dir / crypto.KEY_FILE_NAME
    kept = key_file.read_bytes()
    key_file.unlink()

    at = AppTest.from_file(HOME, default_timeout=30).run()
    assert not at.exception
    [error] = at.error
    assert str(key_file) in error.value and "OUTREACH_SECRET_KEY" in error.value
    assert not at.dataframe and not at.metric
    assert not key_file.exists()

    key_file.write_bytes(kept)
    key_file.chmod(0o600)
    at = AppTest.from_file(HOME, default_timeout=30).run()
    assert not at.exception and not at.error
    assert "Overview" in [t.value for t in at.title]
