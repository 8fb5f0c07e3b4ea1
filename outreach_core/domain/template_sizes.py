"""What an operation of a template would make, checked before it runs (pure, no I/O).

`template_limits` applies these checks from inside the sandbox; each refusal is a
RenderLimitError whose message names the bound, so the row becomes a `render_error`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

#: the most characters (or items) a value, a block or a rendered part may hold
SIZE_CAP = 1_000_000
SIZE_CAP_LABEL = "1 MB"
#: the most digits a number may have (Python refuses to print a longer one anyway)
MAX_INT_DIGITS = 4_300


class RenderLimitError(Exception):
    """A render went past one of the bounds; the message names it."""


def _digits(number: int) -> int:
    return number.bit_length() * 30103 // 100_000 + 1


def weight(value: Any, limit: int = SIZE_CAP) -> int:
    """About how many characters `value` prints to (items count for containers); counting
    stops once past `limit`, so a huge or deeply shared structure costs at most that."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += _digits(item)
        elif isinstance(item, range):
            try:
                total += len(item)
            except OverflowError:
                return limit + 1
        elif isinstance(item, Mapping):
            total += 2 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            if total <= limit:
                stack.extend(item)
        else:
            total += 1
    return total


def refuse_past_cap(what: str, size: int) -> None:
    if size > SIZE_CAP:
        raise RenderLimitError(
            f"{what} would make {size:,} characters; a value may have at most {SIZE_CAP:,} "
            f"(the {SIZE_CAP_LABEL} size cap)"
        )


def check_size(value: Any, what: str) -> None:
    """Refuse a value past the size cap, naming what made it."""
    if (size := weight(value)) > SIZE_CAP:
        refuse_past_cap(what, size)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# `%(key)flags width .precision length conversion`, as printf-style formatting reads it
_PRINTF = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)


def printf_size(template: str | bytes, args: Any) -> int:
    """An upper bound of the length of `template % args` (widths and precisions included)."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    mapping = args if isinstance(args, Mapping) else None
    values = list(args) if isinstance(args, tuple) else [args]
    total = len(text)
    for match in _PRINTF.finditer(text):
        key, width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        for spec in (width, precision):
            if spec == "*":
                total += _int(values.pop(0)) if values and mapping is None else 0
            elif spec:
                total += int(spec) if len(spec) < 10 else SIZE_CAP + 1
        if mapping is not None:  # `%(key)s` prints one value, `%s` the whole mapping
            total += weight(mapping.get(key[1:-1]) if key is not None else mapping)
        elif values:
            total += weight(values.pop(0))
    return total


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `**`, `*` and `%` whose result would pass a bound, before computing it."""
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            digits = right * math.log10(abs(left))
            if digits > MAX_INT_DIGITS:
                raise RenderLimitError(
                    f"exponent too large: a power with exponent {right:,} would have about "
                    f"{digits:,.0f} digits; a number may have at most {MAX_INT_DIGITS:,}"
                )
    elif operator == "*":
        sequences = str | bytes | list | tuple
        if isinstance(left, int) and isinstance(right, int):
            if _digits(left) + _digits(right) > MAX_INT_DIGITS + 1:
                raise RenderLimitError(
                    f"number too large: a product would have more than {MAX_INT_DIGITS:,} digits"
                )
        elif isinstance(left, sequences) and isinstance(right, int):
            _check_repetition(left, right)
        elif isinstance(right, sequences) and isinstance(left, int):
            _check_repetition(right, left)
    elif operator == "%" and isinstance(left, str | bytes):
        refuse_past_cap("%-formatting", printf_size(left, right))


def _check_repetition(sequence: str | bytes | list | tuple, times: int) -> None:
    kind = "string" if isinstance(sequence, str | bytes) else "list"
    size = weight(sequence) * max(times, 0)
    if size > SIZE_CAP:
        raise RenderLimitError(
            f"{kind} repetition too large: {times:,} times would make {size:,} characters; a "
            f"value may have at most {SIZE_CAP:,} (the {SIZE_CAP_LABEL} size cap)"
        )


