"""Sending at scale: a million recipients, a crash, several daemons, a shared rate limit.

Every figure is measured in this run beside its baseline, on PostgreSQL (scratch databases with
unique names, dropped at the end, on Ctrl-C and on SIGTERM) and against loopback SMTP sinks
(`smtp_sink.py`, four processes on one port) that this script starts and stops:

- baseline:  send_bench's outreach path, 10,000 recipients (SQLite), messages/s;
- million:   N recipients in a PostgreSQL table (filled by generate_series), imported as a SQL
             audience (a saved query, re-run by the run's freeze) and sent by a `send` child
             (freeze, render, build, send, record; rate limit off, concurrency 8) to the fast
             sink: wall time, messages/s and its ratio to the baseline, peak RSS of the import
             and of the sending process;
- kill:      one daemon SIGKILLed once the sink has half the run, then another daemon takes
             the run over: duplicates counted at the sink (it records each message's delivery
             id), unknown in the ledger (bounded by the concurrency, 8);
- scaleout:  1 daemon, then 3 daemons (fresh workspaces), on a sink answering each DATA after
             50 ms: the speed-up of queue-to-completed. Each daemon keeps 2 connections open
             (--scaleout-concurrency) in batches of 50, so one daemon is bound by the peer's
             latency (at most 2 / 50 ms = 40 msg/s), the case more workers are for; at 8, one
             daemon already keeps a 2-core machine's CPU busy and three measure the CPU;
- ratelimit: 3 daemons through an engine limited to 20 messages/s (burst 1): the most messages
             the sink saw within any 10-second window, per second.

    python benchmarks/scale_bench.py [--parts baseline,million,kill,scaleout,ratelimit]
        [--recipients 1000000] [--workspace-db postgresql+psycopg://postgres@127.0.0.1:5432/test]

Targets (ticked in the table): peak RSS <= 200 MB in every process, million >= 0.8 x baseline,
0 duplicates and unknown <= 8, 3 daemons >= 2.7 x one, never above 21/s over 10 s.
Ends with one line `RESULT key=value ...`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

import send_bench  # noqa: E402
from scale_parts.processes import BenchWorkspace, wait_until  # noqa: E402
from scale_parts.records import busiest_window, duplicates, read_records  # noqa: E402
from scale_parts.scratch import ScratchDatabases, fill_people, scratch_databases  # noqa: E402

PARTS = ("baseline", "million", "kill", "scaleout", "ratelimit")
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RSS_BOUND_MB = 200
RATE_LIMIT = 20.0
#: rows per batch in the scale-out part: small, so three daemons share the run's tail evenly
SCALEOUT_BATCH = 50
#: rows of one figure and the bound it is held to (None: no bound)
Row = tuple[str, str, str]


class Bench:
    """The parts, sharing the scratch databases, one source table and a scratch folder."""

    def __init__(self, scratch: ScratchDatabases, folder: Path, args: argparse.Namespace) -> None:
        self.scratch, self.folder, self.args = scratch, folder, args
        self.rows: list[Row] = []
        self.result: dict[str, str] = {}
        self._source: str | None = None

    def row(self, name: str, value: str, target: str = "") -> None:
        self.rows.append((name, value, target))
        print(f"  {name}: {value} {target}", flush=True)

    def source(self) -> str:
        """The source database: bench_people with as many rows as the largest part needs."""
        if self._source is None:
            self._source = self.scratch.create("source")
            a = self.args
            count = max(a.recipients, a.kill_recipients, a.scaleout_recipients, a.rate_recipients)
            self.row("source table filled (generate_series)", f"{count} rows in "
                     f"{fill_people(self._source, count):.1f} s")  # fmt: skip
        return self._source

    def workspace(self, label: str, port: int, count: int, rate: float = 0, *shape: int) -> tuple[BenchWorkspace, dict[str, float]]:  # fmt: skip
        """A fresh workspace whose workflow sends the first `count` source rows to `port`
        (`shape`: the workflow's concurrency and batch size, when not send_bench's)."""
        bench_ws = BenchWorkspace(self.scratch.create(label), self.folder / label)
        return bench_ws, bench_ws.child("setup", self.source(), port, count, rate, *shape)

    # --- parts ---------------------------------------------------------------------------

    def baseline(self) -> None:
        sink = send_bench.Sink()
        try:
            figures = send_bench.outreach(sink.port, 10_000)
        finally:
            sink.close()
        self.baseline_rate = 10_000 / figures["elapsed"]
        self.row(
            "baseline: send_bench outreach, 10,000 (SQLite)", f"{self.baseline_rate:.0f} msg/s"
        )
        self.result["msgs_per_s_10k"] = f"{self.baseline_rate:.0f}"

    def million(self) -> None:
        count = self.args.recipients
        sink = send_bench.Sink()
        bench_ws = None
        try:
            bench_ws, setup = self.workspace("million", sink.port, count)
            run_id = bench_ws.queue(int(setup["workflow_id"]))
            sent = bench_ws.child("send", run_id)
            received = sink.count()
        finally:
            sink.close()
            if bench_ws:
                bench_ws.close()
        rate = count / sent["elapsed"]
        rss = max(setup["rss_mb"], sent["rss_mb"])
        self.row(f"million: import of the SQL audience, {count}", f"{setup['import_s']:.1f} s")
        self.row("million: peak RSS of the import", f"{setup['rss_mb']:.0f} MB",
                 _target(setup["rss_mb"] <= RSS_BOUND_MB, f"<= {RSS_BOUND_MB} MB"))  # fmt: skip
        self.row(f"million: freeze + send of {count} ({sent['status']})",
                 f"{sent['elapsed']:.1f} s, {rate:.0f} msg/s, {received} at the sink")  # fmt: skip
        self.row("million: peak RSS of the sending process", f"{sent['rss_mb']:.0f} MB",
                 _target(sent["rss_mb"] <= RSS_BOUND_MB, f"<= {RSS_BOUND_MB} MB"))  # fmt: skip
        self.result.update(rss_mb_max=f"{rss:.0f}", import_rss_mb=f"{setup['rss_mb']:.0f}",
                           send_rss_mb=f"{sent['rss_mb']:.0f}", msgs_per_s_1m=f"{rate:.0f}",
                           recipients=str(count))  # fmt: skip
        if hasattr(self, "baseline_rate"):
            ratio = rate / self.baseline_rate
            self.row(
                "million: msg/s / baseline msg/s", f"{ratio:.2f}", _target(ratio >= 0.8, ">= 0.8")
            )
            self.result["vs_10k"] = f"{ratio:.2f}"

    def kill(self) -> None:
        count = self.args.kill_recipients
        (self.folder / "kill-records").mkdir()
        sink = send_bench.Sink(record_dir=self.folder / "kill-records")
        bench_ws = None
        try:
            bench_ws, setup = self.workspace("kill", sink.port, count)
            bench_ws.start_daemons(1)
            run_id = bench_ws.queue(int(setup["workflow_id"]))
            at = wait_until(lambda: (n := sink.count()) >= count // 2 and n, what="half the run",
                            timeout=600, every=0.05)  # fmt: skip
            bench_ws.kill_daemons()
            bench_ws.start_daemons(1)
            summary = bench_ws.wait_for_end(run_id, timeout=900)
            sink.count()  # flushes the records
        finally:
            if bench_ws:
                bench_ws.close()
            sink.close()
        records = read_records(sink.records)
        dupes, unknown = duplicates(records), summary.counts.unknown
        self.row(f"kill: SIGKILL at {at} of {count}, then take-over",
                 f"{summary.run.status}, {summary.counts.sent} sent, {len(records)} at the sink")  # fmt: skip
        self.row("kill: duplicates at the sink", str(dupes), _target(dupes == 0, "= 0"))
        self.row("kill: unknown in the ledger", str(unknown),
                 _target(unknown <= send_bench.CONCURRENCY, f"<= {send_bench.CONCURRENCY}"))  # fmt: skip
        self.result.update(duplicates=str(dupes), unknown=str(unknown))

    def _daemons_send(self, label: str, daemons: int, count: int, *, delay_ms: float, rate: float, shape: tuple[int, ...] = ()) -> tuple[float, list[float]]:  # fmt: skip
        """Queue-to-completed seconds of `daemons` daemons sending `count`, and the sink's times."""
        record = self.folder / f"{label}-records"
        record.mkdir()
        sink = send_bench.Sink(record_dir=record, delay_ms=delay_ms)
        bench_ws = None
        try:
            bench_ws, setup = self.workspace(label, sink.port, count, rate, *shape)
            bench_ws.start_daemons(daemons)
            start = time.perf_counter()
            run_id = bench_ws.queue(int(setup["workflow_id"]))
            summary = bench_ws.wait_for_end(run_id, timeout=1800)
            elapsed = time.perf_counter() - start
            sink.count()
        finally:
            if bench_ws:
                bench_ws.close()
            sink.close()
        if summary.counts.sent != count:
            raise SystemExit(
                f"{label}: sent {summary.counts.sent} of {count} ({summary.run.status})"
            )
        return elapsed, [at for at, _ in read_records(sink.records)]

    def scaleout(self) -> None:
        count = self.args.scaleout_recipients
        shape = (self.args.scaleout_concurrency, SCALEOUT_BATCH)
        one, _ = self._daemons_send("scale1", 1, count, delay_ms=50, rate=0, shape=shape)
        three, _ = self._daemons_send("scale3", 3, count, delay_ms=50, rate=0, shape=shape)
        self.row(
            f"scaleout: 1 daemon, {count} on the 50 ms sink, {shape[0]} connections each",
            f"{one:.1f} s, {count / one:.0f} msg/s",
        )
        self.row(
            f"scaleout: 3 daemons, {count} on the 50 ms sink",
            f"{three:.1f} s, {count / three:.0f} msg/s",
        )
        self.row(
            "scaleout: speed-up of 3 daemons",
            f"{one / three:.2f}",
            _target(one / three >= 2.7, ">= 2.7"),
        )
        self.result["speedup_3_daemons"] = f"{one / three:.2f}"

    def ratelimit(self) -> None:
        count = self.args.rate_recipients
        elapsed, times = self._daemons_send("rate", 3, count, delay_ms=0, rate=RATE_LIMIT)
        busiest = busiest_window(times, 10) / 10
        self.row(f"ratelimit: 3 daemons, engine at {RATE_LIMIT:.0f}/s, {count}",
                 f"{elapsed:.1f} s, {count / elapsed:.1f} msg/s overall")  # fmt: skip
        self.row("ratelimit: busiest 10 s window at the sink", f"{busiest:.1f}/s",
                 _target(busiest <= RATE_LIMIT + 1, f"<= {RATE_LIMIT + 1:.0f}/s"))  # fmt: skip
        self.result.update(max_rate_10s=f"{busiest:.1f}", rate_limit=f"{RATE_LIMIT:.0f}")


