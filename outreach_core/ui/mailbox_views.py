"""The engine mailboxes on the dashboard: the Engines page's Mailbox section (name or clear the
IMAP mailbox of each SMTP engine, check it, the last pass's outcome) and Home's warning about a
mailbox whose last pass failed. The URL goes in through a password field and is never shown
back unmasked; nothing here reads a mailbox except "Check mailbox", which changes nothing."""

from __future__ import annotations

from datetime import tzinfo

import streamlit as st

from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Engine
from outreach_core.errors import OutreachError
from outreach_core.services import feedback_mailboxes
from outreach_core.services.feedback_mailboxes import MAILBOX_KINDS, MailboxStatus
from outreach_core.ui.auth import actor, can, require_role
from outreach_core.ui.preflight_views import error_text
from outreach_core.ui.views import format_time

MAILBOX_HELP = (
    "imaps://user:password@imap.example.com:993/INBOX · "
    "imap://user:password@host:143/INBOX?starttls=1. Bounces, complaint reports and replies "
    "that arrive there are recorded on their deliveries; nothing is ever deleted."
)


def pass_summary(status: MailboxStatus | None, tz: tzinfo) -> str:
    """One line on the last pass: not read yet, read fine (when, how many messages), or why
    it failed (the error was stored with the password masked)."""
    state = status.state if status else None
    if state is None or state.checked_at is None:
        return "Not read yet: the scheduler daemon reads it on its next pass."
    if state.error:
        return f"Last pass failed {format_time(state.checked_at, tz)}: {state.error}"
    count = "" if state.message_count is None else f", {state.message_count} messages in folder"
    return f"Last read {format_time(state.ok_at, tz)}{count}."


def _save(ws: Workspace, engine_id: int) -> None:
    """Form callback: store the URL, then drop it from the session (the secret is not kept)."""
    key = f"mailbox_url_{engine_id}"
    url = str(st.session_state.get(key, "")).strip()
    st.session_state[key] = ""
    if not require_role("sender"):
        return
    if not url:
        st.session_state[f"mailbox_feedback_{engine_id}"] = ("error", "Enter the mailbox URL.")
        return
    try:
        shown = feedback_mailboxes.set_engine_mailbox(ws, engine_id, url, actor=actor())
    except OutreachError as exc:
        st.session_state[f"mailbox_feedback_{engine_id}"] = ("error", str(exc))
        return
    st.session_state[f"mailbox_feedback_{engine_id}"] = ("success", f"Mailbox saved: `{shown}`")


def _clear(ws: Workspace, engine_id: int) -> None:
    if require_role("sender"):
        feedback_mailboxes.clear_engine_mailbox(ws, engine_id, actor=actor())
        st.session_state[f"mailbox_feedback_{engine_id}"] = ("success", "Mailbox cleared.")


def _check(ws: Workspace, engine_id: int) -> None:
    """Button callback: log in, EXAMINE, count; nothing in the mailbox changes."""
    if not require_role("sender"):
        return
    try:
        message = feedback_mailboxes.check_mailbox(ws, engine_id)
    except OutreachError as exc:
        st.session_state[f"mailbox_feedback_{engine_id}"] = ("error", f"Check failed: {exc}")
    else:
        st.session_state[f"mailbox_feedback_{engine_id}"] = ("success", message)


def mailbox_section(ws: Workspace, engines: list[Engine], tz: tzinfo) -> None:
    """Per SMTP engine: its mailbox (masked), the last pass, set / clear / check."""
    smtp = [e for e in engines if e.kind in MAILBOX_KINDS]
    if not smtp:
        return
    st.subheader("Mailboxes")
    st.caption(
        "The IMAP mailbox an SMTP engine's bounces, complaint reports and replies arrive in. "
        "The daemon reads new messages, records them on their deliveries, suppresses hard "
        "bounces, and flags what it handled; it never deletes anything."
    )
    statuses = {s.engine_id: s for s in feedback_mailboxes.mailbox_statuses(ws)}
    for engine in smtp:
        status = statuses.get(engine.id)
        with st.container(border=True):
            st.markdown(
                f"**{engine.name}**: " + (f"`{status.display_url}`" if status else "no mailbox")
            )
            if status:
                line = pass_summary(status, tz)
                (st.warning if status.failing else st.caption)(line)
            with st.form(f"mailbox_form_{engine.id}"):
                st.text_input(
                    "Mailbox URL", type="password", key=f"mailbox_url_{engine.id}",
                    help=MAILBOX_HELP,
                )  # fmt: skip
                st.form_submit_button(
                    "Save mailbox", on_click=_save, args=(ws, engine.id), disabled=not can("sender")
                )
            if status:
                check, clear = st.columns(2)
                check.button(
                    "Check mailbox", key=f"mailbox_check_{engine.id}", on_click=_check,
                    args=(ws, engine.id), icon=":material/inbox:", disabled=not can("sender"),
                )  # fmt: skip
                clear.button(
                    "Clear mailbox", key=f"mailbox_clear_{engine.id}", on_click=_clear,
                    args=(ws, engine.id), disabled=not can("sender"),
                )  # fmt: skip
            feedback = st.session_state.pop(f"mailbox_feedback_{engine.id}", None)
            if feedback:
                kind, message = feedback
                if kind == "success":
                    st.success(message)
                else:
                    error_text(message)


def failing_mailbox_warnings(ws: Workspace, tz: tzinfo) -> None:
    """Home: one warning per engine mailbox whose last pass failed (sending is not affected)."""
    for status in feedback_mailboxes.failing_mailboxes(ws):
        st.warning(
            f"Mailbox of engine {status.engine_name} could not be read: "
            f"{pass_summary(status, tz)} Bounces and replies wait until it can be; sending "
            "goes on. Fix it on the Engines page.",
            icon=":material/mark_email_unread:",
        )
