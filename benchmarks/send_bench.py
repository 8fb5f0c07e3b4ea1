"""Sending throughput: Outreach's SMTP engine against the classic one-connection-per-message loop.

Both send the same N messages to a real SMTP server (aiosmtpd) on 127.0.0.1, in this run:
- baseline: smtplib, a new connection for every message (what the classic script did);
- outreach: the executor, frozen ledger, reused aiosmtplib connections, concurrency 4.

    python benchmarks/send_bench.py [--messages 1000]

Ends with `RESULT outreach_msgs_per_s=… baseline_msgs_per_s=… ratio=…`.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from outreach_core import services  # noqa: E402
from outreach_core.audience import ParsedFile  # noqa: E402
from outreach_core.executor import StopSignal, new_worker_id, run_to_end  # noqa: E402
from outreach_core.models import SendOptions  # noqa: E402
from outreach_core.settings import Settings  # noqa: E402
from outreach_core.templating import TemplateSource  # noqa: E402
from outreach_core.workspace import open_workspace  # noqa: E402

from smtp_server import SmtpTestServer  # noqa: E402


def baseline(port: int, count: int) -> float:
    start = time.perf_counter()
    for n in range(count):
        msg = EmailMessage()
        msg["From"] = "bench@example.com"
        msg["To"] = f"b{n}@example.com"
        msg["Subject"] = f"Hello B{n}"
        msg.set_content(f"Hello B{n}")
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)
    return time.perf_counter() - start


def outreach(url: str, count: int, folder: Path) -> float:
    ws = open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=folder))
    rows = [{"email": f"o{n}@example.com", "name": f"O{n}"} for n in range(count)]
    workflow = services.setup_workflow(
        ws,
        name="bench",
        parsed=ParsedFile("bench.csv", ["email", "name"], "email", rows),
        template=TemplateSource("Hello {{ name }}", None, "Hello {{ name }}"),
        engine_url=url,
        from_email="bench@example.com",
        from_name="",
        options=SendOptions(rate=0, concurrency=4, batch_size=200, skip_mx=True),
        actor="bench",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="bench", actor="bench")
    start = time.perf_counter()
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    elapsed = time.perf_counter() - start
    sent = services.run_summary(ws, run_id).counts.sent
    ws.close()
    if sent != count:
        raise SystemExit(f"outreach sent {sent} of {count}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    count = parser.parse_args().messages
    with SmtpTestServer() as server, tempfile.TemporaryDirectory() as tmp:
        base_s = baseline(server.port, count)
        ours_s = outreach(server.url, count, Path(tmp))
        received = len(server.handler.received)
    if received != 2 * count:
        raise SystemExit(f"server received {received}, expected {2 * count}")
    base_rate, ours_rate = count / base_s, count / ours_s
    print(f"messages:           {count}")
    print(f"baseline (smtplib, new connection each): {base_s:7.2f} s  {base_rate:8.1f} msg/s")
    print(f"outreach (ledger, reused connections):   {ours_s:7.2f} s  {ours_rate:8.1f} msg/s")
    print(f"ratio outreach/baseline throughput:      {ours_rate / base_rate:.2f}")
    print(
        f"RESULT outreach_msgs_per_s={ours_rate:.1f} baseline_msgs_per_s={base_rate:.1f} "
        f"ratio={ours_rate / base_rate:.2f}"
    )


if __name__ == "__main__":
    main()
