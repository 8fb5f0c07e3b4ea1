"""`dry-run --out` and `export` stream: each runs in a subprocess (`tests/memory_probe.py`) over
a workflow of `ROWS` recipients, on SQLite and PostgreSQL, and its peak memory may not rise by
more than `GROWTH_BOUND_MB`. Holding every row at once (a list of the rows, then the whole
CSV as one string) rises far past it at this size.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.adapters.store.tables import audience_rows, audiences, deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.templating import TemplateSource
from tests.conftest import REPO, cli_env
from tests.e2e.dashboard import send_run

#: recipients in the workflow and the run (OUTREACH_MEMORY_TEST_ROWS for a larger check)
ROWS = int(os.environ.get("OUTREACH_MEMORY_TEST_ROWS", "20000"))
#: what the streamed paths stay under (measured: 2 to 6 MB); the code that held every row
#: rose by 54 MB (dry-run) and 30 MB (export) at 30,000 rows, and by 36 and 20 at 20,000
GROWTH_BOUND_MB = 12
PROBE = REPO / "tests" / "memory_probe.py"
_BATCH = 10_000


def _workflow(ws: Workspace, tmp_path: Path) -> Workflow:
    return services.setup_workflow(
        ws,
        name="large",
        parsed=parse_csv(b"email,name\nfirst@example.com,First\n", source="large.csv"),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=True, dedupe_window_hours=0),
        actor="test",
    )


def _grow_audience(ws: Workspace, audience_id: int) -> None:
    """Rows 2…ROWS of the audience, written in batches straight into its table."""
    with ws.db.begin() as conn:
        for start in range(2, ROWS + 1, _BATCH):
            conn.execute(
                audience_rows.insert(),
                [
                    {"audience_id": audience_id, "row_number": n,
                     "data": {"email": f"person{n}@example.com", "name": f"Person {n}"}}
                    for n in range(start, min(start + _BATCH, ROWS + 1))
                ],
            )  # fmt: skip
        conn.execute(audiences.update().where(audiences.c.id == audience_id).values(row_count=ROWS))


def _grow_run(ws: Workspace, run_id: int) -> None:
    """ROWS - 1 more sent deliveries in the run, each like its first one."""
    with ws.db.begin() as conn:
        first = conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id)).one()
        model = {k: v for k, v in first._mapping.items() if k != "id"}
        now = datetime.now(UTC)
        for start in range(2, ROWS + 1, _BATCH):
            conn.execute(
                deliveries.insert(),
                [
                    {**model, "row_number": n, "email": f"person{n}@example.com",
                     "email_normalized": f"person{n}@example.com", "updated_at": now,
                     "message_id": f"<{n}@example.com>"}
                    for n in range(start, min(start + _BATCH, ROWS + 1))
                ],
            )  # fmt: skip


def _probe(tmp_path: Path, db_url: str, *args: str) -> float:
    env = cli_env(tmp_path)
    if db_url.startswith("postgresql"):
        env["OUTREACH_DATABASE_URL"] = db_url
    done = subprocess.run(
        [sys.executable, str(PROBE), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert last.startswith("exit=0 "), done.stdout[-2000:] + done.stderr[-2000:]
    return float(last.split("peak_growth_mb=")[1].split()[0])


def _data_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


@pytest.fixture
def large(workspace: Workspace, db_url: str, tmp_path: Path) -> tuple[Workflow, int]:
    """A workflow of ROWS recipients and a run that sent to ROWS recipients."""
    workflow = _workflow(workspace, tmp_path)
    run_id = send_run(workspace, workflow)  # one recipient, before the audience grows
    _grow_audience(workspace, workflow.audience_id)
    _grow_run(workspace, run_id)
    return workflow, run_id


def test_dry_run_out_and_export_stream_in_bounded_memory(
    large: tuple[Workflow, int], db_url: str, tmp_path: Path
) -> None:
    """Verify `dry-run --out` and `export` write every row while their peak memory rises by
    less than GROWTH_BOUND_MB over ROWS recipients."""
    workflow, run_id = large
    preflight_csv, outcome_csv = tmp_path / "preflight.csv", tmp_path / "outcome.csv"
    grew = {
        "dry-run --out": _probe(
            tmp_path, db_url, "dry-run", str(workflow.id), "--out", str(preflight_csv)
        ),
        "export": _probe(tmp_path, db_url, "export", str(run_id), "--out", str(outcome_csv)),
    }
    rows = _data_rows(preflight_csv)
    assert len(rows) == ROWS + 1
    address = f"person{ROWS}@example.com"
    assert rows[-1][:4] == [address, f"Person {ROWS}", address, "valid"]
    rows = _data_rows(outcome_csv)
    assert len(rows) == ROWS + 1
    assert rows[-1][2] == f"person{ROWS}@example.com"
    over = {path: mb for path, mb in grew.items() if mb >= GROWTH_BOUND_MB}
    assert not over, f"peak memory rose by (MB): {grew}"
