"""Webhook signatures and payloads: samples signed by each provider's documented scheme are
accepted; unsigned, tampered or re-signed ones are refused."""

from __future__ import annotations

import json

import pytest

from outreach_core.adapters import provider_webhooks
from outreach_core.adapters.settings import load_settings
from outreach_core.domain.models import Feedback
from outreach_core.errors import ConfigError, InputError, SignatureError
from tests.signing import SendGridSigner, SnsSigner, mailgun_body, ses_bounce, ses_notification

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"
MG_KEY = "key-mailgun-signing-0123456789"
NOW = 1_764_417_600.0


@pytest.fixture(scope="module")
def sns() -> SnsSigner:
    return SnsSigner()


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signed_notification_is_accepted(sns: SnsSigner, version: str) -> None:
    """Verify a notification signed with SHA1 (v1) or SHA256 (v2) checks out."""
    message = sns.sign(
        ses_notification(ses_bounce("a@example.com", delivery_id=7), cert_url=CERT_URL),
        version=version,
    )
    provider_webhooks.verify_sns(message, sns.cert_pem)


def test_sns_subscription_confirmation_signs_its_own_fields(sns: SnsSigner) -> None:
    """Verify SubscriptionConfirmation's string-to-sign includes SubscribeURL and Token."""
    message = sns.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "m",
            "Token": "t",
            "TopicArn": "arn",
            "Message": "confirm",
            "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2026-11-29T12:00:00Z",
        }
    )
    provider_webhooks.verify_sns(message, sns.cert_pem)
    with pytest.raises(SignatureError):
        provider_webhooks.verify_sns(
            {**message, "SubscribeURL": "https://evil.example/"}, sns.cert_pem
        )


def test_sns_tampered_unsigned_or_foreign_signed_is_refused(sns: SnsSigner) -> None:
    """Verify a changed Message, a missing signature and another key's signature are refused."""
    message = sns.sign(
        ses_notification(ses_bounce("a@example.com", delivery_id=7), cert_url=CERT_URL)
    )
    tampered = {**message, "Message": message["Message"].replace("a@example.com", "b@example.com")}
    with pytest.raises(SignatureError, match="does not match"):
        provider_webhooks.verify_sns(tampered, sns.cert_pem)
    with pytest.raises(SignatureError, match="not signed"):
        provider_webhooks.verify_sns({**message, "Signature": ""}, sns.cert_pem)
    other = SnsSigner()
    with pytest.raises(SignatureError, match="does not match"):
        provider_webhooks.verify_sns(other.sign(message), sns.cert_pem)
    with pytest.raises(SignatureError, match="SignatureVersion"):
        provider_webhooks.verify_sns({**message, "SignatureVersion": "3"}, sns.cert_pem)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        (CERT_URL, True),
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem", True),
        ("https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-1.pem", True),
        ("https://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem", True),  # host names have no case
        ("http://sns.eu-west-1.amazonaws.com/cert.pem", False),  # not https
        ("https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem", False),  # lookalike host
        ("https://sns.x.s3.amazonaws.com/cert.pem", False),  # an S3 bucket named like SNS
        ("https://sns.eu-west-1.s3.amazonaws.com/cert.pem", False),
        ("https://sns.amazonaws.com/cert.pem", False),  # no region
        ("https://sns.eu-west-1.amazonaws.com.cn.evil.example/cert.pem", False),
        ("https://evilsns.eu-west-1.amazonaws.com/cert.pem", False),
        ("https://sns.eu-west-1.amazonaws.com:8443/cert.pem", False),  # another port
        ("https://a@sns.eu-west-1.amazonaws.com/cert.pem", False),  # a user name
        ("https://sns.eu-west-1.amazonaws.com:x/cert.pem", False),  # a malformed port
        ("https://sns.eu-west-1.amazonaws.com./cert.pem", False),
        ("https://sns.eu-west-\u0661.amazonaws.com/cert.pem", False),  # not an ASCII digit
        ("https://evil.example/cert.pem", False),
        ("http://127.0.0.1:8080/cert.pem", False),  # loopback, but not listed
        ("", False),
    ],
)
def test_cert_url_must_be_https_on_an_sns_host_of_aws(url: str, ok: bool) -> None:
    """Verify SigningCertURL host and scheme rules: AWS's SNS hosts only, by an exact
    pattern (the former default pattern, still accepted in the setting, adds nothing)."""
    for listed in ([], ["sns.*.amazonaws.com"]):
        if ok:
            provider_webhooks.check_cert_url(url, listed)
        else:
            with pytest.raises(SignatureError):
                provider_webhooks.check_cert_url(url, listed)


