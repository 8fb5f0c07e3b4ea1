"""Runs one command line of the CLI in this process and prints how far its peak memory rose.

`python tests/memory_probe.py ARGS…` (environment as for `python -m outreach_core`, the
repository on PYTHONPATH): imports
the CLI and everything a command loads first, notes the peak resident set size, runs
`main(ARGS)`, then prints `exit=<code> peak_growth_mb=<MB>` as its last line. The streamed
paths' tests bound the growth: a path that holds every row at once goes past the bound.
"""

from __future__ import annotations

import resource
import sys

# everything a command imports lazily, imported before the baseline is taken
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

import outreach_core.services.preflight
import outreach_core.services.run_summaries  # noqa: F401
from outreach_core.entrypoints.cli import main


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(argv: list[str]) -> tuple[int, float]:
    """Run the command line; its exit code and how many MB the peak RSS rose meanwhile."""
    before = peak_rss_mb()
    code = main(argv)
    return code, peak_rss_mb() - before


if __name__ == "__main__":
    exit_code, growth = probe(sys.argv[1:])
    print(f"exit={exit_code} peak_growth_mb={growth:.1f}", flush=True)
