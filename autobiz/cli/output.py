"""How the CLI talks to people (rich) and to scripts (--json, --output plain|json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


_emitted: list[bool] = []


def json_emitted() -> bool:
    """Whether this process already wrote a JSON document to stdout (an error then does
    not add a second one: ``--json`` output stays one document)."""
    return bool(_emitted)


def emit_json(data: Any) -> None:
    _emitted.append(True)

    def default(obj: Any) -> Any:
        if is_dataclass(obj) and not isinstance(obj, type):
            return asdict(obj)
        return str(obj)

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")


class OutputFormat(StrEnum):
    """How a list command prints its rows (``--output``)."""

    table = "table"  # a box for people; ids never folded
    plain = "plain"  # a header line, then one tab-separated line per row
    json = "json"  # the same document as ``--json``


OUTPUT_OPT: Any = typer.Option(
    None,
    "--output",
    case_sensitive=False,
    help="table (default on a terminal), plain (tab-separated lines: the default in a pipe) "
    "or json (same as --json).",
)


def wants_json(args: Sequence[str]) -> bool:
    """Whether a command line asks for JSON (``--json``, ``--output json``): an error then
    is a JSON document too, even one the parser raises before the command runs."""
    for i, arg in enumerate(args):
        if arg == "--json" or arg.lower() == "--output=json":
            return True
        if arg == "--output" and i + 1 < len(args) and args[i + 1].lower() == "json":
            return True
    return False


def output_format(output: OutputFormat | None, json_out: bool) -> OutputFormat:
    """The format asked for: ``--json`` or ``--output``, else ``table`` on a terminal and
    ``plain`` when stdout is a pipe or a file (so ``grep`` sees whole ids on one line)."""
    if json_out:
        return OutputFormat.json
    if output is not None:
        return output
    return OutputFormat.table if console.is_terminal else OutputFormat.plain


Cell = str | Text


@dataclass(frozen=True)
class Rows:
    """A list command's rows: ``columns`` headers, ``ids`` the columns that must stay whole
    (never folded, cropped or wrapped), each row one cell per column."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    ids: Collection[str] = field(default_factory=frozenset)
    empty: str = ""  # the table-mode line when there are no rows


def show_rows(fmt: OutputFormat, rows: Rows, data: Any) -> None:
    """Print a list command's result: ``data`` as the JSON document, or ``rows`` as a
    table or as plain tab-separated lines. The one way every list command prints."""
    if fmt is OutputFormat.json:
        emit_json(data)
    elif fmt is OutputFormat.plain:
        _plain(rows)
    elif not rows.rows:
        if rows.empty:
            console.print(rows.empty, highlight=False, markup=False, emoji=False)
    else:
        _table(rows)


def _plain_cell(cell: Cell) -> str:
    text = cell.plain if isinstance(cell, Text) else cell
    text = " ".join(text.replace("\t", " ").splitlines())
    return text if text else "-"


def _plain(rows: Rows) -> None:
    lines = ["\t".join(rows.columns)]
    lines += ["\t".join(_plain_cell(c) for c in row) for row in rows.rows]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _as_text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)  # an id is no markup or emoji


def _table(rows: Rows) -> None:
    """A box when every id fits whole at the console's width; else one block per row with
    each id on its own unwrapped line (a long id must stay copyable at 80 columns)."""
    table = Table(title=rows.title, title_justify="left")
    id_columns = [i for i, name in enumerate(rows.columns) if name in rows.ids]
    for i, name in enumerate(rows.columns):
        if i in id_columns:
            width = max(len(_as_text(r[i]).plain) for r in rows.rows)
            table.add_column(name, no_wrap=True, overflow="ignore", min_width=max(width, 1))
        else:
            table.add_column(name, overflow="fold")
    for row in rows.rows:
        table.add_row(*(_as_text(c) for c in row))
    with console.capture() as capture:
        console.print(table)
    rendered = capture.get()
    if all(_as_text(r[i]).plain in rendered for r in rows.rows for i in id_columns):
        console.print(table)
        return
    console.print(rows.title, highlight=False, markup=False, emoji=False)
    for row in rows.rows:
        for n, i in enumerate(id_columns):
            label = "" if n == 0 else f"  {rows.columns[i]}: "
            console.print(Text(label) + _as_text(row[i]), soft_wrap=True)
        rest = [
            Text(f"{rows.columns[i]}: ") + _as_text(c)
            for i, c in enumerate(row)
            if i not in id_columns
        ]
        if rest:
            console.print(Text("  ") + Text("; ").join(rest))
