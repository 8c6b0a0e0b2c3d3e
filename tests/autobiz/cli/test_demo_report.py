"""The demo's report at 80 columns (and in a pipe): one block per case, every Web UI link
and order id whole on one line, so `grep` finds them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from autobiz.cli import demo_cmd
from autobiz.demo.business_day import Case
from autobiz.settings import Settings

pytestmark = pytest.mark.unit

LINK = (
    "http://127.0.0.1:8233/namespaces/default/workflows/exception%3Ademo-shop%3A5096182047032"
    "%3Aorder_put_hold%3A2026-12-02T03%3A27%3A38.788145%2B00%3A00%3Ab88efbd02ef9fc9442ada05dc8"
)


def test_a_narrow_pipe_keeps_links_and_ids_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(demo_cmd, "console", Console(file=out, width=80, no_color=True))
    good = Case(
        "order #7: the hold escalated; ops choose to cancel it, from the CLI",
        "FulfillmentException",
        "cancelling",
        actual="cancelling",
        receipts=2,
        facts={"order_id": "5096182047032"},
    )
    bad = Case("refund 55.00 on order #3", "Refund", "failed:APPROVAL_EXPIRED", actual="denied")
    long = Case(
        "order #8: customer wants the money back; the reply reviewed, edited from the CLI",
        "WISMO",
        "answered",
        actual="answered",
    )
    demo_cmd._report([good, bad, long], {good.name: LINK})
    lines = out.getvalue().splitlines()
    assert lines[0] == "AutoBiz demo: a business day for demo-shop (2/3 as expected)"
    assert f"    {LINK}" in lines  # whole, on a line of its own
    assert any("order 5096182047032" in line for line in lines)
    assert "✗ refund 55.00 on order #3" in lines
    assert any("denied, expected failed:APPROVAL_EXPIRED" in line for line in lines)
    assert f"✓ {long.name}" in lines  # a title past 80 columns is not split either


def test_progress_lines_stay_whole_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new user sees first: each step one line, an order id never split."""
    out = io.StringIO()
    monkeypatch.setattr(demo_cmd, "console", Console(file=out, width=80, no_color=True))
    step = "order #1: paid, printed, shipped: Shopify order 5096185510004 created, authorised 80.00"
    demo_cmd._say(step)
    assert out.getvalue().splitlines() == [f"✓ {step}"]


def test_the_last_line_says_where_dev_down_finds_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's state is under a home relative to the directory the demo ran in:
    `dev down` elsewhere would find nothing, so the hint names the directory."""
    monkeypatch.chdir(tmp_path)
    relative = Settings(home=Path(".autobiz"))
    assert demo_cmd._afterwards(relative, down=False) == (
        f"is still up (`autobiz dev down`, run in {Path.cwd()}, stops it)."
    )
    absolute = Settings(home=tmp_path / "home")
    assert demo_cmd._afterwards(absolute, down=False) == (
        "is still up (`autobiz dev down` stops it)."
    )
    assert demo_cmd._afterwards(relative, down=True) == "is stopped."


def test_the_closing_lines_stay_whole_in_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deep working directory makes the last lines longer than 80 columns: each must
    stay one line, so the path in it can be pasted back into a shell."""
    deep = tmp_path / ("very-long-directory-name-" * 4) / "checkout"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    out = io.StringIO()
    monkeypatch.setattr(demo_cmd, "console", Console(file=out, width=80, no_color=True))
    demo_cmd._closing_lines(Settings(home=Path(".autobiz")), 41.2, down=False)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert (
        lines[2]
        == f"the day took 41s; the stack is still up (`autobiz dev down`, run in {deep}, stops it)."
    )
    assert len(lines[2]) > 80
    assert lines[1].endswith(str(deep / ".autobiz" / "logs"))
