"""Sending throughput: the whole Outreach path beside two baselines, in the same run.

All three send the same rows to the same sink on 127.0.0.1: minimal asyncio SMTP servers in
four processes sharing one port (SO_REUSEPORT) that count and discard what arrives (aiosmtpd tops out near 600 msg/s and
would measure itself, not the senders).

- outreach: freeze the audience into the ledger, render, build, send over SMTP (concurrency 8,
  rate limit off), record each outcome in the ledger (SQLite), measured in a child process;
- bare:     the same renders (same compiled template), a minimal multipart message from the
  standard library's fastest builder (`email.mime`), aiosmtplib over 8 reused connections,
  no database;
- mailmerge 2.3.0: the classic CLI with the same rows, template and sink.

The outreach path runs in a fresh child process (the audience is imported by another one
before), so its peak RSS is the send path's own; a second such run with `--rss-recipients`
rows reports the peak RSS for 100,000.

    python benchmarks/send_bench.py [--messages 10000] [--rss-recipients 100000]

Targets: outreach >= 0.85 x bare, >= 2.5 x mailmerge, peak RSS (100,000) < 250 MB.
Ends with one line `RESULT key=value ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import aiosmtplib  # noqa: E402

from outreach_core.domain.templating import CompiledTemplate, TemplateSource  # noqa: E402

SUBJECT = "Hello {{ name }}"
HTML = "<p>Hello {{ name }},</p><p>this is message number {{ n }} of the benchmark.</p>"
TEXT = "Hello {{ name }},\n\nthis is message number {{ n }} of the benchmark.\n"
FROM = "bench@example.com"
CONCURRENCY = 8


def rows(count: int, prefix: str) -> list[dict[str, str]]:
    return [{"email": f"{prefix}{n}@example.com", "name": f"Person {n}", "n": str(n)}
            for n in range(count)]  # fmt: skip


# --- the sink (benchmarks/smtp_sink.py): its own process, answers "count" on stdin --------


#: sink processes sharing the port (SO_REUSEPORT); the kernel spreads connections over them
SINK_PROCESSES = 4


class Sink:
    """`record_dir`: each sink process records its messages in a file there
    (`smtp_sink.py --record`); `delay_ms`: each DATA is answered after that long."""

    def __init__(self, record_dir: Path | None = None, delay_ms: float = 0) -> None:
        from smtp_server import free_port

        self.port = free_port()
        script = str(Path(__file__).with_name("smtp_sink.py"))
        self.records = (
            [record_dir / f"sink-{n}.log" for n in range(SINK_PROCESSES)] if record_dir else []
        )
        options = [["--delay-ms", str(delay_ms)] + (["--record", str(self.records[n])] if record_dir else [])
                   for n in range(SINK_PROCESSES)]  # fmt: skip
        self.procs = [
            subprocess.Popen(
                [sys.executable, script, str(self.port), *options[n]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(SINK_PROCESSES)
        ]
        for proc in self.procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def count(self) -> int:
        total = 0
        for proc in self.procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("count\n")
            proc.stdin.flush()
            total += int(proc.stdout.readline())
        return total

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)


# --- bare baseline ---------------------------------------------------------------------------


def bare(port: int, data: list[dict[str, str]]) -> float:
    template = CompiledTemplate(TemplateSource(SUBJECT, HTML, TEXT))

    async def worker(queue: asyncio.Queue[dict[str, str]]) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
            while not queue.empty():
                row = queue.get_nowait()
                rendered = template.render(row)
                msg = MIMEMultipart("alternative")
                msg["From"] = FROM
                msg["To"] = row["email"]
                msg["Subject"] = rendered.subject
                msg.attach(MIMEText(rendered.text or "", "plain", "utf-8"))
                msg.attach(MIMEText(rendered.html or "", "html", "utf-8"))
                await client.sendmail(FROM, [row["email"]], msg.as_bytes())

    async def run() -> None:
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for row in data:
            queue.put_nowait(row)
        await asyncio.gather(*(worker(queue) for _ in range(CONCURRENCY)))

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start


# --- mailmerge 2.3.0 -------------------------------------------------------------------------


def mailmerge(port: int, data: list[dict[str, str]], folder: Path) -> float:
    exe = shutil.which("mailmerge", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("mailmerge is not installed: pip install mailmerge==2.3.0")
    (folder / "server.conf").write_text(f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\n")
    (folder / "template.txt").write_text(
        "TO: {{ email }}\nSUBJECT: " + SUBJECT + "\nFROM: " + FROM + "\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="outer"\n\n'
        "--outer\nContent-Type: text/plain; charset=utf-8\n\n" + TEXT + "\n"
        "--outer\nContent-Type: text/html; charset=utf-8\n\n" + HTML + "\n--outer--\n"
    )
    with (folder / "db.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["email", "name", "n"])
        writer.writeheader()
        writer.writerows(data)
    start = time.perf_counter()
    subprocess.run(
        [exe, "--no-dry-run", "--no-limit", "--template", "template.txt", "--database", "db.csv",
         "--config", "server.conf", "--output-format", "raw"],
        cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return time.perf_counter() - start


# --- outreach, in a child process (its own RSS) ----------------------------------------------


def _workspace(folder: Path):
    from outreach_core.adapters.settings import Settings
    from outreach_core.adapters.workspace import open_workspace

    return open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=folder))


def setup_child(port: int, count: int, folder: Path) -> dict[str, float]:
    """Import the audience and queue the run (not part of the measured path)."""
    from outreach_core import services
    from outreach_core.adapters.contact_files import ParsedFile
    from outreach_core.domain.models import SendOptions

    ws = _workspace(folder)
    workflow = services.setup_workflow(
        ws,
        name="bench",
        parsed=ParsedFile("bench.csv", ["email", "name", "n"], "email", rows(count, "o")),
        template=TemplateSource(SUBJECT, HTML, TEXT),
        engine_url=f"smtp://127.0.0.1:{port}?tls=none",
        from_email=FROM,
        from_name="Bench",
        options=SendOptions(rate=0, concurrency=CONCURRENCY, batch_size=500, skip_mx=True),
        actor="bench",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="bench", actor="bench")
    ws.close()
    return {"run_id": run_id}


def send_child(run_id: int, count: int, folder: Path) -> dict[str, float]:
    """The measured path, in a fresh process: freeze, render, build, send, record."""
    from outreach_core import services
    from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

    ws = _workspace(folder)
    start = time.perf_counter()
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    elapsed = time.perf_counter() - start
    sent = services.run_summary(ws, run_id).counts.sent
    ws.close()
    if sent != count:
        raise SystemExit(f"outreach sent {sent} of {count} ({run})")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"elapsed": elapsed, "rss_mb": rss_mb, "sent": sent}


def _child(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def outreach(port: int, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_id = int(_child("--setup", str(port), str(count), tmp)["run_id"])
        return _child("--send", str(run_id), str(count), tmp)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--mailmerge-messages", type=int, default=None,
                        help="rows for mailmerge (default: --messages)")  # fmt: skip
    parser.add_argument("--rss-recipients", type=int, default=100_000, help="0 skips it")
    parser.add_argument("--setup", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--send", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        port, count, folder = args.setup
        print(json.dumps(setup_child(int(port), int(count), Path(folder))))
        return
    if args.send:
        run_id, count, folder = args.send
        print(json.dumps(send_child(int(run_id), int(count), Path(folder))))
        return

    count = args.messages
    mm_count = args.mailmerge_messages or count
    sink = Sink()
    try:
        ours = outreach(sink.port, count)
        after_ours = sink.count()
        bare_s = bare(sink.port, rows(count, "b"))
        after_bare = sink.count()
        with tempfile.TemporaryDirectory() as tmp:
            mm_s = mailmerge(sink.port, rows(mm_count, "m"), Path(tmp))
        after_mm = sink.count()
        big = outreach(sink.port, args.rss_recipients) if args.rss_recipients else None
    finally:
        sink.close()
    deltas = (after_ours, after_bare - after_ours, after_mm - after_bare)
    if deltas != (count, count, mm_count):
        raise SystemExit(f"sink received {deltas}, expected {(count, count, mm_count)}")

    ours_rate = count / ours["elapsed"]
    bare_rate, mm_rate = count / bare_s, mm_count / mm_s
    print(
        f"recipients: {count} (mailmerge {mm_count}); sink: {SINK_PROCESSES} minimal asyncio SMTP processes on one port"
    )
    print(f"{'path':<58} {'seconds':>8} {'msg/s':>9}")
    print(f"{'outreach (freeze, render, build, send, ledger; conc. 8)':<58} "
          f"{ours['elapsed']:8.2f} {ours_rate:9.1f}")  # fmt: skip
    print(f"{'bare (render, email.mime, aiosmtplib x8, no database)':<58} "
          f"{bare_s:8.2f} {bare_rate:9.1f}")  # fmt: skip
    print(f"{'mailmerge 2.3.0':<58} {mm_s:8.2f} {mm_rate:9.1f}")
    print(f"outreach / bare:      {ours_rate / bare_rate:.2f}  (target >= 0.85)")
    print(f"outreach / mailmerge: {ours_rate / mm_rate:.2f}  (target >= 2.5)")
    print(f"peak RSS, outreach child, {count} recipients: {ours['rss_mb']:.0f} MB")
    result = (
        f"RESULT outreach_msgs_per_s={ours_rate:.1f} bare_msgs_per_s={bare_rate:.1f} "
        f"mailmerge_msgs_per_s={mm_rate:.1f} vs_bare={ours_rate / bare_rate:.2f} "
        f"vs_mailmerge={ours_rate / mm_rate:.2f}"
    )
    if big:
        big_rate = args.rss_recipients / big["elapsed"]
        print(
            f"peak RSS, outreach child, {args.rss_recipients} recipients: {big['rss_mb']:.0f} MB"
            f"  (target < 250 MB; {big_rate:.1f} msg/s)"
        )
        result += f" rss_mb_{args.rss_recipients}={big['rss_mb']:.0f}"
    print(result)


if __name__ == "__main__":
    main()
