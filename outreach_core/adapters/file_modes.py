"""Files and folders only their owner may read: the data folder, the database, the key file and
the outbox's messages hold contact data and secrets.

Modes are set explicitly (open with the mode, then chmod), so the result does not depend on the
process's umask. A file or folder found readable by others is tightened with a log line; if
that fails (another owner, a read-only mount) the warning says so and work goes on.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600

log = logging.getLogger("outreach.files")


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not current & 0o077:
        return
    try:
        path.chmod(mode)
    except OSError as exc:
        log.warning(
            "%s can be read by other users (mode %o) and could not be changed: %s; chmod %o it",
            path,
            current,
            exc.strerror,
            mode,
        )
        return
    log.warning("%s could be read by other users (mode %o): changed to %o", path, current, mode)


def private_dir(path: Path) -> Path:
    """Create the folder (and missing parents) with mode 0700, or tighten it if it exists."""
    if path.is_dir():
        _tighten(path, PRIVATE_DIR)
        return path
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    for created in missing:  # mkdir's mode passes through the umask; chmod does not
        created.chmod(PRIVATE_DIR)
    return path


def new_private_dir(path: Path) -> Path:
    """Create the folder with mode 0700 if it is missing; an existing one is left as it is (it
    was chosen by the user, e.g. an outbox folder shared on purpose)."""
    if not path.is_dir():
        private_dir(path)
    return path


def private_file(path: Path) -> Path:
    """Create an empty file with mode 0600 if it is missing, or tighten it if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        _tighten(path, PRIVATE_FILE)
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` (created or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE)
        handle.write(data)
