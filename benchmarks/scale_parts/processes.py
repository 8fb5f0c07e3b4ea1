"""A benchmark workspace on a scratch database, and the processes that work on it: the measured
children (`child.py`) and scheduler daemons, each a real subprocess sharing the data folder
(the workspace's secret key) and the database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from outreach_core import services
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import daemons
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import RunSummary
from outreach_core.domain.states import FINAL_RUN_STATES

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")
T = TypeVar("T")


class BenchWorkspace:
    """One workspace (`database_url`, data folder `folder`) and the processes started on it."""

    def __init__(self, database_url: str, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
        self.env.update(
            OUTREACH_DATABASE_URL=database_url,
            OUTREACH_DATA_DIR=str(folder / "data"),
            PYTHONPATH=str(REPO),
            LOG_LEVEL="WARNING",
        )
        self.daemons: list[subprocess.Popen[bytes]] = []
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        """The workspace, opened in this process (after a child has migrated it)."""
        if self._ws is None:
            self._ws = open_workspace(
                Settings(
                    _env_file=None,
                    OUTREACH_DATABASE_URL=self.env["OUTREACH_DATABASE_URL"],
                    OUTREACH_DATA_DIR=Path(self.env["OUTREACH_DATA_DIR"]),
                )
            )
        return self._ws

    def child(self, *args: object) -> dict[str, float]:
        """Run `child.py ARGS` to its end; its JSON answer."""
        done = subprocess.run(
            [sys.executable, str(CHILD), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.splitlines()[-1])

    def queue(self, workflow_id: int) -> int:
        return services.queue_run(self.ws, workflow_id, trigger="bench", actor="bench")

    def start_daemons(self, count: int) -> None:
        """Start `count` daemons (logging to daemons.log); return once all have registered."""
        log = (self.folder / "daemons.log").open("ab")
        for _ in range(count):
            self.daemons.append(
                subprocess.Popen(
                    [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
                    cwd=REPO,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
        log.close()
        pids = {daemon.pid for daemon in self.daemons}

        def registered() -> bool:
            with self.ws.db.connect() as conn:
                return pids <= {d.pid for d in daemons.list_daemons(conn)}

        # a daemon takes seconds to import and register: the clock starts once all tick
        wait_until(registered, what=f"{count} daemons to start", timeout=120, every=0.2)

    def kill_daemons(self) -> None:
        """SIGKILL: what a crash does (nothing is finished, nothing is released)."""
        for daemon in self.daemons:
            daemon.kill()
            daemon.wait()
        self.daemons.clear()

    def stop_daemons(self) -> None:
        """SIGTERM, as an operator stops them; killed if still running after 20 s."""
        for daemon in self.daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in self.daemons:
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self.daemons.clear()

    def summary(self, run_id: int) -> RunSummary:
        return services.run_summary(self.ws, run_id)

    def wait_for_end(self, run_id: int, *, timeout: float) -> RunSummary:
        """Poll until the run is final (COMPLETED, FAILED, CANCELLED); its summary."""
        return wait_until(
            lambda: (s := self.summary(run_id)).run.status in FINAL_RUN_STATES and s,
            what=f"run {run_id} to end",
            timeout=timeout,
        )

    def close(self) -> None:
        self.kill_daemons()
        if self._ws is not None:
            self._ws.close()
            self._ws = None


def wait_until(check: Callable[[], T], *, what: str, timeout: float, every: float = 0.1) -> T:
    """Call `check` until it returns something true; that value. SystemExit past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)
