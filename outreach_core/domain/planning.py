"""Freezing decisions: which audience rows become sendable deliveries, and why others do not.

Pure: no I/O. The executor (INITIALIZING) and the dry run both use `plan_deliveries`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from outreach_core.domain.control_chars import printable
from outreach_core.domain.dns_waits import waiting_reason
from outreach_core.domain.models import RenderErrorPolicy
from outreach_core.domain.mx import DomainResult, DomainStatus, receives_mail
from outreach_core.domain.states import DeliveryStatus, SkipReason
from outreach_core.domain.templating import CompiledTemplate
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import TemplateError

#: how the status reason of a run stopped by on-render-error abort begins
RENDER_ABORT_PREFIX = "on-render-error abort"


@dataclass(frozen=True)
class SenderIdentity:
    """Who a run sends as: used by the template built-ins."""

    email: str
    name: str


@dataclass(frozen=True)
class PlannedDelivery:
    """One audience row's fate before anything is sent."""

    row_number: int
    email: str
    key: str | None
    variables: dict[str, Any]
    status: DeliveryStatus
    reason: str | None = None

    @property
    def reason_word(self) -> str | None:
        return self.reason.split(":", 1)[0] if self.reason else None


class FirstRows(Protocol):
    """Which row each address first appeared on: grows with the audience, so a large freeze
    keeps it on disk (`adapters.first_rows_on_disk`)."""

    def first_row(self, key: str, row_number: int) -> int | None:
        """The row `key` appeared on before, or None (and `row_number` is remembered)."""
        ...


class InMemoryFirstRows:
    """`FirstRows` in a dict: for previews and dry runs that hold their rows anyway."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}

    def first_row(self, key: str, row_number: int) -> int | None:
        earlier = self._rows.get(key)
        if earlier is None:
            self._rows[key] = row_number
        return earlier


def render_context(
    variables: dict[str, Any],
    *,
    email: str,
    sender: SenderIdentity,
    run_date: datetime,
    unsubscribe: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The row's variables plus the built-ins every template may use.

    An empty cell is left out, so the template sees it as undefined: an error under strict
    rendering unless the template gives it a `| default(...)`. `unsubscribe_url` is there only
    when the run has an unsubscribe base URL (`unsubscribe` makes it from the address).
    """
    return {
        **{name: value for name, value in variables.items() if value != "" and value is not None},
        "recipient": {"email": email},
        "today": run_date.date().isoformat(),
        "run_date": run_date.date().isoformat(),
        "sender_name": sender.name,
        "sender_email": sender.email,
        **({"unsubscribe_url": unsubscribe(email)} if unsubscribe else {}),
    }


def plan_deliveries(
    rows: Iterable[tuple[int, dict[str, Any]]],
    *,
    email_column: str,
    template: CompiledTemplate,
    sender: SenderIdentity,
    run_date: datetime,
    domains: Mapping[str, DomainResult] | None = None,
    unsubscribe: Callable[[str], str] | None = None,
    test_environment: bool = False,
    first_rows: FirstRows | None = None,
) -> Iterator[PlannedDelivery]:
    """Decide each row: pending, or skipped with a reason. The first occurrence of an address
    wins; later ones are skipped as duplicates naming the row they repeat.

    `domains` (ASCII domain -> DNS verdict, from the pre-flight) skips rows whose domain cannot
    receive mail; a row whose lookup failed (`dns_error`: unknown) stays pending with that
    reason, to be looked up again before it is sent (`dns_waits`). None means the DNS step was
    skipped. `test_environment` accepts `.test` addresses and `private_address` domains.
    `first_rows` remembers each address's first row (in memory unless given).
    """
    seen = first_rows if first_rows is not None else InMemoryFirstRows()
    for number, data in rows:
        raw = str(data.get(email_column) or "")
        checked = check_syntax(raw, test_environment=test_environment)
        if not checked.ok:
            yield PlannedDelivery(
                number,
                printable(raw).strip(),  # stored as refused: a NUL would fail the freeze
                None,
                data,
                DeliveryStatus.SKIPPED,
                f"{SkipReason.INVALID_SYNTAX}: {checked.error}",
            )
            continue
        assert checked.key is not None and checked.address is not None
        earlier = seen.first_row(checked.key, number)
        if earlier is not None:
            yield PlannedDelivery(
                number,
                checked.address,
                None,
                data,
                DeliveryStatus.SKIPPED,
                f"{SkipReason.DUPLICATE}: same address as row {earlier}",
            )
            continue
        verdict = domains.get(checked.key.rpartition("@")[2]) if domains is not None else None
        waiting = None
        if verdict is not None and verdict.status is DomainStatus.DNS_ERROR:
            waiting = waiting_reason(verdict)
        elif verdict is not None and not receives_mail(
            verdict.status, test_environment=test_environment
        ):
            yield PlannedDelivery(
                number,
                checked.address,
                checked.key,
                data,
                DeliveryStatus.SKIPPED,
                f"{verdict.status}: {verdict.reason}",
            )
            continue
        try:
            template.render(
                render_context(
                    data,
                    email=checked.address,
                    sender=sender,
                    run_date=run_date,
                    unsubscribe=unsubscribe,
                )
            )
        except TemplateError as exc:
            yield PlannedDelivery(
                number,
                checked.address,
                checked.key,
                data,
                DeliveryStatus.SKIPPED,
                f"{SkipReason.RENDER_ERROR}: {exc}",
            )
            continue
        yield PlannedDelivery(
            number, checked.address, checked.key, data, DeliveryStatus.PENDING, waiting
        )


def mark_suppressed(
    plan: list[PlannedDelivery], suppressed: Mapping[str, str]
) -> list[PlannedDelivery]:
    """Pending deliveries whose address is suppressed become skipped, naming the list's reason."""
    return [
        replace(
            p,
            status=DeliveryStatus.SKIPPED,
            reason=f"{SkipReason.SUPPRESSED}: on the suppression list ({suppressed[p.key]})",
        )
        if p.status is DeliveryStatus.PENDING and p.key in suppressed
        else p
        for p in plan
    ]


def render_abort_reason(
    plan: Iterable[PlannedDelivery], policy: RenderErrorPolicy, *, limit: int = 20
) -> str | None:
    """Why a run must send nothing under `abort` (the rows that do not render), else None."""
    if policy is not RenderErrorPolicy.ABORT:
        return None
    failures = RenderFailures(limit=limit)
    failures.note(plan)
    return failures.abort_reason()


class RenderFailures:
    """The rows that do not render, counted as a plan streams past; only the first `limit`
    are kept, for the reason text."""

    def __init__(self, *, limit: int = 20) -> None:
        self.count = 0
        self._limit = limit
        self._shown: list[str] = []

    def note(self, plan: Iterable[PlannedDelivery]) -> None:
        for p in plan:
            if p.reason_word == SkipReason.RENDER_ERROR:
                self.count += 1
                if len(self._shown) < self._limit:
                    self._shown.append(f"row {p.row_number}: {p.reason}")

    def abort_reason(self) -> str | None:
        """The status reason of a run stopped by `abort`, or None when every row rendered."""
        if not self.count:
            return None
        more = f"; and {self.count - self._limit} more" if self.count > self._limit else ""
        return (
            f"{RENDER_ABORT_PREFIX}: {self.count} rows do not render, nothing was sent: "
            f"{'; '.join(self._shown)}{more}"
        )
