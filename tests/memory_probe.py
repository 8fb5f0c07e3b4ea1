"""Runs one command line of the CLI in this process and prints how far its peak memory rose.

`python tests/memory_probe.py ARGS…` (environment as for `python -m outreach_core`, the
repository on PYTHONPATH): imports
the CLI and everything a command loads first, opens the workspace once, resets the peak resident set size,
runs
`main(ARGS)`, then prints `exit=<code> peak_growth_mb=<MB>` as its last line. The streamed
paths' tests bound the growth: a path that holds every row at once goes past the bound.
"""

from __future__ import annotations

import sys

# everything a command imports lazily, imported before the baseline is taken
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

import outreach_core.services.preflight
import outreach_core.services.run_summaries  # noqa: F401
from outreach_core.adapters.workspace import start_process
from outreach_core.entrypoints.cli import main


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def resident_mb() -> float:
    """The process's resident set size now."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The process's peak resident set size since it started or `reset_peak` was called."""
    return _status_mb("VmHWM")


def reset_peak() -> None:
    """Start the peak resident set size afresh from the current size (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")


def probe(argv: list[str]) -> tuple[int, float]:
    """Run the command line; its exit code and how many MB the peak RSS rose above the
    resident size it started from. The workspace is opened (and its migrations checked) once
    first, so what is measured is the command's own work, not the opening."""
    start_process().close()
    reset_peak()
    before = resident_mb()
    code = main(argv)
    return code, peak_rss_mb() - before


if __name__ == "__main__":
    exit_code, growth = probe(sys.argv[1:])
    print(f"exit={exit_code} peak_growth_mb={growth:.1f} peak_mb={peak_rss_mb():.1f}", flush=True)