def test_a_listed_host_other_than_loopback_must_still_be_https() -> None:
    """Verify a listed host is matched exactly, and only a loopback one may use http."""
    provider_webhooks.check_cert_url("https://certs.internal/x.pem", ["certs.internal"])
    with pytest.raises(SignatureError, match="https"):
        provider_webhooks.check_cert_url("http://certs.internal/x.pem", ["certs.internal"])
    with pytest.raises(SignatureError, match="not an SNS host"):
        provider_webhooks.check_cert_url("https://a.certs.internal/x.pem", ["certs.internal"])


def test_sns_topic_must_be_listed() -> None:
    """Verify no listed topic refuses everything, saying what to set; others are refused."""
    message = {"TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events"}
    with pytest.raises(SignatureError, match="OUTREACH_SNS_TOPIC_ARNS lists no topic"):
        provider_webhooks.check_sns_topic(message, frozenset())
    provider_webhooks.check_sns_topic(message, {message["TopicArn"]})
    for other in ("arn:aws:sns:eu-west-1:123456789012:ses-events2", None, ["x"]):
        with pytest.raises(SignatureError, match="not in OUTREACH_SNS_TOPIC_ARNS"):
            provider_webhooks.check_sns_topic({"TopicArn": other}, {message["TopicArn"]})


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [
        ("2025-11-29T12:00:00.000Z", True),
        ("2025-11-29T11:55:01Z", True),  # 299 s old
        ("2025-11-29T12:01:00+00:00", True),  # 60 s ahead: within the skew
        ("2025-11-29T11:54:59Z", False),  # 301 s old
        ("2025-11-29T12:01:01Z", False),  # 61 s ahead
        ("2001-01-01T00:00:00Z", False),
        ("2025-11-29T12:00:00", False),  # no zone
        ("nan", False),
        (None, False),
        (1764417600, False),
    ],
)
def test_sns_timestamp_must_be_recent(stamp: object, ok: bool) -> None:
    """Verify the max age (300 s) and the future skew (60 s) on an SNS Timestamp."""
    now = NOW  # 2025-11-29T12:00:00Z
    if ok:
        provider_webhooks.check_sns_timestamp({"Timestamp": stamp}, now=now, max_age_s=300)
    else:
        with pytest.raises(SignatureError):
            provider_webhooks.check_sns_timestamp({"Timestamp": stamp}, now=now, max_age_s=300)


@pytest.mark.parametrize(
    "text", ["nan", "NaN", "inf", "-inf", "1e999", "1e9", "-1", "", " 1", "0x10", "1_000", "\u0661"]
)
def test_unix_times_that_are_not_plain_numbers_are_refused(text: str) -> None:
    """Verify only digits (and a fraction) pass as a Unix time: no nan, inf or exponent."""
    with pytest.raises(SignatureError, match="not a Unix time"):
        provider_webhooks.unix_time(text, what="SendGrid")
    with pytest.raises(SignatureError, match="not a Unix time"):
        provider_webhooks.check_sendgrid_timestamp(text, now=NOW, max_age_s=300)
    assert provider_webhooks.unix_time("1764417600.25", what="x") == 1764417600.25


def test_non_finite_ages_are_refused() -> None:
    """Verify a non-finite time given to the age check is refused, not let through."""
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(SignatureError, match="not a finite number"):
            provider_webhooks.check_age(value, now=NOW, max_age_s=300, what="x")


def test_sendgrid_replay_key_names_the_signed_bytes() -> None:
    """Verify the replay key changes with the timestamp or the body, and only with them."""
    key = provider_webhooks.sendgrid_replay_key("1", b"[]")
    assert key == provider_webhooks.sendgrid_replay_key("1", b"[]")
    assert key != provider_webhooks.sendgrid_replay_key("2", b"[]")
    assert key != provider_webhooks.sendgrid_replay_key("1", b"[ ]")
    assert provider_webhooks.sendgrid_replay_key("1", b"2[]") != (
        provider_webhooks.sendgrid_replay_key("12", b"[]")
    )


def test_cert_url_on_an_allowed_loopback_host_may_be_http() -> None:
    """Verify an explicitly allowed loopback host (a test stand-in) may serve over http."""
    provider_webhooks.check_cert_url("http://127.0.0.1:8080/cert.pem", ["127.0.0.1"])


