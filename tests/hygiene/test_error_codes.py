"""Error codes are one enum (``kernel.codes.ErrorCode``): production code names a code as
``ErrorCode.X``, never as a string literal, so a typo cannot invent a code and a reader
finds every code, and every use of one, from the enum.

The scan reads the AST of the production packages. It refuses an upper-case literal
where a code goes (``ApplicationError(..., type="X")``, ``code="X"``, a class's
``code = "X"``, ``MoneyError("X", ...)``, a comparison with ``.type``, ``.code`` or
``_error_type(...)``), and any string literal that spells an ``ErrorCode`` value.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from autobiz.errors import EXIT_CODES
from kernel.codes import ErrorCode

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("autobiz", "kernel", "workflows", "activities", "starters", "ingress", "workers")
CODES_MODULE = "kernel/codes.py"
# Files allowed a literal code (none: every raise and match names the enum).
ALLOWED: frozenset[str] = frozenset()
# A provider's own vocabulary that happens to spell one of our codes (Shopify's
# ``userErrors[].code``), compared or passed on as ``provider_code``, never raised as ours.
PROVIDER_WORDS = frozenset({("autobiz/providers/shopify_client.py", "NOT_FOUND")})

CODE_LIKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
CODE_VALUES = frozenset(c.value for c in ErrorCode)
# Keywords that take one of our codes (``provider_code`` & co. take the provider's).
CODE_KEYWORDS = frozenset({"type", "code", "closed_code"})
CODE_ATTRIBUTES = frozenset({"type", "code"})
# Constructors whose first argument is a code (``MoneyError("AMOUNT_INVALID", ...)``).
CODE_FIRST = re.compile(r".*(?:Error|Refusal|Refused)$")


def _code_literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if CODE_LIKE.fullmatch(node.value):
            return node.value
    return None


def _code_literals(node: ast.expr) -> list[str]:
    """The code-like literals of ``"X"`` or of a tuple, list or set of them."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [c for e in node.elts if (c := _code_literal(e)) is not None]
    code = _code_literal(node)
    return [] if code is None else [code]


def _names_a_code(node: ast.expr) -> bool:
    """``x.type``, ``x.code`` or ``_error_type(...)``: an expression holding a code."""
    if isinstance(node, ast.Attribute):
        return node.attr in CODE_ATTRIBUTES
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "_error_type"
    return False


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _shaped(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Literals where a code goes, whether or not the enum has them."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in CODE_KEYWORDS and (code := _code_literal(kw.value)):
                    yield node.lineno, f'{kw.arg}="{code}"'
            if CODE_FIRST.fullmatch(_callee(node)) and node.args:
                if code := _code_literal(node.args[0]):
                    yield node.lineno, f'{_callee(node)}("{code}", ...)'
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                targets = (
                    stmt.targets
                    if isinstance(stmt, ast.Assign)
                    else [stmt.target]
                    if isinstance(stmt, ast.AnnAssign)
                    else []
                )
                value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
                for target in targets:
                    if isinstance(target, ast.Name) and target.id == "code":
                        if code := _code_literal(value):
                            yield stmt.lineno, f'class {node.name}: code = "{code}"'
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_names_a_code(side) for side in sides):
                for side in sides:
                    for code in _code_literals(side):
                        yield node.lineno, f'comparison with "{code}"'


def _spelled(tree: ast.AST, path: str) -> Iterator[tuple[int, str]]:
    """Any string literal that is exactly one of the enum's values."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in CODE_VALUES and (path, node.value) not in PROVIDER_WORDS:
                yield node.lineno, f'"{node.value}" (use ErrorCode.{node.value})'


def violations(source: str, path: str) -> list[str]:
    """``path:line: what`` for each literal that should be an ``ErrorCode`` member."""
    tree = ast.parse(source, filename=path)
    found = {*_shaped(tree), *_spelled(tree, path)}
    return [f"{path}:{line}: {what}" for line, what in sorted(found)]


def production_files() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            rel = file.relative_to(ROOT).as_posix()
            if rel != CODES_MODULE and rel not in ALLOWED:
                yield rel, file


def test_production_code_names_codes_by_the_enum() -> None:
    found = [v for rel, file in production_files() for v in violations(file.read_text(), rel)]
    assert not found, "spell these as kernel.codes.ErrorCode members:\n" + "\n".join(found)


def test_the_scan_catches_planted_codes() -> None:
    planted = """
