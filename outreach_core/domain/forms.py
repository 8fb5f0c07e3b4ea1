"""The dashboard's forms: what a user types, checked field by field, turned into models.

Pure (no database, no streamlit): `parse_workflow_form` and `parse_engine_limits` either return
what the services take or raise FieldErrors whose messages are plain sentences keyed by the
form's field names, so a page can show each one next to its field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outreach_core.domain.cadence import parse_window, zone
from outreach_core.domain.models import (
    Engine,
    EngineLimits,
    RenderErrorPolicy,
    SendOptions,
    Workflow,
    check_workflow_key,
)
from outreach_core.domain.states import DnsWaitPolicy
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import FieldErrors, InputError

#: the form's fields, in the order the page draws them
FIELDS = (
    "name",
    "key",
    "audience_id",
    "template_id",
    "engine_ids",
    "skip_mx",
    "dedupe_window_hours",
    "on_render_error",
    "dns_wait_hours",
    "on_dns_unanswered",
    "auto_pause_percent",
    "time_limit_minutes",
    "report_recipients",
    "retry_ambiguous_once",
    "retry_lifetime_hours",
    "send_window",
    "timezone",
    "unsubscribe_mailto",
    "unsubscribe_base_url",
    "rate",
    "burst",
    "concurrency",
)


def split_addresses(text: str) -> list[str]:
    """`a@x.org, b@y.org` -> the addresses, blanks dropped (commas or semicolons between)."""
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


class WorkflowDraft(BaseModel):
    """A workflow as the form describes it; `key` None means "make one from the name"."""

    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    name: str = Field(min_length=1, max_length=200)
    key: str | None = None
    audience_id: int
    template_id: int
    engine_ids: list[int] = Field(min_length=1)
    skip_mx: bool = False
    dedupe_window_hours: float = Field(ge=0)
    on_render_error: RenderErrorPolicy
    dns_wait_hours: float = Field(default=24.0, gt=0)
    on_dns_unanswered: DnsWaitPolicy = DnsWaitPolicy.WAIT
    auto_pause_percent: float = Field(ge=0, le=100)
    time_limit_minutes: float | None = Field(default=None, gt=0)
    report_recipients: list[str] = Field(default_factory=list)
    retry_ambiguous_once: bool = False
    retry_lifetime_hours: float = Field(default=24.0, ge=0, le=720)
    send_window: str | None = None
    timezone: str = "UTC"
    unsubscribe_mailto: str | None = None
    unsubscribe_base_url: str | None = None
    rate: float = Field(ge=0)
    burst: int = Field(ge=1)
    concurrency: int = Field(ge=1, le=100)

    @field_validator(
        "key", "unsubscribe_mailto", "unsubscribe_base_url", "send_window", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("time_limit_minutes", mode="before")
    @classmethod
    def _blank_time_limit(cls, value: Any) -> Any:
        return None if value in ("", 0, 0.0) else value

    @field_validator("key")
    @classmethod
    def _key_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_workflow_key(value)
        except InputError as exc:
            raise ValueError(str(exc).removeprefix("workflow key ")) from None

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_window(value))
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        name = "UTC" if value in (None, "") else str(value).strip()
        try:
            zone(name)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return name

    @field_validator("engine_ids")
    @classmethod
    def _engines_once(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("each engine may be chosen once")
        return value

    @field_validator("report_recipients", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        items = split_addresses(value) if isinstance(value, str) else value
        checked = []
        for item in items:
            result = check_syntax(str(item))
            if not result.ok:
                raise ValueError(f"{item!r} is not an email address ({result.error})")
            checked.append(result.address)
        return checked

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if value is None:
            return None
        result = check_syntax(value.removeprefix("mailto:"))
        if not result.ok:
            raise ValueError(f"{value!r} is not an email address ({result.error})")
        return result.address

    def options(self, base: SendOptions | None = None) -> SendOptions:
        """SendOptions with the form's values; what the form does not show comes from `base`
        (the workflow's current options, or the defaults)."""
        return SendOptions.model_validate(
            {
                **(base or SendOptions()).model_dump(),
                "skip_mx": self.skip_mx,
                "dedupe_window_hours": self.dedupe_window_hours,
                "on_render_error": self.on_render_error,
                "dns_wait_hours": self.dns_wait_hours,
                "on_dns_unanswered": self.on_dns_unanswered,
                "auto_pause_failure_rate": self.auto_pause_percent / 100,
                "time_limit_minutes": self.time_limit_minutes,
                "report_recipients": self.report_recipients,
                "retry_ambiguous_once": self.retry_ambiguous_once,
                "retry_lifetime_hours": self.retry_lifetime_hours,
                "send_window": self.send_window,
                "timezone": self.timezone,
                "unsubscribe_mailto": self.unsubscribe_mailto,
                "unsubscribe_base_url": self.unsubscribe_base_url,
                "rate": self.rate,
                "burst": self.burst,
                "concurrency": self.concurrency,
            }
        )


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def plain_message(error: dict[str, Any]) -> str:
    """One pydantic error as a sentence a user reads without knowing pydantic."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in ("missing", "int_type", "int_parsing") and error.get("input") in (None, ""):
        return "required: choose or fill it in"
    if kind in ("string_too_short", "too_short"):
        return "required: choose or fill it in"
    if kind == "greater_than_equal":
        return f"must be {_number(ctx['ge'])} or more"
    if kind == "greater_than":
        return f"must be more than {_number(ctx['gt'])}"
    if kind == "less_than_equal":
        return f"must be {_number(ctx['le'])} or less"
    if kind == "string_too_long":
        return f"at most {ctx['max_length']} characters"
    if kind in ("float_parsing", "int_parsing", "float_type", "int_type"):
        return f"{error.get('input')!r} is not a number"
    if kind == "enum":
        return f"choose one of {ctx.get('expected')}"
    return str(error["msg"]).removeprefix("Value error, ")


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Field name -> plain message, first error per field; options errors map to their field."""
    found: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field == "auto_pause_failure_rate":
            field = "auto_pause_percent"
        found.setdefault(field, plain_message(error))
    return found


def parse_workflow_form(
    values: dict[str, Any], *, base: SendOptions | None = None
) -> tuple[WorkflowDraft, SendOptions]:
    """The draft and its SendOptions, or FieldErrors naming every field that cannot be used."""
    try:
        draft = WorkflowDraft.model_validate(values)
    except ValidationError as exc:
        raise FieldErrors(field_errors(exc)) from None
    try:
        options = draft.options(base)
    except ValidationError as exc:
        raise FieldErrors(field_errors(exc)) from None
    return draft, options


def form_values(workflow: Workflow | None) -> dict[str, Any]:
    """The form's initial values: the workflow's, or a new workflow's defaults."""
    options = workflow.options if workflow else SendOptions()
    return {
        "name": workflow.name if workflow else "",
        "key": workflow.key if workflow else "",
        "audience_id": workflow.audience_id if workflow else None,
        "template_id": workflow.template_id if workflow else None,
        "engine_ids": list(workflow.engine_ids) if workflow else [],
        "skip_mx": options.skip_mx,
        "dedupe_window_hours": options.dedupe_window_hours,
        "on_render_error": options.on_render_error.value,
        "dns_wait_hours": options.dns_wait_hours,
        "on_dns_unanswered": options.on_dns_unanswered.value,
        "auto_pause_percent": round(options.auto_pause_failure_rate * 100, 2),
        "time_limit_minutes": options.time_limit_minutes,
        "report_recipients": ", ".join(options.report_recipients),
        "retry_ambiguous_once": options.retry_ambiguous_once,
        "retry_lifetime_hours": options.retry_lifetime_hours,
        "send_window": options.send_window or "",
        "timezone": options.timezone,
        "unsubscribe_mailto": options.unsubscribe_mailto or "",
        "unsubscribe_base_url": options.unsubscribe_base_url or "",
        "rate": options.rate,
        "burst": options.burst,
        "concurrency": options.concurrency,
    }


#: the limits form's fields, in the order the page draws them
LIMIT_FIELDS = tuple(EngineLimits.model_fields)


def parse_engine_limits(values: dict[str, Any]) -> EngineLimits:
    """EngineLimits from the form; a blank (None or "") field means no limit of that kind."""
    cleaned = {k: None if values.get(k) in (None, "") else values[k] for k in LIMIT_FIELDS}
    try:
        return EngineLimits.model_validate(cleaned)
    except ValidationError as exc:
        raise FieldErrors(field_errors(exc)) from None


def limit_values(engine: Engine) -> dict[str, Any]:
    """The limits form's initial values (None = blank) plus the engine's From."""
    return {
        **engine.limits.model_dump(),
        "from_email": engine.from_email,
        "from_name": engine.from_name,
    }


_D = SendOptions()

#: each workflow option's help on the Workflows page, with its default (as `--help` gives it)
WORKFLOW_HELP: dict[str, str] = {
    "skip_mx": "Do not look up the recipients' mail servers (MX) before sending: for networks "
    "without outside DNS or private domains. Only syntax, duplicates, suppressions and "
    "rendering are checked. CLI: --skip-mx. Default: off (DNS is checked).",
    "dedupe_window_hours": "Skip anyone this workflow sent to within this many hours (the "
    "pre-flight counts them before you confirm); 0 = off. "
    f"Default: {_D.dedupe_window_hours:g}.",
    "auto_pause_percent": "Pause the run when more than this share of the last 50 sends "
    f"failed; 0 = off. Default: {_D.auto_pause_failure_rate * 100:g}.",
    "time_limit_minutes": "End the run after this long; rows not sent by then are skipped "
    "(time_limit). Default: no limit (leave blank).",
    "retry_lifetime_hours": "Temporarily refused (4xx) mail is retried by the daemon after 1, "
    "5, 15, 30 minutes, then hourly, for this long; then it fails. 0 = only by hand (Runs "
    f"page). CLI: --retry-hours. Default: {_D.retry_lifetime_hours:g}.",
    "on_render_error": "Rows whose template does not render (a missing variable, a bad "
    "value): skip them and send the rest, or send nothing at all. CLI: --on-render-error. "
    f"Default: {_D.on_render_error}.",
    "dns_wait_hours": "A row whose domain DNS could not look up (timeout, server failure) is "
    "not invalid: it stays pending and its domain is looked up again every minute. After this "
    f"long, the choice below applies. CLI: --dns-wait-hours. Default: {_D.dns_wait_hours:g}.",
    "on_dns_unanswered": "What becomes of rows whose domain DNS still has not answered after "
    f"the wait. CLI: --on-dns-unanswered. Default: {_D.on_dns_unanswered}.",
    "report_recipients": "Who gets the run report, comma-separated (besides "
    "OUTREACH_REPORT_TO). Default: nobody else.",
    "retry_ambiguous_once": "Retry once a send that timed out or dropped after the message was "
    "handed over (it may have arrived: the recipient may get a duplicate, and the ledger says "
    "so). Default: off.",
    "send_window": "Local hours to send in, HH:MM-HH:MM (e.g. 09:00-17:00; an end before the "
    "start spans midnight). Outside them the run pauses until the next opening. Default: "
    "any hour (leave blank).",
    "timezone": f"The time zone of the send window. Default: {_D.timezone}.",
    "unsubscribe_mailto": "Added to List-Unsubscribe with each recipient's own token in the "
    "subject. The daemon reads this mailbox and suppresses the senders when "
    "OUTREACH_UNSUBSCRIBE_IMAP_URL points at it. Default: none.",
    "unsubscribe_base_url": "Where `unsubscribe_url` points; each recipient's address and "
    "signed token are added. CLI: --unsubscribe-url. Default: none.",
    "rate": f"Messages per second for this workflow's runs; 0 = unlimited. CLI: --rate. "
    f"Default: {_D.rate:g}.",
    "burst": f"Messages at once after a quiet spell. CLI: --burst. Default: {_D.burst}.",
    "concurrency": f"Sends in flight at once. CLI: --concurrency. Default: {_D.concurrency}.",
}
