"""Provider webhooks, decided without I/O: signature checks and payloads -> events.

- SES through SNS: the TopicArn must be one of the listed topics, the Timestamp recent, and the
  SNS message signature (RSA, SHA1 for SignatureVersion 1, SHA256 for 2) over the documented
  string-to-sign must check out with the certificate at SigningCertURL, whose host must be AWS's
  (`sns.<region>.amazonaws.com`, `.com.cn`) or listed, and whose scheme must be https.
- SendGrid's signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body, the
  signature (base64 DER) in `X-Twilio-Email-Event-Webhook-Signature`, the verification key
  (base64 DER SubjectPublicKeyInfo) from SendGrid's settings page.
- Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key, hex.

Every provider's timestamp must be recent: older than the allowed age, more than
`FUTURE_SKEW_S` ahead, or not a finite number is refused (a replayed or forged request).

Only hard bounces and complaints become events; everything else (delivered, opens, soft bounces)
is acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from outreach_core.adapters.senders.mailgun import DELIVERY_VARIABLE
from outreach_core.adapters.senders.sendgrid import DELIVERY_ARG
from outreach_core.adapters.senders.ses import DELIVERY_TAG
from outreach_core.domain.models import Feedback, ProviderEvent
from outreach_core.errors import InputError, SignatureError

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: the key of our delivery id in Mailgun's `user-variables` (the `v:` prefix is dropped)
MAILGUN_DELIVERY_KEY = DELIVERY_VARIABLE.removeprefix("v:")

#: SNS fields signed per message type, in the documented order
_SNS_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SNS_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
#: the hosts AWS serves SNS certificates and subscription confirmations from: one label `sns`,
#: one region (us-east-1, cn-north-1, us-gov-west-1), then amazonaws.com or amazonaws.com.cn
SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\.amazonaws\.com(?:\.cn)?", re.ASCII)
#: how far ahead of our clock a provider's timestamp may be (clocks drift a little)
FUTURE_SKEW_S = 60
#: a Unix time in seconds as the providers write it: digits, maybe a fraction (no nan, inf, 1e9)
_UNIX_TIME = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


# --- freshness ----------------------------------------------------------------------------------


def check_age(sent_at: float, *, now: float, max_age_s: int, what: str) -> None:
    """Refuse a request dated more than `max_age_s` ago or more than `FUTURE_SKEW_S` ahead."""
    age = now - sent_at
    if not math.isfinite(age):
        raise SignatureError(f"{what} timestamp is not a finite number; refused")
    if age > max_age_s:
        raise SignatureError(
            f"{what} is dated {age:.0f} s ago, older than OUTREACH_WEBHOOK_MAX_AGE_S "
            f"({max_age_s} s); refused as a replay"
        )
    if age < -FUTURE_SKEW_S:
        raise SignatureError(
            f"{what} is dated {-age:.0f} s in the future (more than {FUTURE_SKEW_S} s ahead of "
            "this machine's clock); refused"
        )


def unix_time(text: str, *, what: str) -> float:
    """A provider's Unix timestamp (seconds); anything else, `nan` or `1e999` too, is refused."""
    if not _UNIX_TIME.fullmatch(text):
        raise SignatureError(f"{what} timestamp is not a Unix time in seconds; refused")
    return float(text)


# --- SNS ---------------------------------------------------------------------------------------


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs: `name\\nvalue\\n` per field, Subject only when present."""
    kind = message.get("Type")
    if kind not in SNS_TYPES:
        raise SignatureError(f"SNS message Type {kind!r} is not one of {', '.join(SNS_TYPES)}")
    names = _SNS_NOTIFICATION_FIELDS if kind == "Notification" else _SNS_SUBSCRIPTION_FIELDS
    parts = []
    for name in names:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise SignatureError(f"SNS message lacks the signed field {name}")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def check_cert_url(url: str, listed_hosts: Collection[str] = ()) -> None:
    """Refuse a SigningCertURL (or SubscribeURL) that is not on an SNS host of AWS.

    AWS's hosts match `SNS_HOST` exactly (no wildcard: `sns.x.s3.amazonaws.com` is someone's S3
    bucket) and are reached over https on the default port. `listed_hosts` are exact host names
    allowed besides (OUTREACH_SNS_CERT_HOSTS); a listed loopback host may be plain http (a test
    or an air-gapped stand-in). Otherwise anyone could sign with a certificate of their own.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise SignatureError("SNS certificate URL has a malformed port") from None
    if parts.username is not None or parts.password is not None:
        raise SignatureError("SNS certificate URL must not hold a user name")
    listed = host in {h.strip().lower() for h in listed_hosts}
    if not listed and not (SNS_HOST.fullmatch(host) and port is None):
        raise SignatureError(
            f"SNS certificate host {host[:100]!r} is not an SNS host of AWS "
            "(sns.<region>.amazonaws.com or .amazonaws.com.cn) nor in OUTREACH_SNS_CERT_HOSTS"
        )
    if parts.scheme != "https" and not (listed and host in _LOOPBACK and parts.scheme == "http"):
        raise SignatureError("SNS certificate URL must be https")