class Refused(AutobizError):
    code = "NEW_CODE"

def f(exc):
    raise ApplicationError("m", type="NO_SHIPPING_ADDRESS", non_retryable=True)
    raise AutobizError("m", code="ANOTHER_CODE")
    raise MoneyError("AMOUNT_INVALID", "m")
    if _error_type(exc) == "PROVIDER_STATE_CONFLICT":
        pass
    if exc.cause.type in ("SOME_TYPE", "OTHER_TYPE"):
        pass
    KIND = "ORDER_STATE_CONFLICT"
    return {"code": "TOOL_UNKNOWN"}
"""
    found = violations(planted, "planted.py")
    for expected in (
        'planted.py:3: class Refused: code = "NEW_CODE"',
        'planted.py:6: type="NO_SHIPPING_ADDRESS"',
        'planted.py:7: code="ANOTHER_CODE"',
        'planted.py:8: MoneyError("AMOUNT_INVALID", ...)',
        'planted.py:9: comparison with "PROVIDER_STATE_CONFLICT"',
        'planted.py:11: comparison with "SOME_TYPE"',
        'planted.py:11: comparison with "OTHER_TYPE"',
        'planted.py:13: "ORDER_STATE_CONFLICT" (use ErrorCode.ORDER_STATE_CONFLICT)',
        'planted.py:14: "TOOL_UNKNOWN" (use ErrorCode.TOOL_UNKNOWN)',
    ):
        assert expected in found, (expected, found)
    clean = """
def g(exc):
    raise ApplicationError("m", type=ErrorCode.NO_SHIPPING_ADDRESS)
    if exc.status == "OPEN" or code == "THROTTLED":
        raise InvalidRequest("m", provider="shopify", provider_code="NOT_FULFILLABLE_X")
"""
    assert violations(clean, "clean.py") == []


def test_members_are_their_names() -> None:
    assert all(member.value == name for name, member in ErrorCode.__members__.items())
    assert all(CODE_LIKE.fullmatch(member.value) for member in ErrorCode)


def test_exit_codes_are_keyed_by_the_enum() -> None:
    assert EXIT_CODES
    assert all(type(code) is ErrorCode for code in EXIT_CODES)


# Documentation tables of error codes: (file, a header cell naming the column, the
# codes that column must at least show, so an unread table fails loudly).
DOC_TABLES = (
    ("docs/kernel.md", "Refusal", {"RUN_TERMINATED", "TOOL_UNKNOWN", "APPROVAL_INVALID"}),
    ("docs/operations.md", "code", {"TEMPORAL_UNREACHABLE", "APPROVER_KEY_NOT_FOUND"}),
    ("docs/operations.md", "examples", {"FLOW_FAILED", "USAGE", "SERVICE_START_FAILED"}),
)
BACKTICKED = re.compile(r"`([^`]+)`")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_codes(text: str, header: str) -> set[str]:
    """The backticked upper-case codes in the column whose header cell starts with
    ``header``, over every table of ``text`` that has that column."""
    codes: set[str] = set()
    column: int | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            column = None
            continue
        cells = _cells(line)
        if column is None:
            starts = [i for i, cell in enumerate(cells) if cell.startswith(header)]
            column = starts[0] if starts else -1
            continue
        if column < 0 or column >= len(cells) or set(cells[column]) <= {"-", ":"}:
            continue
        codes.update(c for c in BACKTICKED.findall(cells[column]) if CODE_LIKE.fullmatch(c))
    return codes


@pytest.mark.parametrize(("doc", "header", "sample"), DOC_TABLES)
def test_documented_codes_are_in_the_enum(doc: str, header: str, sample: set[str]) -> None:
    codes = table_codes((ROOT / doc).read_text(), header)
    assert sample <= codes, f"{doc}: the {header!r} column was not read ({sorted(codes)})"
    unknown = sorted(codes - CODE_VALUES)
    assert not unknown, f"{doc} documents codes that are not ErrorCode members: {unknown}"
