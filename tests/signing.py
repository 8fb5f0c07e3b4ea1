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


def ses_notification(
    event: dict[str, Any], *, cert_url: str, message_id: str = "sns-1"
) -> dict[str, Any]:
    """An unsigned SNS Notification carrying an SES event."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(event),
        "Timestamp": "2026-11-29T12:00:00.000Z",
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

    def headers(self, body: bytes, timestamp: str = "1764417600") -> dict[str, str]:
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        }


def mailgun_body(
    key: str, event_data: dict[str, Any], *, timestamp: int, token: str = "tok-1"
) -> dict[str, Any]:
    """A Mailgun webhook body signed with `key`."""
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {
            "timestamp": str(timestamp),
            "token": token,
            "signature": signature.hexdigest(),
        },
        "event-data": event_data,
    }
