"""The dashboard across `rotate-key`: its cached Workspace follows the new key, so the Engines
page's connection test passes without a restart."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from outreach_core.adapters import crypto
from tests.e2e.dashboard import HOME, Demo

from conftest import run_cli


def test_engine_test_passes_after_rotate_key_without_a_restart(
    demo: Demo, data_dir: Path, tmp_path: Path
) -> None:
    """Verify the Engines page's connection test before and after `rotate-key` run by the
    command line, in the same dashboard process (its cached Workspace opened before it)."""
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/engines.py").run()
    at.button(key="test_connection").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.endswith(": writable")
    key_file = data_dir / crypto.KEY_FILE_NAME
    before = key_file.read_bytes()

    done = run_cli(tmp_path, "rotate-key")
    assert done.returncode == 0, done.stderr
    assert key_file.read_bytes() != before

    at.button(key="test_connection").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.endswith(": writable")