def check_sns_topic(message: Mapping[str, Any], topics: Collection[str]) -> None:
    """Refuse a message of a topic that is not listed (all of them while none is)."""
    if not topics:
        raise SignatureError(
            "SNS messages are refused: OUTREACH_SNS_TOPIC_ARNS lists no topic. Set it to the "
            "TopicArns of your SES event topics (comma-separated, e.g. "
            "arn:aws:sns:us-east-1:123456789012:ses-events) and restart the daemon"
        )
    topic = message.get("TopicArn")
    if not isinstance(topic, str) or topic not in topics:
        shown = str(topic)[:200]
        raise SignatureError(
            f"SNS topic {shown!r} is not in OUTREACH_SNS_TOPIC_ARNS; add it there if it is yours"
        )


def check_sns_timestamp(message: Mapping[str, Any], *, now: float, max_age_s: int) -> None:
    """Refuse an SNS message whose (signed) Timestamp is old, far ahead or not a date."""
    text = message.get("Timestamp")
    try:
        sent = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        sent = None
    if sent is None or sent.tzinfo is None:
        raise SignatureError("SNS Timestamp is not an ISO 8601 time with a zone; refused")
    check_age(sent.timestamp(), now=now, max_age_s=max_age_s, what="SNS message")


def verify_sns(message: Mapping[str, Any], cert_pem: bytes) -> None:
    """Raise SignatureError unless the message was signed by the certificate's key."""
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # SNS SignatureVersion 1 is defined on SHA1
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SignatureError(f"SNS SignatureVersion {version!r} is not 1 or 2")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("SNS Signature is not base64") from None
    if not signature:
        raise SignatureError("SNS message is not signed")
    try:
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except ValueError:
        raise SignatureError("SNS signing certificate is not a PEM certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SignatureError("SNS signature does not match the message") from None


def ses_events(message: Mapping[str, Any]) -> list[ProviderEvent]:
    """Hard bounces and complaints in an SES event (event publishing or notification) carried
    in an SNS Notification's Message."""
    try:
        body = json.loads(str(message.get("Message", "")))
    except json.JSONDecodeError:
        raise InputError("SNS Message is not the JSON of an SES event") from None
    if not isinstance(body, dict):
        raise InputError("SNS Message is not the JSON of an SES event")
    kind = str(body.get("eventType") or body.get("notificationType") or "")
    mail = body.get("mail") if isinstance(body.get("mail"), dict) else {}
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    tagged = tags.get(DELIVERY_TAG)
    delivery_id = _int_or_none(tagged[0] if isinstance(tagged, list) and tagged else tagged)
    message_id = mail.get("messageId") if isinstance(mail.get("messageId"), str) else None
    if kind == "Bounce":
        bounce = body.get("bounce") if isinstance(body.get("bounce"), dict) else {}
        if bounce.get("bounceType") != "Permanent":
            return []
        feedback, recipients = Feedback.BOUNCED, bounce.get("bouncedRecipients")
        detail = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType', '')}"
    elif kind == "Complaint":
        complaint = body.get("complaint") if isinstance(body.get("complaint"), dict) else {}
        feedback, recipients = Feedback.COMPLAINED, complaint.get("complainedRecipients")
        detail = str(complaint.get("complaintFeedbackType", ""))
    else:
        return []
    return [
        ProviderEvent(
            provider="ses",
            feedback=feedback,
            email=str(item.get("emailAddress", "")),
            delivery_id=delivery_id,
            provider_message_id=message_id,
            detail=detail,
        )
        for item in (recipients if isinstance(recipients, list) else [])
        if isinstance(item, dict) and item.get("emailAddress")
    ]


# --- SendGrid -----------------------------------------------------------------------------------


def load_sendgrid_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key (base64 DER, or PEM) as an EC public key."""
    text = public_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error):
        raise InputError(
            "OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key; paste the verification "
            "key from SendGrid's Event Webhook settings"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError("OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA key")
    return key


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey, *, body: bytes, signature: str | None, timestamp: str | None
) -> None:
    """Raise SignatureError unless `signature` is SendGrid's over timestamp + body."""
    if not signature or not timestamp:
        raise SignatureError(
            f"SendGrid request lacks {SENDGRID_SIGNATURE_HEADER} or {SENDGRID_TIMESTAMP_HEADER}"
        )
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("SendGrid signature is not base64") from None
    try:
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("SendGrid signature does not match the request") from None


def check_sendgrid_timestamp(timestamp: str, *, now: float, max_age_s: int) -> None:
    """Refuse a SendGrid request whose (signed) timestamp header is old, ahead or not a time."""
    sent_at = unix_time(timestamp, what="SendGrid")
    check_age(sent_at, now=now, max_age_s=max_age_s, what="SendGrid request")


def sendgrid_replay_key(timestamp: str, body: bytes) -> str:
    """What identifies one signed SendGrid request: the hash of the signed bytes. Not the
    signature, since an ECDSA signature can be rewritten into another valid one."""
    return hashlib.sha256(timestamp.encode() + b"\n" + body).hexdigest()


def sendgrid_events(body: bytes) -> list[ProviderEvent]:
    """Hard bounces and spam reports in an Event Webhook POST (a JSON array)."""
    try:
        items = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("SendGrid event body is not JSON") from None
    if not isinstance(items, list):
        raise InputError("SendGrid event body is not a JSON array")
    found = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("email"), str):
            continue
        event = item.get("event")
        if event == "bounce" and item.get("type", "bounce") != "blocked":
            feedback = Feedback.BOUNCED
        elif event == "spamreport":
            feedback = Feedback.COMPLAINED
        else:
            continue
        sg_id = item.get("sg_message_id")
        found.append(
            ProviderEvent(
                provider="sendgrid",
                feedback=feedback,
                email=item["email"],
                delivery_id=_int_or_none(item.get(DELIVERY_ARG)),
                # sg_message_id is the X-Message-Id we stored, then ".filter…"
                provider_message_id=sg_id.split(".", 1)[0] if isinstance(sg_id, str) else None,
                detail=str(item.get("reason", ""))[:300],
            )
        )
    return found


