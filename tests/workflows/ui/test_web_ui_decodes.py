"""The Temporal Web UI, in a real (headless Chromium) browser, shows our encrypted
payloads decoded: a finished OrderFulfill's input and result, and a failed Refund's
failure reason. The dev server and the codec server are started as ``autobiz dev up``
starts them (autobiz.devstack.codec_service.decoding_ui); the worker is the tests'
harness on that dev server. As a control, the same pages with the codec server refusing
the UI (``token`` auth: the dev UI has no token to send) show none of it."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from playwright.async_api import Browser, Page, Response, async_playwright
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from autobiz.db.database import Database
from autobiz.devstack.codec_service import CodecService, decoding_ui
from autobiz.devstack.process import PidFiles
from autobiz.devstack.services import TemporalDevServer
from autobiz.settings import CodecServerAuth, Settings
from autobiz.temporal_client import connect
from kernel.codes import ErrorCode
from tests.support.sandbox import Sandbox
from tests.workflows.support import SHIP_TO, Harness, running_harness, ship_printful
from workflows.common.models import ApprovalTiming
from workflows.orders.models import ShipmentNotice

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("AUTOBIZ_UI_SCREENSHOTS", "/tmp/autobiz-ui"))
EXPIRES_AT_ONCE = ApprovalTiming(
    timeout=timedelta(seconds=2), remind_before=timedelta(0), escalate_after=timedelta(0)
)


def chromium() -> str:
    """Debian's Chromium (never a browser Playwright downloads)."""
    path = shutil.which("chromium")
    if path is None:
        message = (
            "the Web UI test needs Debian's Chromium: apt-get install -y chromium "
            "(.ci/run installs it)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DecodingUi:
    settings: Settings
    pidfiles: PidFiles
    codec: CodecService
    temporal: TemporalDevServer

    def history_page(self, workflow_id: str, run_id: str) -> str:
        t = self.settings.temporal
        return (
            f"http://127.0.0.1:{t.ui_port}/namespaces/{t.namespace}/workflows/"
            f"{quote(workflow_id, safe='')}/{run_id}/history"
        )

    def refuse_the_ui(self) -> None:
        """The codec server again, on the same port, now wanting a static token the
        dev server's UI cannot send."""
        self.codec.stop()
        kernel = self.settings.kernel.model_copy(
            update={"codec_server_auth": CodecServerAuth.TOKEN}
        )
        self.codec = CodecService(
            self.settings.model_copy(update={"kernel": kernel}), self.pidfiles
        )
        self.codec.env = {
            **(self.codec.env or {}),
            "AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN": "a-token-the-ui-does-not-have",
        }
        self.codec.start()


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[DecodingUi]:
    chromium()  # before anything starts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = Settings()
    settings = base.model_copy(
        update={
            "home": tmp_path / "home",
            "temporal": base.temporal.model_copy(
                update={
                    "port": free_port(),
                    "ui_port": free_port(),
                    "http_port": free_port(),
                    "metrics_port": free_port(),
                }
            ),
            "kernel": base.kernel.model_copy(update={"codec_server_port": free_port()}),
        }
    )
    pidfiles = PidFiles(settings.home_dir / "run")
    codec, temporal = decoding_ui(settings, pidfiles)
    stack = DecodingUi(settings, pidfiles, codec, temporal)
    for service in (codec, temporal):
        service.check_ports()
    try:
        codec.start()
        temporal.start()
        yield stack
    finally:
        stack.codec.stop()
        temporal.stop()


@pytest.fixture
async def ui_harness(
    ui: DecodingUi, sandbox: Sandbox, database: Database, tenant: str, task_queue: str
) -> AsyncIterator[Harness]:
    client = await connect(Settings(), target_host=ui.settings.temporal.dev_address)
    async with running_harness(client, sandbox, database, tenant, task_queue) as h:
        yield h


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Shown:
    text: str
    decode_statuses: list[int]


async def open_page(browser: Browser, url: str, name: str, ready: Callable[[Shown], bool]) -> Shown:
    """What the page shows once ``ready`` says so (or after 30 s): its text, and the
    statuses of the UI's calls to the codec server; a screenshot in SCREENSHOTS."""
    page: Page = await browser.new_page(viewport={"width": 1400, "height": 2400})
    shown = Shown("", [])

    def on_response(response: Response) -> None:
        # The UI posts to <endpoint>/decode?preserveStorageRefs=true (UI 2.54).
        if urlparse(response.url).path == "/decode" and response.request.method == "POST":
            shown.decode_statuses.append(response.status)

    page.on("response", on_response)
    try:
        await page.goto(url, wait_until="networkidle")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:  # an SPA: the payloads arrive after the page
            shown.text = await page.inner_text("body")
            if ready(shown) or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        return shown
    finally:
        await page.close()


def showing(*texts: str) -> Callable[[Shown], bool]:
    return lambda shown: all(text in shown.text for text in texts)


def refused_and(*texts: str) -> Callable[[Shown], bool]:
    """The codec server refused the UI, and the page shows ``texts`` anyway."""
    return lambda shown: 401 in shown.decode_statuses and showing(*texts)(shown)


async def test_the_web_ui_shows_inputs_results_and_failures_decoded(
    ui: DecodingUi, ui_harness: Harness, browser: Browser
) -> None:
    h = ui_harness
    # An OrderFulfill to completion.
    order_id, pi = await h.authorized_order("25.00")
    order = await h.start_order(order_id, pi)
    status = await h.status_when(order.id, lambda s: s.state == "in_production")
    tracking = await ship_printful(h.sandbox.control, int(status.detail["printful_order_id"]))
    await order.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    result = await order.result()
    assert result.state == "completed" and result.tracking_number == tracking
    # A refund that fails: its approval expires (fail closed).
    refund_order, refund_pi = await h.captured_order("100.00")
    refund = await h.request_refund(refund_order, refund_pi, 9000, timing=EXPIRES_AT_ONCE)
    with pytest.raises(WorkflowFailureError) as failed:
        await refund.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ErrorCode.APPROVAL_EXPIRED
    reason = "refund not made (fail closed)"
    assert reason in str(cause)

    order_page = ui.history_page(order.id, order.result_run_id or "")
    refund_page = ui.history_page(refund.id, refund.result_run_id or "")
    # Only in the encrypted payloads: the order's input (its address) and result (the
    # tracking number), the refund's input (its PaymentIntent) and failure message
    # (Temporal itself stores "Encoded failure").
    order_plain = [SHIP_TO.address1, tracking]
    refund_plain = [refund_pi, reason]

    shown = await open_page(browser, order_page, "order-decoded", showing(*order_plain))
    assert showing(*order_plain)(shown), shown.text[:3000]
    assert shown.decode_statuses and set(shown.decode_statuses) == {200}
    shown = await open_page(browser, refund_page, "refund-decoded", showing(*refund_plain))
    assert showing(*refund_plain)(shown), shown.text[:3000]
    assert "Encoded failure" in shown.text  # what Temporal has, beside what it decodes to

    # Control: the codec server refuses the UI; the same pages show none of it.
    ui.refuse_the_ui()
    for url, name, loaded, plain in (
        (order_page, "order-refused", order.id, order_plain),
        (refund_page, "refund-refused", refund.id, refund_plain),
    ):
        # Ready when the UI says so (its banner: a hint only, not asserted).
        ready = refused_and(loaded, "Codec Server could not connect")
        shown = await open_page(browser, url, name, ready)
        assert refused_and(loaded)(shown), (name, shown.decode_statuses)
        assert set(shown.decode_statuses) == {401}, name
        assert not any(text in shown.text for text in plain), name