def _target(ok: bool, bound: str) -> str:
    return f"({'ok' if ok else 'MISSED'}: {bound})"


def print_table(rows: list[Row]) -> None:
    width = max(len(name) for name, _, _ in rows)
    print(f"\n{'figure':<{width}}  {'value':<44} target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<44} {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated, of " + ",".join(PARTS)
    )
    parser.add_argument("--recipients", type=int, default=1_000_000, help="the million part's size")
    parser.add_argument("--workspace-db", default=DEFAULT_DB, help="a PostgreSQL server URL")
    parser.add_argument("--kill-recipients", type=int, default=20_000)
    parser.add_argument("--scaleout-recipients", type=int, default=6_000)
    parser.add_argument(
        "--scaleout-concurrency", type=int, default=2, help="connections per daemon (scaleout)"
    )
    parser.add_argument("--rate-recipients", type=int, default=800, help="40 s at 20/s")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp, scratch_databases(args.workspace_db) as scratch:
        bench = Bench(scratch, Path(tmp), args)
        for part in PARTS:
            if part in parts:
                print(f"{part} ...", flush=True)
                getattr(bench, part)()
    print_table(bench.rows)
    keys = ("rss_mb_max", "import_rss_mb", "msgs_per_s_1m", "vs_10k", "duplicates", "unknown",
            "speedup_3_daemons", "max_rate_10s", "rate_limit")  # fmt: skip
    extra = [k for k in bench.result if k not in keys]
    print("RESULT " + " ".join(f"{k}={bench.result.get(k, '-')}" for k in (*keys, *extra)))


if __name__ == "__main__":
    main()
