"""The measured child processes of scale_bench, each printing one JSON line with its peak RSS.

    python benchmarks/scale_parts/child.py setup SOURCE_URL PORT COUNT RATE [CONCURRENCY BATCH]
    python benchmarks/scale_parts/child.py send RUN_ID

Both open the workspace of OUTREACH_DATABASE_URL and OUTREACH_DATA_DIR (the environment):
- setup: the import of a SQL audience (a saved query over `bench_people`, stored as a
  recurring audience) of its first COUNT rows, a template, an SMTP engine to the sink (limited to RATE messages/s when
  RATE > 0) and a workflow (rate limit off, no MX check, CONCURRENCY connections per process,
  8 unless given, in batches of BATCH, 500 unless given);
- send: a run from QUEUED to its end (freeze, render, build, send, record), as `send` does.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from send_bench import CONCURRENCY, FROM, HTML, SUBJECT, TEXT  # noqa: E402

from outreach_core import services  # noqa: E402
from outreach_core.adapters.settings import Settings  # noqa: E402
from outreach_core.adapters.workspace import open_workspace  # noqa: E402
from outreach_core.domain.models import EngineLimits, SendOptions  # noqa: E402
from outreach_core.domain.templating import TemplateSource  # noqa: E402
from outreach_core.services.engines import save_engine, save_engine_limits  # noqa: E402
from outreach_core.services.sources import save_recurring_audience, save_source  # noqa: E402

ACTOR = "bench"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(
    source_url: str,
    port: int,
    count: int,
    rate: float,
    concurrency: int = CONCURRENCY,
    batch_size: int = 500,
) -> dict[str, float]:
    ws = open_workspace(Settings())
    start = time.perf_counter()
    source = save_source(
        ws,
        name="bench people",
        url=source_url,
        query=f"SELECT email, name, n FROM bench_people WHERE n <= {int(count)} ORDER BY n",
        values={},
        row_cap=max(count, 500_000),
        timeout_s=3600,
        actor=ACTOR,
    )
    audience = save_recurring_audience(ws, source.id, name="bench people", actor=ACTOR)
    imported = time.perf_counter() - start
    template = services.save_template(ws, "bench", TemplateSource(SUBJECT, HTML, TEXT), actor=ACTOR)
    engine = save_engine(
        ws,
        name="sink",
        url=f"smtp://127.0.0.1:{port}?tls=none",
        from_email=FROM,
        from_name="Bench",
        actor=ACTOR,
    )
    if rate > 0:
        save_engine_limits(ws, engine.id, EngineLimits(rate_per_second=rate, burst=1), actor=ACTOR)
    workflow = services.create_workflow(
        ws,
        name="bench",
        audience_id=audience.id,
        template_id=template.id,
        engine_id=engine.id,
        options=SendOptions(rate=0, concurrency=concurrency, batch_size=batch_size, skip_mx=True),
        actor=ACTOR,
    )
    ws.close()
    return {"workflow_id": workflow.id, "import_s": imported, "rss_mb": peak_rss_mb()}


def send(run_id: int) -> dict[str, float]:
    from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

    ws = open_workspace(Settings())
    start = time.perf_counter()
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    elapsed = time.perf_counter() - start
    sent = services.run_summary(ws, run_id).counts.sent
    ws.close()
    return {"elapsed": elapsed, "sent": sent, "status": str(run.status), "rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "setup":
        result = setup(args[0], int(args[1]), int(args[2]), float(args[3]), *map(int, args[4:]))
    else:
        result = send(int(args[0]))
    print(json.dumps(result))