def test_ses_events_keep_hard_bounces_and_complaints_only() -> None:
    """Verify a permanent bounce and a complaint become events, a transient bounce does not."""
    bounce = ses_notification(ses_bounce("A@Example.com", delivery_id=7), cert_url=CERT_URL)
    [event] = provider_webhooks.ses_events(bounce)
    assert (event.feedback, event.email, event.delivery_id) == (
        Feedback.BOUNCED,
        "A@Example.com",
        7,
    )
    assert event.provider_message_id == "ses-msg-1"
    soft = ses_bounce("a@example.com", delivery_id=7)
    soft["bounce"]["bounceType"] = "Transient"
    assert provider_webhooks.ses_events(ses_notification(soft, cert_url=CERT_URL)) == []
    complaint = {
        "eventType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "c@example.com"}]},
        "mail": {"messageId": "m2", "tags": {}},
    }
    [event] = provider_webhooks.ses_events(ses_notification(complaint, cert_url=CERT_URL))
    assert (event.feedback, event.delivery_id) == (Feedback.COMPLAINED, None)
    with pytest.raises(InputError):
        provider_webhooks.ses_events({"Message": "not json"})


def test_sendgrid_signed_events_are_accepted_and_others_refused() -> None:
    """Verify ECDSA over timestamp + body: valid accepted; tampered, unsigned, other key refused."""
    signer = SendGridSigner()
    body = json.dumps(
        [
            {
                "email": "b@example.com",
                "event": "bounce",
                "type": "bounce",
                "outreach_delivery": "12",
                "sg_message_id": "abc.filter0001",
            },
            {"email": "s@example.com", "event": "bounce", "type": "blocked"},
            {"email": "c@example.com", "event": "spamreport"},
            {"email": "d@example.com", "event": "delivered"},
        ]
    ).encode()
    headers = signer.headers(body)
    key = provider_webhooks.load_sendgrid_key(signer.public_key)
    sig, ts = (
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )
    provider_webhooks.verify_sendgrid(key, body=body, signature=sig, timestamp=ts)
    with pytest.raises(SignatureError):
        provider_webhooks.verify_sendgrid(key, body=body + b" ", signature=sig, timestamp=ts)
    with pytest.raises(SignatureError):
        provider_webhooks.verify_sendgrid(key, body=body, signature=sig, timestamp="1764417601")
    with pytest.raises(SignatureError, match="lacks"):
        provider_webhooks.verify_sendgrid(key, body=body, signature=None, timestamp=ts)
    other = SendGridSigner().headers(body)
    with pytest.raises(SignatureError):
        provider_webhooks.verify_sendgrid(
            key, body=body, signature=other["X-Twilio-Email-Event-Webhook-Signature"], timestamp=ts
        )
    events = provider_webhooks.sendgrid_events(body)
    assert [(e.email, e.feedback, e.delivery_id) for e in events] == [
        ("b@example.com", Feedback.BOUNCED, 12),
        ("c@example.com", Feedback.COMPLAINED, None),
    ]
    assert events[0].provider_message_id == "abc"


def test_sendgrid_key_setting_that_is_not_a_key_is_a_clear_error() -> None:
    """Verify a bad OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY names the setting."""
    with pytest.raises(InputError, match="OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        provider_webhooks.load_sendgrid_key("not-a-key")


def test_mailgun_hmac_and_age_are_checked() -> None:
    """Verify the HMAC of timestamp + token: valid accepted; wrong key, stale, missing refused."""
    data = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "b@example.com",
        "user-variables": {"outreach-delivery": "5"},
        "message": {"headers": {"message-id": "20261129.1@mg.example.com"}},
    }
    body = mailgun_body(MG_KEY, data, timestamp=int(NOW))
    signature, event_data = provider_webhooks.mailgun_parts(body)
    provider_webhooks.verify_mailgun(MG_KEY, **signature, now=NOW + 10, max_age_s=300)
    with pytest.raises(SignatureError, match="does not match"):
        provider_webhooks.verify_mailgun("another-key", **signature, now=NOW, max_age_s=300)
    with pytest.raises(SignatureError, match="replay"):
        provider_webhooks.verify_mailgun(MG_KEY, **signature, now=NOW + 3600, max_age_s=300)
    with pytest.raises(SignatureError, match="in the future"):
        provider_webhooks.verify_mailgun(MG_KEY, **signature, now=NOW - 61, max_age_s=300)
    nan = provider_webhooks.mailgun_parts(mailgun_body(MG_KEY, data, timestamp="nan"))[0]
    with pytest.raises(SignatureError, match="not a Unix time"):
        provider_webhooks.verify_mailgun(MG_KEY, **nan, now=NOW, max_age_s=300)
    with pytest.raises(SignatureError, match="lacks"):
        provider_webhooks.verify_mailgun(
            MG_KEY, timestamp="", token="", signature="", now=NOW, max_age_s=300
        )
    tampered = {**signature, "token": "tok-2"}
    with pytest.raises(SignatureError):
        provider_webhooks.verify_mailgun(MG_KEY, **tampered, now=NOW, max_age_s=300)
    [event] = provider_webhooks.mailgun_events(event_data)
    assert (event.feedback, event.delivery_id, event.provider_message_id) == (
        Feedback.BOUNCED,
        5,
        "<20261129.1@mg.example.com>",
    )
    assert provider_webhooks.mailgun_events({**data, "severity": "temporary"}) == []
    assert (
        provider_webhooks.mailgun_events({"event": "complained", "recipient": "c@example.com"})[
            0
        ].feedback
        is Feedback.COMPLAINED
    )


