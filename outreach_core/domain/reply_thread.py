"""Continuing a recipient's thread: the `Re:` subject and the In-Reply-To / References headers of
a follow-up (RFC 5322 section 3.6.4).

Pure. A follow-up's References are its parent's References followed by the parent's Message-ID;
as each step of a thread is ours, that is the Message-IDs of the thread's messages from its first
(the step that started it: step 1, or a follow-up sent as a new thread) to the parent. The list
is capped (RFC 5322 allows trimming the middle): the first and the latest ones are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: References keep at most this many Message-IDs: the thread's first and the latest ones
MAX_REFERENCES = 10

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, never stacked: a subject that already begins with `Re:` (or `RE:`,
    `Re[2]:`, `AW:`...) keeps its text after the prefixes once, behind one `Re: `."""
    stripped = _REPLY_PREFIX.sub("", subject, count=1).strip()
    return f"Re: {stripped}" if stripped else "Re:"


@dataclass(frozen=True)
class ThreadLink:
    """One earlier message of a recipient's thread, as the follow-up sees it."""

    step: int
    message_id: str
    #: whether that message itself continued the thread before it (step 1: False)
    threaded: bool


@dataclass(frozen=True)
class ThreadHeaders:
    """What a threaded follow-up carries."""

    in_reply_to: str
    references: tuple[str, ...]

    def as_headers(self) -> dict[str, str]:
        """`In-Reply-To` and `References`, ready for `build_message(extra_headers=...)`."""
        return {"In-Reply-To": self.in_reply_to, "References": " ".join(self.references)}


def thread_start(chain: Sequence[ThreadLink]) -> int:
    """The index in `chain` (nearest first: the parent, its parent, ...) of the message that
    started the thread the parent belongs to."""
    if not chain:
        raise ValueError("a follow-up needs the message it follows")
    for index, link in enumerate(chain):
        if not link.threaded:
            return index
    return len(chain) - 1


def thread_headers(chain: Sequence[ThreadLink], *, cap: int = MAX_REFERENCES) -> ThreadHeaders:
    """The headers of a follow-up to `chain[0]` (its parent; the rest are the parent's own
    ancestors, nearest first): In-Reply-To the parent, References the thread from its start."""
    start = thread_start(chain)
    ids = [link.message_id for link in reversed(chain[: start + 1])]
    return ThreadHeaders(in_reply_to=chain[0].message_id, references=cap_references(ids, cap))


def cap_references(ids: Sequence[str], cap: int = MAX_REFERENCES) -> tuple[str, ...]:
    """At most `cap` ids (duplicates dropped): the first, then the latest `cap - 1`."""
    if cap < 2:
        raise ValueError("References keep at least the first and the latest Message-ID")
    unique = list(dict.fromkeys(i for i in ids if i))
    if len(unique) <= cap:
        return tuple(unique)
    return (unique[0], *unique[-(cap - 1) :])
