"""What one render may cost: bounds that keep any template from stopping a worker.

The sandbox (`templating`) refuses what is unsafe; these bounds refuse what is too big or too
slow, with an error naming the bound, so the row becomes a `render_error`:

- numbers: `**` whose result would pass MAX_INT_DIGITS digits ("exponent too large"), `*` of
  two numbers past it ("number too large");
- repetition: `*` of a string or list past SIZE_CAP ("repetition too large");
- loops: every step of a `{% for %}` (nested loops included) counts against MAX_LOOP_STEPS
  per message, and `range()` refuses more numbers than the steps left;
- filters that take a size, checked before they run: `center` (width), `indent` (width per
  line), `wordwrap` (wrapstring per line), `format` (printf widths and precisions), `join`
  (separator per item), `replace` (new text per occurrence), `batch` and `slice` (counts),
  `tojson` (indent), `urlize` (target/rel per link); `truncate` and the rest cannot grow past
  a small multiple of their input;
- str/bytes methods that take a size: `center`, `ljust`, `rjust`, `zfill`, `expandtabs`,
  `replace`, `join`, `translate`, and `int.to_bytes`, `strftime`; `str.format` and
  `format_map` are refused (their format specs take widths too);
- size: every value an operator, `~`, filter, method or macro makes, every block and every
  rendered part holds at most SIZE_CAP characters (or items): "the 1 MB size cap";
- time: TIME_LIMIT_S per message, checked at every call, operator, filter, loop step and
  output piece. It is cooperative; the bounds above keep each of those steps short.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_context, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from outreach_core.domain.template_sizes import (
    FILTER_CHECKS,
    SIZE_CAP,
    SIZE_CAP_LABEL,
    RenderLimitError,
    check_binop,
    check_method,
    check_size,
    refuse_past_cap,
    weight,
)

#: the most `{% for %}` steps one message may take, over its parts and nested loops
MAX_LOOP_STEPS = 100_000
#: the most seconds of rendering one message (subject, HTML and text) may take
TIME_LIMIT_S = 2.0

#: filters the compiler adds around every loop and every `~` (a template may not name them)
LOOP_FILTER, CONCAT_FILTER = "_loop_step", "_bounded_concat"


@dataclass
class Budget:
    """What is left to one message's render: its time and its loop steps."""

    deadline: float
    timer: Callable[[], float]
    limit_s: float
    steps_left: int = MAX_LOOP_STEPS

    def tick(self) -> None:
        if self.timer() > self.deadline:
            raise RenderLimitError(f"time limit of {self.limit_s:g} s per message exceeded")

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise RenderLimitError(
                f"loop limit: a message may take at most {MAX_LOOP_STEPS:,} loop steps"
            )
        self.tick()


_current: ContextVar[Budget | None] = ContextVar("render_budget", default=None)


@contextmanager
def render_budget(timer: Callable[[], float], limit_s: float = TIME_LIMIT_S) -> Iterator[Budget]:
    """One message's budget, for the renders in the block (this thread or task only)."""
    budget = Budget(timer() + limit_s, timer, limit_s)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def tick() -> None:
    """Check the time of the render under way (none outside `render_budget`)."""
    budget = _current.get()
    if budget is not None:
        budget.tick()


def _materialized(value: Any) -> Any:
    """An iterator (`|map`, `|reverse`…) as a list, so its size can be checked first."""
    if isinstance(value, Iterator) and not isinstance(value, LoopContext | str):
        return list(value)
    return value


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with the time checked, its inputs and result within the size cap, and the
    filter's own size check (if it takes a size) before it runs."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    check = FILTER_CHECKS.get(name)

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        args = tuple(_materialized(arg) for arg in args)
        for value in (*args[skip:], *kwargs.values()):
            check_size(value, f"the input of |{name}")
        if check is not None:
            check(*args[skip:], **kwargs)
        result = func(*args, **kwargs)
        check_size(result, f"|{name}")
        return result

    return guarded


@pass_context
def loop_step(_context: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    """Wraps the iterable of every `{% for %}`: each step counts against the budget."""
    budget = _current.get()
    for item in iterable:
        if budget is not None:
            budget.step()
        yield item


@pass_eval_context
def bounded_concat(eval_ctx: Any, operands: tuple[Any, ...]) -> str:
    """`a ~ b ~ c`, refused before joining when the result would pass the size cap."""
    tick()
    refuse_past_cap("~", weight(operands) - len(operands))
    return markup_join(operands) if eval_ctx.autoescape else str_join(operands)


def bounded_range(*args: int) -> range:
    """`range()` refusing more numbers than the loop steps this message has left."""
    numbers = range(*args)
    budget = _current.get()
    left = budget.steps_left if budget is not None else MAX_LOOP_STEPS
    try:
        size = len(numbers)
    except OverflowError:
        size = left + 1
    if size > left:
        raise RenderLimitError(
            f"loop limit: range() of {size:,} numbers; a message may take at most "
            f"{MAX_LOOP_STEPS:,} loop steps ({left:,} left)"
        )
    return numbers


def bounded_join(pieces: Iterable[str]) -> str:
    """The environment's `concat`: the output of a part, a block or a macro, stopped at the
    size cap, with the time checked at each piece."""
    budget = _current.get()
    out, total = [], 0
    for piece in pieces:
        total += len(piece)
        if total > SIZE_CAP:
            raise RenderLimitError(
                f"template exceeds the {SIZE_CAP_LABEL} size cap "
                f"(a part may render to at most {SIZE_CAP:,} characters)"
            )
        if budget is not None:
            budget.tick()
        out.append(piece)
    return "".join(out)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the bounds of this module on operators, calls, filters,
    `range` and output."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = bounded_range
        self.filters = {name: guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[LOOP_FILTER] = loop_step
        self.filters[CONCAT_FILTER] = bounded_concat
        self.concat = bounded_join  # type: ignore[method-assign]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        check_size(result, f"the operator {operator}")
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        if isinstance(owner, str | bytes):
            args = tuple(_materialized(arg) for arg in args)
        if owner is not None:
            check_method(owner, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        check_size(result, f"{name or 'a call'}()")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None

        def refused(*_: Any, **__: Any) -> str:
            raise SecurityError(".format() is not allowed in a template; use the |format filter")

        return refused


class _Bounded(NodeTransformer):
    """Every `{% for %}` iterable through LOOP_FILTER, every `~` through CONCAT_FILTER."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        lineno = node.iter.lineno
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [], [], None, None, lineno=lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        operands = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return nodes.Filter(operands, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def bound_tree(tree: nodes.Template, env: BoundedSandbox) -> nodes.Template:
    """The parsed template with its loops counted and its `~` bounded (changed in place)."""
    bounded = _Bounded().visit(tree)
    bounded.set_environment(env)
    return bounded