@pytest.mark.parametrize("value", ["12", 12, "0", "-3", "abc", "9" * 40, None, "2147483648"])
def test_delivery_ids_outside_the_database_range_are_ignored(value: object) -> None:
    """Verify only a positive 32-bit integer is taken as our delivery id."""
    expected = 12 if value in ("12", 12) else None
    assert provider_webhooks._int_or_none(value) == expected


def test_non_ascii_signatures_are_refused_not_crashing() -> None:
    """Verify a signature with non-ASCII characters is a refusal (compare_digest needs bytes)."""
    with pytest.raises(SignatureError, match="does not match"):
        provider_webhooks.verify_mailgun(
            MG_KEY, timestamp=str(int(NOW)), token="t", signature="é" * 64, now=NOW, max_age_s=300
        )


def test_sns_topic_setting_takes_commas_or_spaces_and_refuses_what_is_not_an_arn() -> None:
    """Verify OUTREACH_SNS_TOPIC_ARNS parsing, and that a wildcard or a typo is a ConfigError
    naming the setting (a pattern must not silently let every topic in)."""
    a = "arn:aws:sns:eu-west-1:123456789012:ses-events"
    b = "arn:aws-cn:sns:cn-north-1:123456789012:bounces.fifo"
    settings = load_settings(_env_file=None, OUTREACH_SNS_TOPIC_ARNS=f" {a},{b}  {a}")
    assert settings.sns_topics == {a, b}
    assert load_settings(_env_file=None).sns_topics == frozenset()
    for bad in (
        "arn:aws:sns:*:123456789012:ses-events",
        "ses-events",
        f"{a}*",
        "arn:aws:sqs:eu-west-1:123456789012:q",
    ):
        with pytest.raises(ConfigError, match=r"OUTREACH_SNS_TOPIC_ARNS: .*not an SNS topic ARN"):
            load_settings(_env_file=None, OUTREACH_SNS_TOPIC_ARNS=bad)


def test_sns_cert_hosts_setting_lists_exact_hosts() -> None:
    """Verify OUTREACH_SNS_CERT_HOSTS: the former default pattern still loads (AWS's hosts),
    exact hosts are listed, any other pattern is refused naming the setting."""
    assert load_settings(_env_file=None).sns_listed_cert_hosts == []
    legacy = load_settings(_env_file=None, OUTREACH_SNS_CERT_HOSTS="sns.*.amazonaws.com")
    assert legacy.sns_listed_cert_hosts == []
    listed = load_settings(_env_file=None, OUTREACH_SNS_CERT_HOSTS="127.0.0.1, Certs.Internal")
    assert listed.sns_listed_cert_hosts == ["127.0.0.1", "certs.internal"]
    with pytest.raises(ConfigError, match=r"OUTREACH_SNS_CERT_HOSTS: .*not a host name"):
        load_settings(_env_file=None, OUTREACH_SNS_CERT_HOSTS="*.amazonaws.com")


def test_body_limit_setting() -> None:
    """Verify OUTREACH_HTTP_MAX_BODY_BYTES: 1 MiB by default, at least 1 KiB."""
    assert load_settings(_env_file=None).http_max_body_bytes == 1_048_576
    assert (
        load_settings(_env_file=None, OUTREACH_HTTP_MAX_BODY_BYTES="4096").http_max_body_bytes
        == 4096
    )
    with pytest.raises(ConfigError, match="OUTREACH_HTTP_MAX_BODY_BYTES"):
        load_settings(_env_file=None, OUTREACH_HTTP_MAX_BODY_BYTES="10")
