"""Webhook samples signed the way the providers document it, for the tests.

SNS: an RSA key and a self-signed certificate, the string-to-sign of `webhooks` signed with
SHA256 (SignatureVersion 2) or SHA1 (1). SendGrid: an ECDSA P-256 key, signature over
timestamp + body. Mailgun: HMAC-SHA256 of timestamp + token with the signing key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from outreach_core.adapters.provider_webhooks import sns_string_to_sign


class SnsSigner:
    """A stand-in for SNS's signing key and its certificate (PEM)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        now = datetime.now(UTC)
        self.cert_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )

    def sign(self, message: dict[str, Any], *, version: str = "2") -> dict[str, Any]:
        signed = {**message, "SignatureVersion": version}
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(sns_string_to_sign(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


#: the topic the samples come from (tests list it in OUTREACH_SNS_TOPIC_ARNS)
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ses-events"


def sns_time(at: datetime | None = None) -> str:
    """An SNS Timestamp (ISO 8601, milliseconds, Z); now by default."""
    moment = at or datetime.now(UTC)
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def ses_notification(
    event: dict[str, Any],
    *,
    cert_url: str,
    message_id: str = "sns-1",
    topic: str = TOPIC_ARN,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """An unsigned SNS Notification carrying an SES event, dated now unless told."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(event),
        "Timestamp": timestamp or sns_time(),
        "SigningCertURL": cert_url,
    }


def subscription_confirmation(
    *, cert_url: str, subscribe_url: str, topic: str = TOPIC_ARN, message_id: str = "m-1"
) -> dict[str, Any]:
    """An unsigned SNS SubscriptionConfirmation, dated now."""
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": "tok",
        "TopicArn": topic,
        "Message": "You have chosen to subscribe",
        "SubscribeURL": subscribe_url,
        "Timestamp": sns_time(),
        "SigningCertURL": cert_url,
    }


def ses_bounce(email: str, *, delivery_id: int | None, message_id: str = "ses-msg-1") -> dict:
    """An SES event-publishing Bounce (permanent)."""
    tags = {"outreach_delivery": [str(delivery_id)]} if delivery_id is not None else {}
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email}],
        },
        "mail": {"messageId": message_id, "destination": [email], "tags": tags},
    }


class SendGridSigner:
    """A stand-in for SendGrid's event-webhook signing key."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid shows it: base64 of the DER public key."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The request headers of `body` signed at `timestamp` (now by default)."""
        timestamp = timestamp or str(int(time.time()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        }


def mailgun_body(
    key: str, event_data: dict[str, Any], *, timestamp: int | str, token: str = "tok-1"
) -> dict[str, Any]:
    """A Mailgun webhook body signed with `key` (any timestamp text, `nan` too)."""
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {
            "timestamp": str(timestamp),
            "token": token,
            "signature": signature.hexdigest(),
        },
        "event-data": event_data,
    }
