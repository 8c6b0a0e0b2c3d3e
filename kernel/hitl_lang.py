"""A small, safe condition language for HITL rules (never ``eval``).

Grammar::

    expr    := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | compare
    compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand := NUMBER | STRING | "true" | "false" | "null" | PATH | "(" expr ")"
    PATH    := NAME ("." NAME)*

Example: ``input.amount_minor >= 5000 and not (input.currency == "JPY")``.
Parse errors carry the 1-based column of the offending token. Evaluation is strict:
``and``/``or``/``not`` need booleans and ordering needs two numbers or two strings, else
``ConditionEvalError`` (the gate then asks for approval: fail safe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

KEYWORDS = {"and", "or", "not", "true", "false", "null"}
COMPARATORS = {"==", "!=", "<", "<=", ">", ">="}
MAX_LENGTH = 2000
MAX_DEPTH = 50


class ConditionSyntaxError(ValueError):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.reason = message
        self.column = column


class ConditionEvalError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    kind: str  # NUMBER STRING NAME OP LPAREN RPAREN KEYWORD END
    text: str
    value: Any
    column: int


def tokenize(source: str) -> list[Token]:
    return list(iter_tokens(source))


def iter_tokens(source: str) -> Iterator[Token]:
    """Tokens one at a time, so the first error in reading order is the one reported."""
    if len(source) > MAX_LENGTH:
        raise ConditionSyntaxError(f"condition longer than {MAX_LENGTH} characters", 1)
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        col = i + 1
        if ch in " \t\r\n":
            i += 1
            continue
        if ch == "(":
            i, token = i + 1, Token("LPAREN", ch, None, col)
        elif ch == ")":
            i, token = i + 1, Token("RPAREN", ch, None, col)
        elif ch in "=!<>":
            i, token = _read_operator(source, i)
        elif ch in "'\"":
            i, text = _read_string(source, i)
            token = Token("STRING", source[col - 1 : i], text, col)
        elif ch.isdigit() or (ch == "-" and i + 1 < n and source[i + 1].isdigit()):
            i, token = _read_number(source, i)
        elif ch.isalpha() or ch == "_":
            i, token = _read_word(source, i)
        else:
            raise ConditionSyntaxError(f"unexpected character {ch!r}", col)
        yield token
    yield Token("END", "", None, n + 1)


def _read_operator(source: str, start: int) -> tuple[int, Token]:
    col = start + 1
    two = source[start : start + 2]
    if two in COMPARATORS:
        return start + 2, Token("OP", two, None, col)
    ch = source[start]
    if ch in "<>":
        return start + 1, Token("OP", ch, None, col)
    raise ConditionSyntaxError(f"unexpected character {ch!r} (did you mean '=='?)", col)


def _read_number(source: str, start: int) -> tuple[int, Token]:
    """An integer or a decimal (``_`` separators allowed, as Python reads them)."""
    j = start + 1
    while j < len(source) and (source[j].isdigit() or source[j] in "._"):
        j += 1
    text = source[start:j]
    try:
        value: int | Decimal = int(text) if "." not in text else Decimal(text)
    except (ValueError, InvalidOperation):
        raise ConditionSyntaxError(f"bad number {text!r}", start + 1) from None
    return j, Token("NUMBER", text, value, start + 1)


def _read_word(source: str, start: int) -> tuple[int, Token]:
    """A keyword, or a dotted field path such as ``input.amount_minor``."""
    j = start
    while j < len(source) and (source[j].isalnum() or source[j] in "_."):
        j += 1
    text = source[start:j]
    if text in KEYWORDS:
        return j, Token("KEYWORD", text, None, start + 1)
    parts = text.split(".")
    if any(not p or not (p[0].isalpha() or p[0] == "_") for p in parts):
        raise ConditionSyntaxError(f"bad field path {text!r}", start + 1)
    return j, Token("NAME", text, tuple(parts), start + 1)


def _read_string(source: str, start: int) -> tuple[int, str]:
    quote = source[start]
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            if i + 1 >= len(source) or source[i + 1] not in (quote, "\\"):
                raise ConditionSyntaxError("bad escape in string", i + 1)
            out.append(source[i + 1])
            i += 2
        elif ch == quote:
            return i + 1, "".join(out)
        else:
            out.append(ch)
            i += 1
    raise ConditionSyntaxError("unterminated string", start + 1)


# --- AST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Literal | Path | Not | BoolOp | Compare


class _Parser:
    def __init__(self, tokens: Iterator[Token]) -> None:
        self.tokens = tokens
        self.tok = next(tokens)
        self.depth = 0

    def advance(self) -> Token:
        tok = self.tok
        if tok.kind != "END":
            self.tok = next(self.tokens)
        return tok

    def at_keyword(self, word: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.text == word

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise ConditionSyntaxError("empty condition", self.tok.column)
        node = self.parse_or()
        if self.tok.kind != "END":
            raise ConditionSyntaxError(f"unexpected {self.tok.text!r}", self.tok.column)
        return node

    def parse_or(self) -> Node:
        return self.parse_chain("or", self.parse_and)

    def parse_and(self) -> Node:
        return self.parse_chain("and", self.parse_unary)

    def parse_chain(self, word: str, operand: Callable[[], Node]) -> Node:
        """``operand (word operand)*``, grouped to the left."""
        node = operand()
        while self.at_keyword(word):
            self.advance()
            node = BoolOp(word, node, operand())
        return node

    def parse_unary(self) -> Node:
        if self.at_keyword("not"):
            self.advance()
            return Not(self.parse_unary())
        return self.parse_compare()

    def parse_compare(self) -> Node:
        left = self.parse_operand()
        if self.tok.kind == "OP":
            op = self.advance().text
            right = self.parse_operand()
            if self.tok.kind == "OP":
                raise ConditionSyntaxError("chained comparison; use 'and'", self.tok.column)
            return Compare(op, left, right)
        return left

    def parse_operand(self) -> Node:
        tok = self.tok
        if tok.kind in ("NUMBER", "STRING"):
            self.advance()
            return Literal(tok.value)
        if tok.kind == "NAME":
            self.advance()
            return Path(tok.value)
        if tok.kind == "KEYWORD" and tok.text in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[tok.text])
        if tok.kind == "LPAREN":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ConditionSyntaxError("too deeply nested", tok.column)
            self.advance()
            node = self.parse_or()
            if self.tok.kind != "RPAREN":
                raise ConditionSyntaxError("expected ')'", self.tok.column)
            self.advance()
            self.depth -= 1
            return node
        if tok.kind == "END":
            raise ConditionSyntaxError("unexpected end of condition", tok.column)
        raise ConditionSyntaxError(f"unexpected {tok.text!r}", tok.column)


def parse(source: str) -> Node:
    """Parse a condition; raise ``ConditionSyntaxError`` with the offending column."""
    return _Parser(iter_tokens(source)).parse()


def _resolve(parts: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    current: Any = context
    for part in parts:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return None
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        same_kind = (_is_number(left) and _is_number(right)) or type(left) is type(right)
        equal = same_kind and left == right
        return equal if op == "==" else not equal
    if not (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
    ):
        raise ConditionEvalError(f"cannot order {type(left).__name__} and {type(right).__name__}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConditionEvalError(f"expected a boolean, got {type(value).__name__}")
    return value


def evaluate(node: Node, context: Mapping[str, Any]) -> Any:
    match node:
        case Literal(value):
            return value
        case Path(parts):
            return _resolve(parts, context)
        case Not(operand):
            return not _bool(evaluate(operand, context))
        case BoolOp("and", left, right):
            return _bool(evaluate(left, context)) and _bool(evaluate(right, context))
        case BoolOp(_, left, right):
            return _bool(evaluate(left, context)) or _bool(evaluate(right, context))
        case Compare(op, left, right):
            return _compare(op, evaluate(left, context), evaluate(right, context))
    raise ConditionEvalError(f"unknown node {node!r}")  # pragma: no cover


def holds(source: str, context: Mapping[str, Any]) -> bool:
    """Parse and evaluate; the result must be a boolean."""
    return _bool(evaluate(parse(source), context))


def paths(node: Node) -> set[tuple[str, ...]]:
    """The field paths a condition reads (the compiler checks their roots)."""
    match node:
        case Path(parts):
            return {parts}
        case Not(operand):
            return paths(operand)
        case BoolOp(_, left, right) | Compare(_, left, right):
            return paths(left) | paths(right)
    return set()
