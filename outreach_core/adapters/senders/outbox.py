"""The local outbox: each message becomes an .eml file in a folder."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from types import TracebackType
from typing import Self

from outreach_core.adapters.file_modes import new_private_dir, write_private
from outreach_core.adapters.senders.base import SendResult
from outreach_core.domain.message import Outgoing
from outreach_core.errors import SendError, SendErrorKind


class OutboxSender:
    """Writes `<delivery id>-<recipient>.eml` atomically (temp file, then rename), mode 0600;
    a folder it creates is 0700."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

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
        safe = re.sub(r"[^A-Za-z0-9@._-]", "_", outgoing.recipient)
        path = self.folder / f"{outgoing.delivery_id:08d}-{safe}.eml"
        await asyncio.to_thread(self._write, path, outgoing.data)
        return SendResult(message_id=outgoing.message_id, response=f"written {path.name}")

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        temporary = path.with_suffix(".tmp")
        try:
            write_private(temporary, data)  # messages hold contact data: owner only
            os.replace(temporary, path)
        except OSError as exc:
            raise SendError(
                f"outbox {path.parent}: {exc.strerror}", kind=SendErrorKind.ENGINE
            ) from None
