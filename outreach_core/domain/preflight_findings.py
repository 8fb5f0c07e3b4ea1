"""What the pre-flight of a workflow tells a person before anything is sent: the counts per
status, the template variables its audience lacks, and the dedupe window's skips. Pure: no I/O.

The Dry run page, the Send page, Home's confirmation, the Workflows page and the CLI's
`dry-run` all show these, made by one function (`services.preflight.workflow_preflight`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from outreach_core.domain.address_checks import ROW_STATUSES, VALID
from outreach_core.domain.states import SkipReason
from outreach_core.domain.templating import CompiledTemplate


@dataclass(frozen=True)
class PreflightCounts:
    """Rows per status (`valid` and every skip reason, 0 when none) of one pre-flight."""

    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def valid(self) -> int:
        """Rows a send would attempt."""
        return self.by_status[VALID]

    @property
    def sent_recently(self) -> int:
        """Rows the workflow's dedupe window will skip."""
        return self.by_status[SkipReason.SENT_RECENTLY]

    def shown(self) -> list[tuple[str, int]]:
        """`valid` first, then each status that has rows: what a page draws as metrics."""
        return [(VALID, self.valid)] + [
            (status, n) for status, n in self.by_status.items() if n and status != VALID
        ]

    def line(self) -> str:
        """`valid=50 duplicate=2 …`: the statuses that have rows, as the CLI prints them."""
        return " ".join(f"{k}={v}" for k, v in self.by_status.items() if v) or "none"


def count_statuses(statuses: Iterable[str]) -> PreflightCounts:
    """The counts of a pre-flight's row statuses, every status listed."""
    found = Counter(statuses)
    unknown = set(found) - set(ROW_STATUSES)
    if unknown:
        raise ValueError(f"not a pre-flight status: {', '.join(sorted(unknown))}")
    return PreflightCounts({status: found.get(status, 0) for status in ROW_STATUSES})


@dataclass(frozen=True)
class MissingVariable:
    """A variable the template needs (no `| default`) that no column of the audience holds:
    every row fails to render."""

    name: str

    @property
    def message(self) -> str:
        return (
            f"the template uses `{self.name}`; the audience has no such column: add a default "
            f"`{{{{ {self.name} | default('…') }}}}` or choose another audience"
        )


def missing_variables(template: CompiledTemplate, columns: Sequence[str]) -> list[MissingVariable]:
    """The template's required variables that are not among the audience's `columns`."""
    return [MissingVariable(name) for name in template.missing_columns(list(columns))]


def dedupe_sentence(skipped: int, window_hours: float) -> str | None:
    """What the dedupe window will skip, said before the confirmation (None: nothing)."""
    if not skipped:
        return None
    who = "recipient was" if skipped == 1 else "recipients were"
    return (
        f"{skipped} {who} already sent by this workflow within its dedupe window "
        f"({window_hours:g} h) and will be skipped."
    )
