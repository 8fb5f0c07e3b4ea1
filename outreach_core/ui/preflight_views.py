"""The pre-flight as every page draws it, and the one confirmation before anything is sent.

`preflight_summary` draws a workflow's pre-flight (counts, the options it used, missing
template variables, the rows each skip reason holds and why); `confirm_send` is the only
way a page lets a person send a workflow: it names the count, the dedupe window's skips, and
asks for a ticked "I confirm sending to N recipients" before its button works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from outreach_core.domain.address_checks import VALID
from outreach_core.domain.preflight_findings import MissingVariable
from outreach_core.domain.states import SkipReason
from outreach_core.services.preflight import WorkflowPreflight
from outreach_core.ui.views import plain


def missing_variable_warnings(missing: Sequence[MissingVariable]) -> None:
    """One warning per variable the template needs and the audience lacks."""
    for variable in missing:
        st.warning(
            "Every row will fail to render: " + variable.message + ".", icon=":material/warning:"
        )


def options_caption(result: WorkflowPreflight) -> str:
    """The checks a pre-flight made, as the run will make them."""
    dns = "DNS check skipped (workflow option)" if result.skip_mx else "DNS checked"
    window = result.dedupe_window_hours
    dedupe = f"dedupe window {window:g} h" if window else "no dedupe window"
    return f"{dns} · suppression list · {dedupe} · template rendered for every row"


def preflight_summary(result: WorkflowPreflight, *, key: str) -> None:
    """Counts per status, what was checked, and an expander per skip reason listing its rows
    with their reasons (a render error's reason names the variable or the line)."""
    shown = result.counts.shown()
    for column, (label, value) in zip(st.columns(len(shown)), shown, strict=True):
        column.metric(label, value, border=True)
    st.caption(options_caption(result))
    unanswered = result.counts.by_status[SkipReason.DNS_ERROR]
    if unanswered and not result.skip_mx:
        st.info(
            f"DNS gave no answer for the domains of {unanswered} recipients (a timeout, or no "
            "reachable nameserver): they are not invalid, and a run keeps them waiting and looks "
            "again. On a network without outside DNS, or for private domains, tick **Skip the "
            "DNS check** in the workflow's options (Workflows page).",
            icon=":material/dns:",
        )
    missing_variable_warnings(result.missing)
    if result.abort_reason:
        st.error(
            "The workflow aborts when a row does not render (option *Rows whose template does "
            "not render*): a run would send nothing.",
            icon=":material/block:",
        )
    for status, count in shown:
        if status == VALID:
            continue
        label = f"{status}: {count} row{'s' if count != 1 else ''} will not be sent, and why"
        with st.expander(label, expanded=status == SkipReason.RENDER_ERROR):
            rows = result.rows_with(status)
            frame = pd.DataFrame(
                [(r.row_number, r.email, r.reason) for r in rows],
                columns=["Row", "Email", "Reason"],
            )
            st.dataframe(
                frame,
                hide_index=True,
                key=f"{key}_{status}_rows",
                column_config={
                    "Row": st.column_config.NumberColumn(width="small", format="%d"),
                    "Reason": st.column_config.TextColumn(width="large"),
                },
            )


def confirm_send(
    result: WorkflowPreflight,
    *,
    key: str,
    button: str,
    on_confirm: Callable[..., None],
    args: tuple[Any, ...] = (),
    disabled: bool = False,
    on_cancel: Callable[[], None] | None = None,
) -> None:
    """The one confirmation before a send: the count, the dedupe window's skips, a checkbox
    "I confirm sending to N recipients" (state key `<key>_confirm`) and `button` (key `<key>_now`), which
    calls `on_confirm(*args)` and works only once the box is ticked. With nothing to send it
    says why and offers no button. `on_cancel` adds a Cancel button."""
    total, to_send = result.counts.total, result.to_send
    note = result.dedupe_note
    if note:
        st.warning(note, icon=":material/content_copy:")
    if not to_send:
        why = (
            "every recipient was sent to within the dedupe window"
            if result.counts.sent_recently and not result.abort_reason
            else "no valid recipient"
            if not result.abort_reason
            else "the run would abort on rows that do not render"
        )
        st.warning(f"Nothing to send: {why}.", icon=":material/block:")
        if on_cancel:
            st.button("Cancel", key=f"{key}_cancel", on_click=on_cancel)
        return
    st.caption(f"{to_send} of {total} recipients will be sent to; the others are skipped.")
    confirmed = st.checkbox(f"I confirm sending to {to_send} recipients", key=f"{key}_confirm")
    send = dict(
        type="primary",
        disabled=disabled or not confirmed,
        on_click=on_confirm,
        args=args,
        key=f"{key}_now",
        icon=":material/send:",
    )
    if on_cancel is None:
        st.button(button, **send)
        return
    left, right = st.columns(2)
    left.button(button, **send)
    right.button("Cancel", key=f"{key}_cancel", on_click=on_cancel)


def error_text(message: str) -> None:
    """An error whose text may quote template code or contact data (`__mro__`, `*`, links):
    shown literally, never as markdown."""
    st.error(plain(message), icon=":material/error:")
