"""Engines: the configured ways for mail to leave, a form to add or update one, and a
connection test. Secrets go in and are never shown back: only the masked URL is."""

import pandas as pd
import streamlit as st

from outreach_core import FieldErrors, OutreachError, services, ui
from outreach_core.adapters import sender_domain
from outreach_core.domain.forms import LIMIT_FIELDS, limit_values
from outreach_core.ui.mailbox_views import mailbox_section

ws = ui.workspace()

URL_HELP = (
    "outbox:///folder · smtp://user:password@host:587 (options ?tls=starttls|ssl|none, "
    "&timeout=30, &cafile=/path/ca.pem) · "
    "smtps://user:password@host:465 · sendgrid://API_KEY@ · mailgun://API_KEY@domain · "
    "ses://ACCESS_KEY_ID:SECRET@region"
)

st.title("Engines")
st.caption(
    "Where mail leaves from. URLs are stored encrypted; this page only ever shows them masked."
)

engines = services.list_engines(ws)
if engines:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": e.name,
                    "Kind": e.kind,
                    "Limits": ui.limits_summary(e.limits),
                    "URL": e.display_url,
                    "From": f"{e.from_name} <{e.from_email}>" if e.from_name else e.from_email,
                }
                for e in engines
            ]
        ),
        hide_index=True,
    )
else:
    st.info("No engine yet: add one below.")

add_column, test_column = st.columns(2, gap="large")

FIELDS = ("engine_name", "engine_url", "engine_from_email", "engine_from_name")


def save_from_form() -> None:
    """Submit callback: save, then clear the URL field (the secret is not kept in the
    session); on success clear the whole form."""
    values = {key: st.session_state.get(key, "").strip() for key in FIELDS}
    st.session_state["engine_url"] = ""
    if not ui.require_role("sender"):
        return
    if not values["engine_name"] or not values["engine_url"]:
        st.session_state["engine_feedback"] = ("error", "Name and URL are both needed.")
        return
    try:
        saved = services.save_engine(
            ws,
            name=values["engine_name"],
            url=values["engine_url"],
            from_email=values["engine_from_email"],
            from_name=values["engine_from_name"],
            actor=ui.actor(),
        )
    except OutreachError as exc:
        st.session_state["engine_feedback"] = ("error", str(exc))
        return
    for key in FIELDS:
        st.session_state[key] = ""
    message = f"Engine **{saved.name}** saved: `{saved.display_url}`"
    st.session_state["engine_feedback"] = ("success", message)


with add_column:
    st.subheader("Add or update an engine")
    with st.form("engine_form"):
        st.text_input("Name", key="engine_name", help="an existing name is updated")
        st.text_input("URL", type="password", key="engine_url", help=URL_HELP)
        st.text_input("From email", key="engine_from_email")
        st.text_input("From name", key="engine_from_name")
        st.form_submit_button("Save engine", type="primary", on_click=save_from_form)
    feedback = st.session_state.pop("engine_feedback", None)
    if feedback:
        kind, message = feedback
        (st.success if kind == "success" else st.error)(message)

with test_column:
    st.subheader("Test connection")
    if not engines:
        st.caption("Save an engine first.")
    else:
        names = {e.id: e.name for e in engines}
        engine_id = st.selectbox(
            "Engine", options=list(names), format_func=names.get, key="test_engine"
        )
        st.caption("Connects and checks the credentials; nothing is sent.")
        if st.button(
            "Test connection", key="test_connection", icon=":material/cable:"
        ) and ui.require_role("sender"):
            with st.spinner("Connecting…"):
                try:
                    message = services.test_engine_connection(ws, engine_id)
                except OutreachError as exc:
                    ui.error_text(f"Connection test failed: {exc}")
                else:
                    st.success(message)


LIMIT_LABELS = {
    "rate_per_second": (
        "Rate per second",
        "messages per second, held across every process and machine; e.g. 0.5 = one every 2 s",
    ),
    "burst": (
        "Burst",
        "messages allowed at once after a quiet spell (blank: a tenth of a second's worth)",
    ),
    "daily_quota": ("Daily quota", "messages per UTC day, counted over every run and process"),
    "max_concurrency": ("Max concurrency", "sends in flight at once, over every process"),
    "per_domain_per_minute": (
        "Per domain per minute",
        "messages per minute to one domain, evenly spaced, over every process",
    ),
}
LIMIT_KEYS = (*LIMIT_FIELDS, "from_email", "from_name")