# ---- filters: a pre-check per filter that takes a size, and the size of every result ----


def _center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    refuse_past_cap("|center", max(len(str(value)), _int(width)))


def _indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    text = str(s)
    per_line = len(width) if isinstance(width, str) else _int(width)
    refuse_past_cap("|indent", len(text) + (text.count("\n") + 1) * per_line)


def _wordwrap(
    s: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    *_: Any,
    **__: Any,
) -> None:
    text = str(s)
    # a wrapped line plus the next word is longer than `width`: at most 2 lines per width
    lines = 2 * len(text) // max(_int(width), 1) + text.count("\n") + 1
    refuse_past_cap("|wordwrap", len(text) + lines * len(str(wrapstring or "\n")))


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    refuse_past_cap("|format", printf_size(str(value), kwargs or args))


def _join(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    items = list(value)
    separators = len(str(d)) * max(len(items) - 1, 0)
    refuse_past_cap("|join", weight(items) + separators)


def _occurrences(text: str, old: str) -> int:
    return text.count(old) if old else len(text) + 1


def _replace(s: Any, old: Any, new: Any, count: Any = None, *_: Any, **__: Any) -> None:
    text, old, new = str(s), str(old), str(new)
    times = _occurrences(text, old)
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    refuse_past_cap("|replace", len(text) + times * max(len(new) - len(old), 0))


def _batch(value: Any, linecount: Any = 1, *_: Any, **__: Any) -> None:
    refuse_past_cap("|batch count", _int(linecount))


def _slice(value: Any, slices: Any = 1, *_: Any, **__: Any) -> None:
    refuse_past_cap("|slice count", _int(slices))


def _tojson(value: Any, indent: Any = None, *_: Any, **__: Any) -> None:
    per_line = len(indent) if isinstance(indent, str) else _int(indent)
    refuse_past_cap("|tojson", weight(value) * (2 + per_line))


def _urlize(
    value: Any, trim_url_limit: Any = None, nofollow: Any = False, target: Any = None,
    rel: Any = None, *_: Any, **__: Any
) -> None:  # fmt: skip
    text = str(value)
    extra = len(str(target or "")) + len(str(rel or "")) + 60  # the <a href=…> around a link
    links = [word for word in text.split() if any(c in word for c in ".:@")]
    refuse_past_cap("|urlize", len(text) + sum(len(word) + extra for word in links))


FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "batch": _batch,
    "slice": _slice,
    "tojson": _tojson,
    "urlize": _urlize,
}


def check_method(owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    what = f".{name}()"
    first = args[0] if args else None
    if isinstance(owner, str | bytes):
        size = len(owner)
        if name in ("center", "ljust", "rjust", "zfill"):
            refuse_past_cap(what, max(size, _int(first)))
        elif name == "expandtabs":
            tabsize = _int(kwargs.get("tabsize", 8 if first is None else first))
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            refuse_past_cap(what, size + tabs * tabsize)
        elif name == "replace" and len(args) >= 2 and type(args[0]) is type(args[1]) is type(owner):
            times = _occurrences(str(owner), str(args[0])) if isinstance(owner, str) else size + 1
            refuse_past_cap(what, size + times * max(len(args[1]) - len(args[0]), 0))
        elif name == "join" and isinstance(first, list):
            refuse_past_cap(what, weight(first) + size * max(len(first) - 1, 0))
        elif name == "translate" and isinstance(first, Mapping):
            longest = max((weight(v) for v in first.values()), default=1)
            refuse_past_cap(what, size * max(longest, 1))
    elif name == "to_bytes" and isinstance(owner, int):
        refuse_past_cap(what, _int(kwargs.get("length", 1 if first is None else first)))
    elif name == "strftime" and isinstance(first, str):
        refuse_past_cap(what, 256 * len(first))  # C strftime may pad each field
