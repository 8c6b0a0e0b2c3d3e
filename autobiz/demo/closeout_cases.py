"""The demo day's closeout (WF07), run as an operator runs it and judged by the providers.

After the day's cases: ``autobiz closeout run --date <today> --wait --json`` in a
subprocess (the tenant's local day, so every order of the demo is in it). The run is
judged by what it wrote against the sandbox's own answers: each ``daily_metrics`` row
(captured, refunded, Stripe fees, net) equals the sum of Stripe's balance transactions of
the day as ``GET /v1/balance_transactions`` lists them; the CSV fetched through the signed
link (from the ingress, as the email's reader would) has the sha256 the run reported and
the same figures; no drift between receipts and provider truth. The CSV is saved under
``$AUTOBIZ_HOME/reports/`` and its path printed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx

from activities.closeout_activities import fetch_metrics
from workflows.closeout.models import day_window

if TYPE_CHECKING:
    from autobiz.demo.business_day import BusinessDay, Case


async def closeout_case(day: BusinessDay) -> None:
    """One case: today's closeout from the CLI, judged (one line after the day's gather)."""
    from autobiz.demo.business_day import _CaseFailed

    case = day._case(
        "the day's closeout: metrics from provider truth, CSV report", "DailyCloseout", "completed"
    )
    tz = day.config.closeout.timezone
    today = datetime.now(ZoneInfo(tz)).date()
    day.say(f"{case.name}: `autobiz closeout run --date {today} --wait`")
    try:
        ok, out, err = await day._autobiz(
            "closeout", "run", "--date", str(today), "--tenant", day.tenant, "--wait", "--json"
        )
        if not ok:
            raise _CaseFailed(f"closeout from the CLI failed: {(err or out).decode().strip()}")
        result: dict[str, Any] = json.loads(out.decode())
        case.workflow_id = result["workflow_id"]
        case.actual = "completed"
        await _judge(day, case, result, today, tz)
    except _CaseFailed as exc:
        case.actual = case.actual or "failed"
        case.problems.append(str(exc))
    day.say(
        f"{case.name}: {case.actual}" + (f" ({'; '.join(case.problems)})" if case.problems else "")
    )


async def _judge(day: BusinessDay, case: Case, result: dict[str, Any], today: Any, tz: str) -> None:
    truth = await _stripe_truth(day, today, tz)
    rows = await fetch_metrics(day.db, day.tenant, today, today)
    metrics = {r["metric"]: Decimal(r["value"]) for r in rows}
    for name, expected in truth.items():
        got = metrics.get(f"{name}:USD", Decimal(0))
        if got != expected:
            case.problems.append(f"daily_metrics {name}:USD is {got}, Stripe says {expected}")
    if result.get("drifts"):
        case.problems.append(f"drift between receipts and providers: {result['drifts']}")
    text = await _fetch_csv(case, result)
    if hashlib.sha256(text.encode()).hexdigest() != result.get("csv_sha256"):
        case.problems.append("the CSV behind the link is not the one the run wrote")
    summary = {(r[1], r[2]): r[3] for r in csv.reader(io.StringIO(text)) if r and r[0] == "summary"}
    captured = summary.get(("gross_captured", "USD"))
    if captured is not None and Decimal(captured) * 100 != truth["gross_captured_minor"]:
        case.problems.append(f"the CSV says captured {captured}, Stripe says otherwise")
    path = _save(day, text, today)
    case.facts.update(
        csv=str(path),
        report_url=result.get("report_url"),
        gross_captured_minor=int(truth["gross_captured_minor"]),
        stripe_fees_minor=int(truth["stripe_fees_minor"]),
        metrics=len(rows),
    )
    day.say(f"{case.name}: CSV report saved at {path}")
    day.say(f"{case.name}: report link {result.get('report_url')}")


async def _stripe_truth(day: BusinessDay, today: Any, tz: str) -> dict[str, Decimal]:
    """The day's money as the sandbox's Stripe lists it (every page)."""
    start, end = day_window(today, tz)
    gross = refunded = fees = net = 0
    after: str | None = None
    while True:
        page = await day.stripe.list_balance_transactions(
            created_gte=int(start.timestamp()),
            created_lt=int(end.timestamp()),
            starting_after=after,
        )
        for t in page.transactions:
            if t.type == "charge":
                gross += t.amount
            elif t.type == "refund":
                refunded -= t.amount
            fees += t.fee
            net += t.net
        if not page.has_more or not page.transactions:
            break
        after = page.transactions[-1].id
    return {
        "gross_captured_minor": Decimal(gross),
        "refunded_minor": Decimal(refunded),
        "stripe_fees_minor": Decimal(fees),
        "net_minor": Decimal(net),
    }


async def _fetch_csv(case: Case, result: dict[str, Any]) -> str:
    from autobiz.demo.business_day import _CaseFailed

    url = result.get("report_url")
    if not url:
        raise _CaseFailed("the run returned no report link")
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url)
    if answer.status_code != 200:
        raise _CaseFailed(f"the report link answered {answer.status_code}")
    return answer.text


def _save(day: BusinessDay, text: str, today: Any) -> Path:
    folder = Path(day.settings.home_dir).expanduser() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"closeout-{day.tenant}-{today}.csv"
    path.write_text(text)
    return path