def load_limits() -> None:
    """Fill the limits form with the picked engine's current limits and From."""
    engine = next((e for e in engines if e.id == st.session_state.get("limits_engine")), None)
    if engine is None:
        return
    for field, value in limit_values(engine).items():
        st.session_state[f"limit_{field}"] = value
    st.session_state.pop("limits_errors", None)


def save_limits() -> None:
    """Submit callback: one call into the core; errors by field, nothing saved on error."""
    if not ui.require_role("sender"):
        return
    engine_id = st.session_state["limits_engine"]
    values = {field: st.session_state.get(f"limit_{field}") for field in LIMIT_KEYS}
    try:
        saved = services.save_engine_limits_form(ws, engine_id, values, actor=ui.actor())
    except FieldErrors as exc:
        st.session_state["limits_errors"] = exc.errors
        return
    except OutreachError as exc:
        st.session_state["limits_errors"] = {"form": str(exc)}
        return
    st.session_state.pop("limits_errors", None)
    st.session_state["limits_feedback"] = (
        f"Limits of **{saved.name}** saved: {ui.limits_summary(saved.limits)}."
    )


if engines:
    st.subheader("Limits")
    st.caption(
        "What each engine allows, whichever workflow sends through it. Blank = no limit. "
        "The URL and its secret are not needed here and stay as they are."
    )
    names = {e.id: e.name for e in engines}
    if st.session_state.get("limits_engine") not in names:
        st.session_state["limits_engine"] = next(iter(names))
        load_limits()
    picked = st.selectbox(
        "Engine", options=list(names), format_func=names.get, key="limits_engine",
        on_change=load_limits,
    )  # fmt: skip
    current = next(e for e in engines if e.id == picked)
    st.markdown(f"Current limits: **{ui.limits_summary(current.limits)}**")
    limit_errors: dict[str, str] = st.session_state.get("limits_errors", {})
    if limit_errors:
        ui.error_text(limit_errors.get("form", "Nothing was saved: fix the fields marked below."))
    with st.form("limits_form"):
        for column, field in zip(st.columns(len(LIMIT_FIELDS)), LIMIT_FIELDS, strict=True):
            label, help_text = LIMIT_LABELS[field]
            with column:
                st.number_input(
                    label,
                    value=None,  # so that clearing the field means None (no limit), not 0
                    key=f"limit_{field}",
                    step=0.5 if field == "rate_per_second" else 1,
                    placeholder="no limit",
                    help=help_text,
                )
                if field in limit_errors:
                    ui.error_text(limit_errors[field])
        from_email, from_name = st.columns(2)
        with from_email:
            st.text_input("From email", key="limit_from_email")
            if "from_email" in limit_errors:
                ui.error_text(limit_errors["from_email"])
        from_name.text_input("From name", key="limit_from_name")
        st.form_submit_button("Save limits", type="primary", on_click=save_limits)
    limits_feedback = st.session_state.pop("limits_feedback", None)
    if limits_feedback:
        st.success(limits_feedback)

mailbox_section(ws, engines, ui.browser_timezone())

st.divider()
st.subheader("Sender domain check")
st.caption(
    "Looks up the From domain's SPF, DKIM (for your provider's selector) and DMARC records. "
    "Gmail and Yahoo expect all three from bulk senders."
)
domain_column, selector_column = st.columns([2, 1])
default_from = engines[0].from_email if engines else ""
from_value = domain_column.text_input(
    "From address or domain", value=default_from, key="domain_check_from"
)
selector = selector_column.text_input(
    "DKIM selector", key="domain_check_selector", help="e.g. s1, google, k1, selector1"
)
if st.button("Check domain", key="domain_check", icon=":material/verified_user:"):
    try:
        checked = sender_domain.check_sender_domain(
            ws.settings.nameservers, ws.settings.dns_timeout, from_value, selector
        )
    except OutreachError as exc:
        ui.error_text(str(exc))
    else:
        show = {"ok": st.success, "warning": st.warning}.get(checked.verdict, st.error)
        show(checked.summary())
        ui.table(ui.domain_check_frame(checked), first=["Record"], width="stretch")
