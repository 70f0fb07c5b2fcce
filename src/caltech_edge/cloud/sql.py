"""A small, safe subset of AWS IoT SQL: parsed by hand into closures, never ``eval``-ed.

Grammar (keywords case-insensitive)::

    query   := SELECT items FROM 'topic/filter' [WHERE expr]
    items   := '*' | item (',' item)*          item := '*' | expr [AS name]
    expr    := or;  or := and (OR and)*;  and := not (AND not)*;  not := NOT not | cmp
    cmp     := sum [(= | <> | != | < | <= | > | >=) sum]
    sum     := prod ((+ | -) prod)*;  prod := unary ((* | / | %) unary)*
    unary   := - unary | atom
    atom    := number | 'string' | TRUE | FALSE | NULL | ( expr ) | name(args) | path
    path    := name ('.' name | '[' integer ']')*

A missing field is *undefined* (``None``): comparisons with it are false, arithmetic
gives undefined, as in AWS IoT. Functions come from :data:`FUNCTIONS` (``topic()``,
``topic(n)``, ``timestamp()``, ``abs``, ``lower``, ``upper``, ``round``).
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

Env = dict[str, Any]  # {"doc": payload dict, "topic": str}
Expr = Callable[[Env], Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<str>'(?:[^']|'')*')"
    r"|(?P<op><>|!=|<=|>=|[=<>+\-*/%(),.\[\]])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = {"select", "from", "where", "as", "and", "or", "not", "true", "false", "null"}
MAX_QUERY_CHARS = 4096


class QueryError(ConfigError):
    """A rule's SQL does not parse; the message points at the offending position."""


def _topic(env: Env, level: Any = None) -> Any:
    topic = env.get("topic", "")
    if level is None:
        return topic
    parts = topic.split("/")
    return parts[int(level) - 1] if 1 <= int(level) <= len(parts) else None


def _null_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda env, *a: None if any(x is None for x in a) else fn(*a)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "topic": _topic,
    "timestamp": lambda env: int(time.time() * 1000),
    "abs": _null_safe(abs),
    "lower": _null_safe(lambda s: str(s).lower()),
    "upper": _null_safe(lambda s: str(s).upper()),
    "round": _null_safe(lambda x, n=0: round(float(x), int(n))),
}


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def cmp(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        try:
            return bool(op(a, b))
        except TypeError:  # 'a' < 3: undefined, hence false
            return False

    return cmp


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def calc(a: Any, b: Any) -> Any:
        numeric = (int, float)
        if (
            not isinstance(a, numeric)
            or not isinstance(b, numeric)
            or isinstance(a, bool)
            or isinstance(b, bool)
        ):
            return None
        try:
            return op(a, b)
        except ZeroDivisionError:
            return None

    return calc


_BINARY = {
    "=": _compare(operator.eq),
    "<>": _compare(operator.ne),
    "!=": _compare(operator.ne),
    "<": _compare(operator.lt),
    "<=": _compare(operator.le),
    ">": _compare(operator.gt),
    ">=": _compare(operator.ge),
    "+": _arith(operator.add),
    "-": _arith(operator.sub),
    "*": _arith(operator.mul),
    "/": _arith(operator.truediv),
    "%": _arith(operator.mod),
}


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"SQL: unexpected character {text[pos:].strip()[:1]!r} at {pos}")
        kind = m.lastgroup or ""
        value, start = m.group(kind), m.start(kind)
        if kind == "name" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append((kind, value, start))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


def _get(doc: Any, steps: tuple[Any, ...]) -> Any:
    for step in steps:
        if isinstance(step, int):
            doc = doc[step] if isinstance(doc, list) and -len(doc) <= step < len(doc) else None
        else:
            doc = doc.get(step) if isinstance(doc, dict) else None
        if doc is None:
            return None
    return doc


