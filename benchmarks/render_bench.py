"""Rendering throughput: Outreach's render path against bare Jinja2, same templates, same run.

Both render subject, HTML and text for the same N rows, each compiled once:
- baseline: a plain `jinja2.Environment` (HTML autoescaped), the row plus built-ins as context;
- outreach: `CompiledTemplate.render(render_context(...))` as the executor and the dry run
  call it: sandboxed, strict, empty cells dropped, printable-values check, one-line subject.

    python benchmarks/render_bench.py [--rows 100000] [--repeat 3]

Each side is timed `--repeat` times, interleaved, and its best time is kept.
Ends with `RESULT outreach_rows_per_s=… baseline_rows_per_s=… ratio=…` (target ratio >= 0.8).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from outreach_core.domain.planning import SenderIdentity, render_context  # noqa: E402
from outreach_core.domain.templating import CompiledTemplate, load_template_dir  # noqa: E402

TEMPLATE_DIR = REPO / "outreach_core" / "services" / "demo" / "template"
SENDER = SenderIdentity("workshops@example.com", "Outreach Demo")
RUN_DATE = datetime(2026, 11, 29, tzinfo=UTC)


def make_rows(count: int) -> list[dict[str, str]]:
    cities = ["Lyon", "Porto", "Graz", "Turku", "Ghent"]
    return [
        {
            "email": f"person{n}@example.com",
            "first_name": f"Person {n}",
            "company": f"Company & Sons {n % 97}",
            "city": cities[n % len(cities)],
        }
        for n in range(count)
    ]


def baseline(rows: list[dict[str, str]]) -> float:
    source = load_template_dir(TEMPLATE_DIR)
    plain, html = Environment(), Environment(autoescape=True)
    subject_t = plain.from_string(source.subject)
    html_t = html.from_string(source.html or "")
    text_t = plain.from_string(source.text or "")
    builtins = {
        "today": RUN_DATE.date().isoformat(),
        "run_date": RUN_DATE.date().isoformat(),
        "sender_name": SENDER.name,
        "sender_email": SENDER.email,
    }
    start = time.perf_counter()
    for row in rows:
        context = {**row, **builtins, "recipient": {"email": row["email"]}}
        subject_t.render(context)
        html_t.render(context)
        text_t.render(context)
    return time.perf_counter() - start


def outreach(rows: list[dict[str, str]]) -> float:
    template = CompiledTemplate(load_template_dir(TEMPLATE_DIR))
    start = time.perf_counter()
    for row in rows:
        template.render(render_context(row, email=row["email"], sender=SENDER, run_date=RUN_DATE))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = make_rows(args.rows)
    base_times, ours_times = [], []
    for _ in range(args.repeat):
        base_times.append(baseline(rows))
        ours_times.append(outreach(rows))
    base_s, ours_s = min(base_times), min(ours_times)
    base_rate, ours_rate = args.rows / base_s, args.rows / ours_s
    print(f"rows:                                    {args.rows} (best of {args.repeat})")
    print(f"baseline (bare jinja2, compiled once):   {base_s:7.2f} s  {base_rate:9.0f} rows/s")
    print(f"outreach (sandboxed, strict, checked):   {ours_s:7.2f} s  {ours_rate:9.0f} rows/s")
    print(f"ratio outreach/baseline throughput:      {ours_rate / base_rate:.2f} (target >= 0.80)")
    print(
        f"RESULT outreach_rows_per_s={ours_rate:.0f} baseline_rows_per_s={base_rate:.0f} "
        f"ratio={ours_rate / base_rate:.2f}"
    )


if __name__ == "__main__":
    main()
