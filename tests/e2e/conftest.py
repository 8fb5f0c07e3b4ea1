"""Fixtures for the dashboard tests: a clean environment, fresh Streamlit caches, demo data.

The app reads its settings from the environment (like `make run` does), so each test points
OUTREACH_DATA_DIR at its own folder and runs from that folder, where no `.env` can leak in.
Plain helpers live in `tests.e2e.dashboard`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from outreach_core.services.demo import load_demo
from tests.e2e.dashboard import Demo, open_test_workspace, require_chromium

from conftest import catch_all_dns


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """The cached workspace of one test must not be served to the next (and gets closed)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def _loopback_dashboard() -> Iterator[None]:
    """AppTest reads Streamlit's config from wherever the process started: pin server.address
    to loopback (an open dashboard) unless a test changes it to check the login."""
    previous = st.config.get_option("server.address")
    st.config.set_option("server.address", "127.0.0.1")
    yield
    st.config.set_option("server.address", previous)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder the app under test will use; no other OUTREACH_ setting leaks in."""
    for name in list(os.environ):
        if name.startswith(("OUTREACH_", "REPORT_")) or name == "LOG_LEVEL":
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    monkeypatch.setenv("OUTREACH_DATA_DIR", str(data))
    monkeypatch.setenv("OUTREACH_DNS_NAMESERVERS", catch_all_dns())
    monkeypatch.chdir(tmp_path)
    return data


@pytest.fixture
def demo(data_dir: Path) -> Iterator[Demo]:
    """The data folder with the demo loaded: 54 contacts (50 valid), a template, an outbox."""
    ws = open_test_workspace(data_dir)
    workflow = load_demo(ws)
    assert workflow is not None
    yield Demo(ws, workflow)
    ws.close()


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's chromium for a module's browser tests (skipped, or failed in CI, without it)."""
    return require_chromium()
