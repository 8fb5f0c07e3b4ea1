"""Peak memory of one freeze, or of saving one recurring SQL audience, in a process of its own.

    python benchmarks/freeze_probe.py freeze DATA_DIR DATABASE_URL RUN_ID
    python benchmarks/freeze_probe.py save DATA_DIR DATABASE_URL SOURCE_ID

The workspace (settings: DATA_DIR, DATABASE_URL) is prepared by the caller: an INITIALIZING
run held by a worker (`freeze`), or a saved SQL source (`save`). Prints one JSON line: the
peak resident memory (VmHWM) before and after the work, its growth in MB, and the seconds the
work took. The code measured is whatever `outreach_core` is first on PYTHONPATH, so the same
probe measures an older checkout too (the freeze benchmark's baseline).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def peak_mb() -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> int:
    mode, data_dir, database_url, subject = argv
    from outreach_core.adapters.settings import Settings
    from outreach_core.adapters.store import runs
    from outreach_core.adapters.workspace import open_workspace
    from outreach_core.services import sources
    from outreach_core.services.sending.freeze import freeze_audience

    settings = Settings(
        _env_file=None, OUTREACH_DATA_DIR=Path(data_dir), OUTREACH_DATABASE_URL=database_url
    )
    ws = open_workspace(settings)
    with ws.db.connect() as conn:
        run = runs.get_run(conn, int(subject)) if mode == "freeze" else None
    before = peak_mb()
    started = time.perf_counter()
    if run is not None:
        done = freeze_audience(ws, run)
        with ws.db.connect() as conn:
            outcome = str(runs.get_run(conn, run.id).status_reason or done)
    else:
        audience = sources.save_recurring_audience(ws, int(subject), name="probe", actor="probe")
        outcome = f"{audience.row_count} rows"
    elapsed = time.perf_counter() - started
    after = peak_mb()
    ws.close()
    report = {
        "before_mb": round(before, 1),
        "peak_mb": round(after, 1),
        "growth_mb": round(after - before, 1),
        "seconds": round(elapsed, 2),
        "outcome": outcome,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