@dataclass(frozen=True)
class Query:
    """A parsed query: ``topic_filter``, ``select(doc, topic)`` and ``where(doc, topic)``."""

    text: str
    topic_filter: str
    items: tuple[tuple[str | None, Expr | None], ...]  # (name, expr); (None, None) = *
    condition: Expr | None

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def where(self, doc: Any, topic: str) -> bool:
        return self.condition is None or self.condition({"doc": doc, "topic": topic}) is True

    def select(self, doc: Any, topic: str) -> dict[str, Any]:
        env = {"doc": doc, "topic": topic}
        out: dict[str, Any] = {}
        for name, expr in self.items:
            if expr is None:
                out.update(doc if isinstance(doc, dict) else {"value": doc})
            else:
                value = expr(env)
                if value is not None:  # undefined fields are left out, as in AWS IoT
                    out[str(name)] = value
        return out

    def apply(self, doc: Any, topic: str) -> dict[str, Any] | None:
        """The selected event if ``topic`` matches and WHERE holds, else None."""
        if not self.matches(topic) or not self.where(doc, topic):
            return None
        return self.select(doc, topic)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest)."""
    pp, tt = pattern.split("/"), topic.split("/")
    for i, p in enumerate(pp):
        if p == "#":
            return True
        if i >= len(tt) or (p != "+" and p != tt[i]):
            return False
    return len(pp) == len(tt)


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(f"SQL longer than {MAX_QUERY_CHARS} characters")
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.anon = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self, kind: str, value: str | None = None) -> str:
        k, v, pos = self.peek()
        if k != kind or (value is not None and v != value):
            want = value or {"str": "a quoted 'topic/filter'", "name": "a name"}.get(kind, kind)
            raise QueryError(
                "SQL: expected {} at position {}, found {!r} in {!r}".format(
                    want, pos, v or "end", self.text
                )
            )
        self.i += 1
        return v

    def accept(self, kind: str, value: str | None = None) -> bool:
        k, v, _ = self.peek()
        if k == kind and (value is None or v == value):
            self.i += 1
            return True
        return False

    def query(self) -> Query:
        self.take("kw", "select")
        items = [self.item()]
        while self.accept("op", ","):
            items.append(self.item())
        self.take("kw", "from")
        raw = self.take("str")
        condition = self.expr() if self.accept("kw", "where") else None
        self.take("end")
        return Query(self.text, raw[1:-1].replace("''", "'"), tuple(items), condition)

    def item(self) -> tuple[str | None, Expr | None]:
        if self.accept("op", "*"):
            return None, None
        start = self.i
        expr = self.expr()
        if self.accept("kw", "as"):
            return self.take("name"), expr
        kind, value, _ = self.tokens[self.i - 1]
        if kind == "name" or (kind == "op" and value == ")" and self.tokens[start][0] == "name"):
            # a path is named after its last key, a call after its function (AWS IoT does so)
            return (value if kind == "name" else self.tokens[start][1]), expr
        self.anon += 1
        return f"_{self.anon}", expr

    def expr(self) -> Expr:
        return self.binary_chain(self.conj, ("or",), "kw", lambda a, b: a is True or b is True)

    def conj(self) -> Expr:
        return self.binary_chain(self.neg, ("and",), "kw", lambda a, b: a is True and b is True)

    def binary_chain(
        self, sub: Callable[[], Expr], ops: tuple[str, ...], kind: str, fn: Any
    ) -> Expr:
        left = sub()
        while self.peek()[0] == kind and self.peek()[1] in ops:
            op = self.take(kind)
            right = sub()
            f = fn if fn is not None else _BINARY[op]
            left = (lambda lf, rf, g: lambda env: g(lf(env), rf(env)))(left, right, f)
        return left

    def neg(self) -> Expr:
        if self.accept("kw", "not"):
            inner = self.neg()
            return lambda env: inner(env) is not True
        left = self.sum()
        k, v, _ = self.peek()
        if k == "op" and v in ("=", "<>", "!=", "<", "<=", ">", ">="):
            self.i += 1
            right, f = self.sum(), _BINARY[v]
            return lambda env: f(left(env), right(env))
        return left

    def sum(self) -> Expr:
        return self.binary_chain(self.prod, ("+", "-"), "op", None)

    def prod(self) -> Expr:
        return self.binary_chain(self.unary, ("*", "/", "%"), "op", None)

    def unary(self) -> Expr:
        if self.accept("op", "-"):
            inner, neg = self.unary(), _BINARY["-"]
            return lambda env: neg(0, inner(env))
        return self.atom()

    def atom(self) -> Expr:
        kind, value, pos = self.peek()
        self.i += 1
        if kind == "num":
            number = float(value) if any(c in value for c in ".eE") else int(value)
            return lambda env: number
        if kind == "str":
            text = value[1:-1].replace("''", "'")
            return lambda env: text
        if kind == "kw" and value in ("true", "false", "null"):
            const = {"true": True, "false": False, "null": None}[value]
            return lambda env: const
        if kind == "op" and value == "(":
            inner = self.expr()
            self.take("op", ")")
            return inner
        if kind == "name" and self.accept("op", "("):
            return self.call(value, pos)
        if kind == "name":
            return self.path(value)
        raise QueryError(
            "SQL: unexpected {!r} at position {} in {!r}".format(value or "end", pos, self.text)
        )

    def call(self, name: str, pos: int) -> Expr:
        fn = FUNCTIONS.get(name.lower())
        if fn is None:
            raise QueryError(
                "SQL: unknown function {}() at {}; known: {}".format(
                    name, pos, ", ".join(sorted(FUNCTIONS))
                )
            )
        args: list[Expr] = []
        if not self.accept("op", ")"):
            args.append(self.expr())
            while self.accept("op", ","):
                args.append(self.expr())
            self.take("op", ")")
        return lambda env: fn(env, *[a(env) for a in args])

    def path(self, first: str) -> Expr:
        steps: list[Any] = [first]
        while True:
            if self.accept("op", "."):
                steps.append(self.take("name"))
            elif self.accept("op", "["):
                steps.append(int(self.take("num")))
                self.take("op", "]")
            else:
                break
        frozen = tuple(steps)
        return lambda env: _get(env["doc"], frozen)


def parse_expr(text: str) -> Expr:
    """One expression (``predictions[0].label``), as used in ``${...}`` templates."""
    parser = _Parser(str(text))
    expr = parser.expr()
    parser.take("end")
    return expr


def parse_query(text: str) -> Query:
    """Parse ``SELECT ... FROM 'filter' [WHERE ...]``; :class:`QueryError` names the problem."""
    return _Parser(str(text)).query()
