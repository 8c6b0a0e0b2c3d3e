"""The seed's test ids and the tests that cover them (``docs/traceability.md``).

The table is written by hand; this module reads it back so that a hygiene test and the
exit report can check it: every seed id listed exactly once, every covered id naming at
least one test, every test a pytest node id that exists (its file, its class, its
function), every id not covered saying why.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "traceability.md"

# Letters the seed's task table gives the risk tests (P1-T-RK06a/b/c, ...); RK03..RK05
# are only named by the range P1-T-RK01..RK08.
_RISK = {1: "abc", 2: "abcd", 3: "", 4: "", 5: "", 6: "abc", 7: "ab", 8: "ab"}
SEED_IDS: tuple[str, ...] = (
    *(f"P1-T{n:02d}" for n in range(1, 42)),
    *(f"P1-H{n:02d}" for n in range(1, 11)),
    *(f"P1-T-RK{n:02d}{letter}" for n, letters in _RISK.items() for letter in letters or [""]),
    *(f"P1-T-CC{n:02d}" for n in range(1, 5)),
    # The negative families the seed names (P1-T01-NEG-*, ... under P1-T-NEG-*).
    *(f"P1-T{n:02d}-NEG-*" for n in (1, 2, 5, 7)),
    "P1-T-EXIT-05",
    *(f"INV-{n:02d}" for n in range(1, 9)),
)
COVERED, NOT_COVERED = "covered", "not covered"
_NODE = re.compile(r"`(tests/[^`\s]+\.py::[^`\s]+)`")


@dataclass(frozen=True)
class Row:
    id: str
    what: str
    status: str
    tests: tuple[str, ...]
    why: str


def parse(text: str) -> list[Row]:
    """The rows of the table: ``| id | what | status | tests or why |``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not re.fullmatch(r"(P1-|INV-)[\w*-]+", cells[0]):
            continue
        ident, what, status, evidence = cells
        tests = tuple(_NODE.findall(evidence))
        why = "" if tests else evidence
        rows.append(Row(ident, what, status, tests, why))
    return rows


def resolves(node_id: str, root: Path = ROOT) -> bool:
    """Whether ``path::[Class::]test`` names a test function defined in that file
    (a parametrised id's ``[...]`` is ignored)."""
    path, _, rest = node_id.partition("::")
    parts = re.sub(r"\[.*\]$", "", rest).split("::")
    file = root / path
    if not file.is_file() or not parts or not all(parts):
        return False
    scope = _body(file, file.stat().st_mtime_ns)
    for name in parts[:-1]:
        classes = [n for n in scope if isinstance(n, ast.ClassDef) and n.name == name]
        if not classes:
            return False
        scope = classes[0].body
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == parts[-1] for n in scope
    )


@functools.lru_cache(maxsize=512)
def _body(file: Path, _mtime: int) -> list[ast.stmt]:
    """A test file's top-level statements, parsed once per version of the file."""
    return ast.parse(file.read_text(), str(file)).body


def problems(rows: list[Row], root: Path = ROOT) -> list[str]:
    """Everything wrong with the table (empty when it is sound)."""
    found = []
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.id] = seen.get(row.id, 0) + 1
        if row.id not in SEED_IDS:
            found.append(f"{row.id}: not a seed id")
        if row.status == COVERED and not row.tests:
            found.append(f"{row.id}: covered, but names no test")
        elif row.status == NOT_COVERED and (row.tests or len(row.why) < 20):
            found.append(f"{row.id}: not covered needs a reason (and no tests)")
        elif row.status not in (COVERED, NOT_COVERED):
            found.append(
                f"{row.id}: status {row.status!r} is neither {COVERED!r} nor {NOT_COVERED!r}"
            )
        found += [f"{row.id}: {t} does not exist" for t in row.tests if not resolves(t, root)]
    found += [f"{i}: listed {n} times" for i, n in seen.items() if n > 1]
    found += [f"{i}: missing" for i in SEED_IDS if i not in seen]
    return found


def load(path: Path = TABLE) -> list[Row]:
    return parse(path.read_text())
