"""Peak memory of freezing a large PostgreSQL table through a SQL audience, and of saving it
as a recurring audience: this checkout beside `main` (the baseline), measured in the same run.

For each code base, a throwaway schema on the PostgreSQL server at 127.0.0.1:5432 gets a
`people` table of N rows, a SQL source over it, a recurring audience and an INITIALIZING run
(set up with this checkout's code); then `benchmarks/freeze_probe.py` freezes the run, and
saves the source as an audience, each in a process of its own with that code base first on
PYTHONPATH, and reports its peak resident memory. The baseline code is `git archive main`.

    python benchmarks/freeze_bench.py [--rows 1000000] [--baseline-ref main]

Ends with one line `RESULT key=value ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import sqlalchemy as sa  # noqa: E402
from sql_audiences import acquired_run, fill_people, source_url, sql_workflow  # noqa: E402

from outreach_core.adapters.settings import Settings  # noqa: E402
from outreach_core.adapters.workspace import open_workspace  # noqa: E402
from outreach_core.domain.models import SendOptions  # noqa: E402

SERVER = os.environ.get(
    "OUTREACH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def prepared(folder: Path, schema: str, rows: int) -> tuple[str, int, int]:
    """(database URL, run id, source id) of a workspace in `schema` holding N people."""
    admin = sa.create_engine(SERVER)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = f"{SERVER}?options=-csearch_path%3D{schema}"
    ws = open_workspace(
        Settings(_env_file=None, OUTREACH_DATA_DIR=folder, OUTREACH_DATABASE_URL=url)
    )
    try:
        fill_people(source_url(ws, folder), rows, emails={}, names={})
        workflow_id, source_id = sql_workflow(
            ws, folder, source_url(ws, folder), SendOptions(rate=0, skip_mx=True)
        )
        run = acquired_run(ws, workflow_id)
    finally:
        ws.close()
    return url, run.id, source_id


def probe(code: Path, mode: str, folder: Path, url: str, subject: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "freeze_probe.py"), mode, str(folder), url,
         str(subject)],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(code)},
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{mode} under {code} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-ref", default="main")
    args = parser.parse_args()
    figures: dict[str, dict[str, dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as temp:
        baseline = Path(temp) / "baseline"
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline_ref],
            capture_output=True, check=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        schemas = []
        try:
            for label, code in (("baseline", baseline), ("streamed", REPO)):
                schema = f"freeze_bench_{label}_{os.getpid()}"
                schemas.append(schema)
                folder = Path(temp) / label
                url, run_id, source_id = prepared(folder, schema, args.rows)
                figures[label] = {
                    "freeze": probe(code, "freeze", folder, url, run_id),
                    "save": probe(code, "save", folder, url, source_id),
                }
                print(label, json.dumps(figures[label]), flush=True)
        finally:
            admin = sa.create_engine(SERVER)
            with admin.begin() as conn:
                for schema in schemas:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    print(
        f"{'':10} {'freeze peak MB':>15} {'growth MB':>10} {'s':>7} {'save peak MB':>13} {'growth MB':>10}"
    )
    for label, f in figures.items():
        fr, sv = f["freeze"], f["save"]
        print(
            f"{label:10} {fr['peak_mb']:>15} {fr['growth_mb']:>10} {fr['seconds']:>7} {sv['peak_mb']:>13} {sv['growth_mb']:>10}"
        )
    base, new = figures["baseline"], figures["streamed"]
    print(
        f"RESULT rows={args.rows} freeze_rss_mb_main={base['freeze']['peak_mb']} "
        f"freeze_rss_mb={new['freeze']['peak_mb']} "
        f"freeze_growth_mb_main={base['freeze']['growth_mb']} "
        f"freeze_growth_mb={new['freeze']['growth_mb']} "
        f"save_rss_mb_main={base['save']['peak_mb']} save_rss_mb={new['save']['peak_mb']} "
        f"freeze_s_main={base['freeze']['seconds']} freeze_s={new['freeze']['seconds']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