# --- Mailgun ------------------------------------------------------------------------------------


def verify_mailgun(
    signing_key: str, *, timestamp: str, token: str, signature: str, now: float, max_age_s: int
) -> None:
    """Raise SignatureError unless the HMAC matches and the timestamp is recent (a finite Unix
    time, neither older than `max_age_s` nor ahead of `now` by more than `FUTURE_SKEW_S`)."""
    if not (timestamp and token and signature):
        raise SignatureError("Mailgun request lacks signature.timestamp, token or signature")
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise SignatureError("Mailgun signature does not match the request")
    sent_at = unix_time(timestamp, what="Mailgun")
    check_age(sent_at, now=now, max_age_s=max_age_s, what="Mailgun request")


def mailgun_parts(payload: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(signature, event-data) of a Mailgun webhook JSON body."""
    signature = payload.get("signature")
    data = payload.get("event-data")
    if not isinstance(signature, dict) or not isinstance(data, dict):
        raise InputError("Mailgun body must have `signature` and `event-data` objects")
    return {k: str(v) for k, v in signature.items()}, data


def mailgun_events(data: Mapping[str, Any]) -> list[ProviderEvent]:
    """A permanent failure or a complaint in Mailgun's event-data, as an event."""
    event = data.get("event")
    if event == "failed" and data.get("severity") == "permanent":
        feedback = Feedback.BOUNCED
    elif event == "complained":
        feedback = Feedback.COMPLAINED
    else:
        return []
    recipient = data.get("recipient")
    if not isinstance(recipient, str):
        return []
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    message_id = headers.get("message-id")
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    return [
        ProviderEvent(
            provider="mailgun",
            feedback=feedback,
            email=recipient,
            delivery_id=_int_or_none(variables.get(MAILGUN_DELIVERY_KEY)),
            # we store Mailgun's id as its API returns it: in angle brackets
            provider_message_id=f"<{str(message_id).strip('<>')}>" if message_id else None,
            detail=str(status.get("description") or status.get("message") or "")[:300],
        )
    ]


def _int_or_none(value: object) -> int | None:
    """Our delivery id, if the value is one (a positive integer the database can hold)."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if 0 < number < 2**31 else None
