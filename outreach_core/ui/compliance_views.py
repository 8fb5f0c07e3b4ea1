"""Tables for the Suppressions and Audit pages (no streamlit)."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

import pandas as pd

from outreach_core.adapters.sender_domain import DomainCheck
from outreach_core.domain.models import Suppression
from outreach_core.ui.views import format_time

SUPPRESSION_COLUMNS = ["Email", "Reason", "Added", "Source"]
AUDIT_COLUMNS = ["When", "Who", "Action", "Subject", "Detail"]


def suppressions_frame(items: list[Suppression], tz: tzinfo) -> pd.DataFrame:
    """One row per suppressed address."""
    return pd.DataFrame(
        [
            (s.email_normalized, str(s.reason), format_time(s.created_at, tz), s.source or "")
            for s in items
        ],
        columns=SUPPRESSION_COLUMNS,
    )


def audit_frame(entries: list[dict[str, Any]], tz: tzinfo) -> pd.DataFrame:
    """One row per audit entry, the detail as compact JSON."""
    return pd.DataFrame(
        [
            (
                format_time(e["at"], tz),
                e["actor"],
                e["action"],
                e["subject"],
                json.dumps(e["detail"], sort_keys=True, default=str) if e["detail"] else "",
            )
            for e in entries
        ],
        columns=AUDIT_COLUMNS,
    )


DOMAIN_CHECK_COLUMNS = ["Record", "Looked up", "Verdict", "What it means", "Found"]


def domain_check_frame(checked: DomainCheck) -> pd.DataFrame:
    """One row per record (SPF, DKIM, DMARC)."""
    return pd.DataFrame(
        [(c.kind, c.name, str(c.verdict), c.message, c.record or "") for c in checked.checks],
        columns=DOMAIN_CHECK_COLUMNS,
    )
