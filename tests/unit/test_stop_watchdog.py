"""The stop watchdog: a process still running `grace` seconds after it was armed exits hard.

Each case runs in a child process (killed after 30 s, so a watchdog that fails never hangs
the suite): one busy in Python code, one stuck in a single C call that never lets another
thread run, where the kernel alarm ends it.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from outreach_core.entrypoints.signals import FORCED_EXIT_CODE

from conftest import REPO

ARMED = (
    "import logging, sys\n"
    "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
    "from outreach_core.entrypoints.signals import arm_watchdog\n"
    "arm_watchdog(0.5)\n"
)


def run_child(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ARMED + body],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_process_busy_in_python_is_ended_with_a_log_line_saying_where() -> None:
    """Verify a loop that never ends exits with FORCED_EXIT_CODE and logs
    event=daemon.forced_exit naming the place the main thread was at."""
    result = run_child("def spin():\n    while True:\n        pass\nspin()\n")

    assert result.returncode == FORCED_EXIT_CODE, result.stderr
    assert "event=daemon.forced_exit after_s=0.5" in result.stderr
    assert "<string>:" in result.stderr  # where: the child's own code


def test_a_process_stuck_in_one_c_call_is_ended_by_the_alarm() -> None:
    """Verify a huge power (one C call holding the interpreter) still ends: by SIGALRM."""
    result = run_child("n = 9\nprint(n ** (n ** n))\n")

    assert result.returncode == -signal.SIGALRM, result.stderr
