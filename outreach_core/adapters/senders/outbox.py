"""The local outbox: each message becomes an .eml file, spread over subfolders by the day it
was written and by thousand of delivery ids (`<outbox>/<YYYY-MM-DD>/<id // 1000:06d>/`), so no
folder holds more than a thousand messages of a day however large the run. `message_files`
walks them in that order: whatever lists an outbox uses it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from outreach_core.adapters.file_modes import new_private_dir, write_private
from outreach_core.adapters.senders.base import SendResult
from outreach_core.domain.clock import utcnow
from outreach_core.domain.message import Outgoing
from outreach_core.errors import SendError, SendErrorKind

#: delivery ids whose messages share a subfolder (of one day)
IDS_PER_FOLDER = 1000


def message_path(folder: Path, delivery_id: int, recipient: str, day: str) -> Path:
    """Where the outbox keeps a message: `<day>/<id // 1000:06d>/<id:08d>-<recipient>.eml`,
    the recipient's characters outside `A-Za-z0-9@._-` replaced by `_`."""
    safe = re.sub(r"[^A-Za-z0-9@._-]", "_", recipient)
    bucket = f"{delivery_id // IDS_PER_FOLDER:06d}"
    return folder / day / bucket / f"{delivery_id:08d}-{safe}.eml"


def message_files(folder: Path) -> Iterator[Path]:
    """Every message file of an outbox, by day, then by delivery id; one subfolder is listed
    at a time, so walking a million messages holds a thousand names at most."""
    if not folder.is_dir():
        return
    for day in sorted(p for p in folder.iterdir() if p.is_dir()):
        for bucket in sorted(p for p in day.iterdir() if p.is_dir()):
            yield from sorted(bucket.glob("*.eml"))


class OutboxSender:
    """Writes each message to its `message_path` atomically (temp file, then rename), mode
    0600; a folder it creates is 0700."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._made: set[Path] = set()  # subfolders known to exist (a thousand ids each)

    async def __aenter__(self) -> Self:
        try:
            new_private_dir(self.folder)
        except OSError as exc:
            raise SendError(
                f"outbox {self.folder}: cannot create folder: {exc.strerror}",
                kind=SendErrorKind.ENGINE,
            ) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    async def check(self) -> str:
        """The folder exists (it was created on open) and is writable."""
        probe = self.folder / ".outreach-check"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SendError(
                f"outbox {self.folder}: not writable: {exc.strerror}", kind=SendErrorKind.ENGINE
            ) from None
        return f"outbox {self.folder}: writable"

    async def send(self, outgoing: Outgoing) -> SendResult:
        day = utcnow().date().isoformat()
        path = message_path(self.folder, outgoing.delivery_id, outgoing.recipient, day)
        await asyncio.to_thread(self._write, path, outgoing.data)
        return SendResult(message_id=outgoing.message_id, response=f"written {path.name}")

    def _write(self, path: Path, data: bytes) -> None:
        temporary = path.with_suffix(".tmp")
        try:
            if path.parent not in self._made:
                new_private_dir(path.parent)  # and the day's folder: both 0700
                self._made.add(path.parent)
            write_private(temporary, data)  # messages hold contact data: owner only
            os.replace(temporary, path)
        except OSError as exc:
            raise SendError(
                f"outbox {path.parent}: {exc.strerror}", kind=SendErrorKind.ENGINE
            ) from None
