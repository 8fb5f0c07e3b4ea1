"""What a follow-up delivery carries to continue its recipient's thread: `In-Reply-To` and
`References` to the messages of the steps before, and `Re: <subject>`.

Loaded per claimed batch (`batches.claim_batch`), in the claim's transaction. The subject is
the one the thread started with (step 1's, or that of a follow-up sent as a new thread),
rendered again from that run's template version with the same variables, sender and run date
as it went out: nothing is stored twice, and rendering is deterministic in those inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import engines, follow_ups, templates
from outreach_core.domain.models import Delivery
from outreach_core.domain.planning import SenderIdentity, render_context
from outreach_core.domain.reply_thread import (
    ThreadLink,
    reply_subject,
    thread_headers,
    thread_start,
)
from outreach_core.domain.steps import is_threaded
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.errors import NotFound, TemplateError

log = logging.getLogger("outreach.executor")


@dataclass(frozen=True)
class FollowUpThread:
    """One follow-up delivery's threading: its subject (None: the step's own, when the first
    message's subject cannot be rendered again) and its headers."""

    subject: str | None
    headers: dict[str, str]


@dataclass
class Threads:
    """A run's threads, filled batch by batch, with what rendering the first subjects needs."""

    by_delivery: dict[int, FollowUpThread] = field(default_factory=dict)
    _templates: dict[int, CompiledTemplate | None] = field(default_factory=dict)
    _senders: dict[int, SenderIdentity | None] = field(default_factory=dict)

    def get(self, delivery_id: int) -> FollowUpThread | None:
        """The delivery's thread (None: not a threaded follow-up)."""
        return self.by_delivery.get(delivery_id)

    def load(
        self,
        conn: Connection,
        batch: Sequence[Delivery],
        *,
        trigger: str,
        unsubscribe: Callable[[str], str] | None,
    ) -> None:
        """Work out the thread of each delivery of a claimed batch of a threaded follow-up
        (those of the batch before are dropped: memory stays the size of a batch)."""
        self.by_delivery = {}
        wanted = [d.id for d in batch if d.previous_delivery_id is not None]
        if not wanted or not is_threaded(trigger):
            return
        for delivery_id, chain in follow_ups.ancestors(conn, wanted).items():
            links = [
                ThreadLink(a.step, a.message_id, a.step > 1 and is_threaded(a.run_trigger))
                for a in chain
                if a.message_id
            ]
            if not links or len(links) != len(chain):
                continue  # a message before it has no Message-ID: nothing to refer to
            first = chain[thread_start(links)]
            subject = self._subject(conn, first, unsubscribe)
            self.by_delivery[delivery_id] = FollowUpThread(
                subject=reply_subject(subject) if subject is not None else None,
                headers=thread_headers(links).as_headers(),
            )

    def _subject(
        self,
        conn: Connection,
        first: follow_ups.Ancestor,
        unsubscribe: Callable[[str], str] | None,
    ) -> str | None:
        template = self._template(conn, first.template_version_id)
        sender = self._sender(conn, first.engine_id)
        if template is None or sender is None:
            return None
        try:
            rendered = template.render(
                render_context(
                    first.variables,
                    email=first.email,
                    sender=sender,
                    run_date=first.run_created_at,
                    unsubscribe=unsubscribe,
                )
            )
        except TemplateError as exc:
            log.warning("delivery %s: its subject no longer renders: %s", first.delivery_id, exc)
            return None
        return rendered.subject

    def _template(self, conn: Connection, version_id: int | None) -> CompiledTemplate | None:
        if version_id is None:
            return None
        if version_id not in self._templates:
            try:
                version = templates.get_version(conn, version_id)
                source = TemplateSource(version.subject, version.html, version.text)
                self._templates[version_id] = CompiledTemplate(source)
            except (NotFound, TemplateError):
                self._templates[version_id] = None
        return self._templates[version_id]

    def _sender(self, conn: Connection, engine_id: int | None) -> SenderIdentity | None:
        if engine_id is None:
            return None
        if engine_id not in self._senders:
            try:
                engine = engines.get_engine(conn, engine_id)
                self._senders[engine_id] = SenderIdentity(engine.from_email, engine.from_name)
            except NotFound:
                self._senders[engine_id] = None
        return self._senders[engine_id]
