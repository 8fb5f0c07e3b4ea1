"""The freeze of a SQL audience, and saving a recurring SQL audience, in bounded memory: each
runs in a subprocess (`benchmarks/freeze_probe.py`) whose peak resident memory may grow by
less than GROWTH_BOUND_MB over 8,000 rows of 6 KB (about 48 MB of data). Holding the rows
(or the plan) whole, as one list, grows it by well over that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sql_audiences import acquired_run, fill_people, source_url, sql_workflow

from outreach_core.adapters.workspace import open_workspace
from outreach_core.domain.models import SendOptions

from conftest import REPO, make_settings

ROWS = 8_000
#: characters in each row's name: rows that weigh (6 KB) without costing many renders
PAD = 6_000
GROWTH_BOUND_MB = 45.0


def probe(mode: str, tmp_path: Path, subject: int) -> dict[str, object]:
    settings = make_settings(tmp_path)
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "freeze_probe.py"), mode,
         str(settings.data_dir), settings.sqlalchemy_url, str(subject)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_freeze_and_save_of_a_sql_audience_stay_in_bounded_memory(tmp_path: Path) -> None:
    """Verify freezing 8,000 rows from a SQLite source, and saving them as a recurring
    audience, each grow the peak memory of their process by less than the bound."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        url = source_url(ws, tmp_path)
        fill_people(url, ROWS, emails={}, names={}, pad=PAD)
        workflow_id, source_id = sql_workflow(ws, tmp_path, url, SendOptions(rate=0, skip_mx=True))
        run = acquired_run(ws, workflow_id)
    finally:
        ws.close()

    frozen = probe("freeze", tmp_path, run.id)
    saved = probe("save", tmp_path, source_id)

    assert frozen["outcome"] == "True", frozen
    assert saved["outcome"] == f"{ROWS} rows", saved
    assert float(frozen["growth_mb"]) < GROWTH_BOUND_MB, frozen
    assert float(saved["growth_mb"]) < GROWTH_BOUND_MB, saved
