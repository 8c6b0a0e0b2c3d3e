"""A short business day for the demo tenant, acted out the way the real world acts.

Customers check out (a Stripe PaymentIntent authorised, the Shopify order created with
it), Shopify and Stripe tell AutoBiz through signed webhooks (sandbox → ingress →
Temporal), Printful ships (the sandbox's production moves on), and the operator works
from the CLI: refund requests, approvals (``autobiz approvals approve`` in a
subprocess), a cancellation. Each case knows the outcome it must reach; the day is
judged by what Temporal and the providers say, never by what this script did.

The cases run concurrently; the durations that make it take about a minute (approval
timeouts, the dunning schedule, reminders) come from the demo tenant's config
(``config/demo/``), not from here.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import yaml
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from autobiz.business_config import load_configs
from autobiz.db.database import Database
from autobiz.demo.care_cases import care_cases
from autobiz.demo.closeout_cases import closeout_case
from autobiz.demo.exception_cases import exception_cases
from autobiz.devstack.dev_secrets import dev_secrets_path
from autobiz.devstack.sandbox_package import sandbox_required
from autobiz.ledger.receipts import ReceiptStore
from autobiz.providers.errors import ProviderError
from autobiz.providers.stripe_client import StripePayments
from autobiz.providers.tenant_clients import TenantClients
from autobiz.secrets import CredentialStore, FileSecretsBackend
from autobiz.settings import Settings
from kernel.codes import ErrorCode
from kernel.config import BusinessConfig
from kernel.contracts import SideEffect
from starters.flows import flow_status, request_cancellation, request_refund
from workflows.common.models import FlowStatus
from workflows.ids import cancellation_workflow_id, order_workflow_id, payment_failure_workflow_id

Progress = Callable[[str], None]
DEMO_TENANT = "demo-shop"
# The demo's second merchant (config/demo/corner-shop.yaml): its own provider accounts.
SECOND_TENANT = "corner-shop"


@dataclass
class Case:
    """One thing that happens today and the outcome it must have."""

    name: str
    workflow_type: str
    expected: str
    workflow_id: str | None = None
    tenant: str = DEMO_TENANT
    actual: str | None = None
    receipts: int = 0
    money_receipts: int = 0  # FINANCIAL ones: captures, voids, refunds
    cost_micros: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.actual == self.expected and not self.problems


@dataclass
class Timing:
    """How long the day waits for things that take as long as they take."""

    workflow_appears: float = 60.0
    state_reached: float = 90.0
    result: float = 180.0
    poll: float = 0.25


class BusinessDay:
    def __init__(
        self,
        settings: Settings,
        client: Client,
        db: Database,
        progress: Progress,
        *,
        tenant: str = DEMO_TENANT,
        second_tenant: str | None = SECOND_TENANT,
        timing: Timing | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.db = db
        self.say = progress
        self.tenant = tenant
        self.timing = timing or Timing()
        configs = load_configs(settings.config_dir)
        self.config: BusinessConfig = configs[tenant]
        self.second = second_tenant if second_tenant in configs else None
        with sandbox_required("`autobiz demo`"):
            from sandbox.control_client import SandboxControl
        self.control = SandboxControl(f"http://{settings.sandbox.host}:{settings.sandbox.port}")
        # Each merchant acts with its own credentials (the stack's tenant secrets file).
        self.secrets_file = dev_secrets_path(settings)
        self.clients = TenantClients(
            settings, CredentialStore(FileSecretsBackend(self.secrets_file))
        )
        self.cases: list[Case] = []

    async def aclose(self) -> None:
        await self.control.aclose()
        await self.clients.aclose()

    async def _start(self) -> None:
        own = await self.clients.for_tenant(self.tenant)
        self.stripe: StripePayments = own.stripe
        self.shop = own.shop_domain

    # -- the day ----------------------------------------------------------------------

    async def prepare(self) -> None:
        """What comes before any case: the tenant's clients, every approver's signing
        key, and the sandbox's webhooks pointed at the ingress."""
        await self._start()
        await self._approver_keys()
        await self.control.webhooks(
            target_url=f"http://{self.settings.ingress.host}:{self.settings.ingress.port}/webhooks"
        )

    def fork(self) -> BusinessDay:
        """The same day (clients, stack, prepared tenant) keeping its own list of cases:
        what one golden scenario did is told apart from what others did meanwhile."""
        other = copy.copy(self)
        other.cases = []
        return other

    async def run(self) -> list[Case]:
        await self.prepare()
        first = self._case("order #1: paid, printed, shipped", "OrderFulfill", "completed")
        others = self._second_merchant(first)
        second = self._case("order #2: paid, printed, shipped", "OrderFulfill", "completed")
        third = self._case("order #3: paid, printed, shipped", "OrderFulfill", "completed")
        await asyncio.gather(
            self._refund_after(
                self._fulfilled_order(first, "80.00"),
                "60.00",
                self._case(
                    "refund 60.00 on order #1 (above threshold): approved from the CLI",
                    "Refund",
                    "refunded",
                ),
                approve_as="ana",
            ),
            self._refund_after(
                self._fulfilled_order(second, "25.00"),
                "10.00",
                self._case("refund 10.00 on order #2 (below threshold)", "Refund", "refunded"),
            ),
            self._refund_after(
                self._fulfilled_order(third, "55.00"),
                "55.00",
                self._case(
                    "refund 55.00 on order #3: nobody answers, fails closed",
                    "Refund",
                    f"failed:{ErrorCode.APPROVAL_EXPIRED}",
                ),
            ),
            self._payment_failure(
                self._case(
                    "order #4: card declined, dunning, cancelled", "PaymentFailure", "cancelled"
                )
            ),
            self._cancellation(
                self._case(
                    "order #5 (650.00, held for review): stopped", "OrderFulfill", "cancelled"
                ),
                self._case(
                    "order #5: customer cancels, authorisation voided (approved)",
                    "OrderCancellation",
                    "cancelled",
                ),
            ),
            others,
            exception_cases(self),  # WF06: a Printful hold fixed, one escalated
            care_cases(self),  # WF05: a customer's email answered, one reviewed and edited
        )
        await closeout_case(self)  # WF07: the day closed from the CLI, judged by Stripe
        for case in self.cases:
            await self._account(case)
        return self.cases

    async def _second_merchant(self, victim: Case) -> None:
        """The other merchant on the same stack: an order of its own, with its own
        accounts; then a webhook signed with its secret that names ``victim``'s order
        (demo-shop's), which must move nothing and be recorded as an incident."""
        if self.second is None:
            return
        other = BusinessDay(
            self.settings,
            self.client,
            self.db,
            self.say,
            tenant=self.second,
            second_tenant=None,
            timing=self.timing,
        )
        other.cases = self.cases
        try:
            await other._start()
            own = other._case(
                f"{self.second}: order paid, printed, shipped", "OrderFulfill", "completed"
            )
            attack = self._case(
                f"{self.second}'s signed webhook naming order #1 of {self.tenant}",
                "ingress",
                "refused:CROSS_TENANT_REFUSED",
            )
            await asyncio.gather(
                other._fulfilled_order(own, "35.00"), self._foreign_webhook(attack, victim)
            )
        finally:
            await other.clients.aclose()

    async def _foreign_webhook(self, case: Case, victim: Case) -> None:
        """The second tenant signs an ``orders/paid`` for the victim's order: the ingress
        must dead-letter it as a cross-tenant incident and start no flow."""
        assert self.second is not None
        if not await self._victim_taken_in(case, victim):
            return
        order_id = str(victim.facts["order_id"])
        body, headers = self._foreign_paid(order_id, self.second)
        url = f"http://{self.settings.ingress.host}:{self.settings.ingress.port}/webhooks/shopify"
        self.say(f"{case.name}: sent, signed with {self.second}'s secret")
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(url, content=body, headers=headers)
        stored = answer.json().get("status") if answer.status_code == 200 else answer.status_code
        case.facts.update(order_id=order_id, ingress_answer=stored)
        await self._judge_attack(case, order_id, stored, self.second)
        self.say(f"{case.name}: {case.actual}")

    async def _victim_taken_in(self, case: Case, victim: Case) -> bool:
        """Wait until the victim's order exists and its flow has taken it in."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.state_reached
        while "order_id" not in victim.facts or victim.workflow_id is None:
            if loop.time() > deadline:
                case.problems.append("the victim order never appeared")
                return False
            await asyncio.sleep(self.timing.poll)
        try:
            await self._state(victim, lambda s: True)  # its orders/create was taken in
        except _CaseFailed as exc:
            case.problems.append(str(exc))
            return False
        return True

    def _foreign_paid(self, order_id: str, signer: str) -> tuple[bytes, dict[str, str]]:
        """An ``orders/paid`` webhook for ``order_id``, signed with ``signer``'s secret."""
        secrets = (yaml.safe_load(self.secrets_file.read_text()) or {})[signer]
        body = json.dumps(
            {
                "id": int(order_id),
                "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                "financial_status": "paid",
                "currency": "USD",
                "total_price": "80.00",
            }
        ).encode()
        digest = hmac.new(secrets["shopify_webhook_secret"].encode(), body, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/paid",
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest.digest()).decode(),
            "X-Shopify-Shop-Domain": secrets["shopify_shop_domain"],
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
        }
        return body, headers

    async def _judge_attack(self, case: Case, order_id: str, stored: Any, signer: str) -> None:
        """Refused only when dead-lettered, recorded as an incident and no flow started."""
        async with self.db.tenant(signer) as session:
            incidents = await session.fetch_val(
                "SELECT count(*) FROM audit_log WHERE tenant_id = %s "
                "AND action = 'security.CROSS_TENANT_REFUSED'",
                (signer,),
            )
        started = True
        try:
            await self.client.get_workflow_handle(order_workflow_id(signer, order_id)).describe()
        except RPCError:
            started = False
        if stored == "dead_letter" and incidents and not started:
            case.actual = "refused:CROSS_TENANT_REFUSED"
        else:
            case.actual = f"accepted:{stored}"
            case.problems.append(f"ingress {stored}, incidents {incidents}, flow started {started}")

    def _case(self, name: str, workflow_type: str, expected: str) -> Case:
        case = Case(name, workflow_type, expected, tenant=self.tenant)
        self.cases.append(case)
        return case

    # -- what customers and providers do ----------------------------------------------

    async def _authorise(self, amount: str, card: str = "pm_card_visa") -> str:
        pi = await self.stripe.create_payment_intent(
            amount=_minor(amount),
            currency="usd",
            order_key=f"{self.tenant}:checkout",
            idempotency_key=f"demo-{uuid.uuid4()}",
            payment_method=card,
            confirm=True,
        )
        return pi.id

    async def _checkout(self, amount: str, *, pi: str | None, status: str) -> str:
        """The shop records the order (Shopify's orders/create webhook goes out); the
        checkout then names the order on the PaymentIntent it authorised."""
        seeded = await self.control.seed_shopify_order(
            shop=self.shop,
            email="customer@example.com",
            financial_status=status,
            payment_intent=pi,
            line_items=[{"title": "Poster", "quantity": 1, "price": amount, "sku": "PF-4012"}],
        )
        order_id = str(seeded["legacy_id"])
        if pi is not None:
            await self.stripe.set_order_key(
                pi, f"{self.tenant}:{order_id}", idempotency_key=f"demo-{uuid.uuid4()}"
            )
        return order_id

    async def _in_production(self, case: Case, amount: str) -> tuple[str, str, FlowStatus]:
        """Checkout → orders/create webhook → OrderFulfill in production: (order id,
        PaymentIntent, the flow's status then)."""
        pi = await self._authorise(amount)
        order_id = await self._checkout(amount, pi=pi, status="authorized")
        case.workflow_id = order_workflow_id(self.tenant, order_id)
        case.facts.update(order_id=order_id, payment_intent=pi, amount=amount)
        self.say(f"{case.name}: Shopify order {order_id} created, authorised {amount}")
        status = await self._state(case, lambda s: s.state == "in_production")
        return order_id, pi, status

    async def _fulfilled_order(self, case: Case, amount: str) -> tuple[str, str] | None:
        """Checkout → orders/create webhook → OrderFulfill → ship → completed."""
        try:
            order_id, pi, status = await self._in_production(case, amount)
            await self.control.advance_printful(status.detail["printful_order_id"], "ship")
            self.say(f"{case.name}: Printful shipped it")
            await self._settle(case)
        except _CaseFailed as exc:
            case.problems.append(str(exc))
            return None
        return (order_id, pi) if case.ok else None

    async def _refund_after(
        self,
        order: Awaitable[tuple[str, str] | None],
        amount: str,
        case: Case,
        *,
        approve_as: str | None = None,
    ) -> None:
        placed = await order
        if placed is None:
            case.problems.append("its order did not complete")
            return
        order_id, pi = placed
        case.facts.update(order_id=order_id, payment_intent=pi)
        try:
            handle = await request_refund(
                self.client,
                self.config,
                order_id=order_id,
                payment_intent_id=pi,
                amount_minor=_minor(amount),
                currency="USD",
                task_queue=self.settings.temporal.task_queue,
                principal="demo:support",
                ledger=self.db,
            )
            case.workflow_id = handle.id
            self.say(f"{case.name}: requested")
            if approve_as is not None:
                status = await self._state(case, lambda s: s.approval is not None)
                assert status.approval is not None
                await self._approve_from_cli(case, status.approval.request_id, approve_as)
            await self._settle(case)
            refunded = await self._refunded_minor(pi)
            case.facts["stripe_refunded"] = refunded
            # Money moved exactly when the refund went through: never on expiry.
            should = _minor(amount) if case.expected == "refunded" else 0
            if refunded != should:
                case.problems.append(f"Stripe shows {refunded} refunded, expected {should}")
        except _CaseFailed as exc:
            case.problems.append(str(exc))

    async def _payment_failure(self, case: Case) -> None:
        """A pending order whose card is declined: Stripe's payment_failed webhook starts
        PaymentFailure, which duns the customer and then cancels."""
        try:
            order_id = await self._checkout("30.00", pi=None, status="pending")
            pi = await self.stripe.create_payment_intent(
                amount=3000,
                currency="usd",
                order_key=f"{self.tenant}:{order_id}",
                idempotency_key=f"demo-{uuid.uuid4()}",
            )
            case.workflow_id = payment_failure_workflow_id(self.tenant, pi.id)
            case.facts.update(order_id=order_id, payment_intent=pi.id)
            try:
                await self.stripe.confirm_payment_intent(
                    pi.id,
                    payment_method="pm_card_chargeDeclinedInsufficientFunds",
                    idempotency_key=f"demo-{uuid.uuid4()}",
                )
                case.problems.append("the declining card was accepted")
            except ProviderError:
                self.say(f"{case.name}: card declined (insufficient funds)")
            await self._settle(case)
        except _CaseFailed as exc:
            case.problems.append(str(exc))

    async def _cancellation(self, held: Case, cancel: Case) -> None:
        """A large order waits for review; the customer cancels before anyone decides."""
        try:
            pi = await self._authorise("650.00")
            order_id = await self._checkout("650.00", pi=pi, status="authorized")
            held.workflow_id = order_workflow_id(self.tenant, order_id)
            held.facts.update(order_id=order_id, payment_intent=pi)
            await self._state(held, lambda s: s.approval is not None)
            self.say(f"{held.name}: capture of 650.00 waits for review; the customer cancels")
            handle = await request_cancellation(
                self.client,
                self.config,
                order_id=order_id,
                payment_intent_id=pi,
                task_queue=self.settings.temporal.task_queue,
                principal="demo:support",
            )
            cancel.workflow_id = handle.id
            assert cancel.workflow_id == cancellation_workflow_id(self.tenant, order_id)
            status = await self._state(cancel, lambda s: s.approval is not None)
            assert status.approval is not None
            await self._approve_from_cli(cancel, status.approval.request_id, "omar")
            await self._settle(cancel)
            await self._settle(held)
            info = await self.stripe.retrieve_payment_intent(pi)
            cancel.facts["payment_status"] = info.status
            if info.status != "canceled" or info.amount_received:
                cancel.problems.append(f"PaymentIntent is {info.status}, not canceled")
        except _CaseFailed as exc:
            (cancel if cancel.workflow_id else held).problems.append(str(exc))

    # -- what the operator does -------------------------------------------------------

    async def _approver_keys(self) -> None:
        """Every approver of the tenant gets a signing key before any request opens
        (``autobiz approvals keys create``, once: a later day reuses a usable key)."""
        from autobiz.approver_keys import list_keys, pick_local_key

        for approver in (a.id for a in self.config.approvers):
            registered = await list_keys(self.db, self.tenant, approver)
            if pick_local_key(self.settings.home_dir, self.tenant, approver, registered):
                continue
            self.say(f"`autobiz approvals keys create --as {approver} --tenant {self.tenant}`")
            ok, out, err = await self._autobiz(
                "approvals", "keys", "create", "--as", approver, "--tenant", self.tenant, "--json"
            )
            if not ok:
                raise RuntimeError(f"approver key for {approver}: {(err or out).decode()}")

    async def _autobiz(self, *args: str) -> tuple[bool, bytes, bytes]:
        """Run ``autobiz *args`` as an operator would, with the day's settings: whether it
        succeeded, and its stdout and stderr."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "autobiz.cli.main",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **_settings_env(self.settings)},
        )
        out, err = await proc.communicate()
        return proc.returncode == 0, out, err

    async def _approve_from_cli(self, case: Case, request_id: str, approver: str) -> None:
        """``autobiz approvals approve`` exactly as an operator would type it."""
        status = await self._cli_approval(case, request_id, approver, reason="demo: looks right")
        case.facts.update(approved_by=approver, approval=status)

    async def _cli_approval(
        self,
        case: Case,
        request_id: str,
        approver: str,
        *options: str,
        reason: str,
        shown: tuple[str, ...] | None = None,
    ) -> Any:
        """``autobiz approvals approve <request> --as <approver> [options]`` run as an
        operator types it (said with ``shown`` for the options, when they differ from what
        runs): the approval's status the CLI answers (its text, when that is not JSON).
        A refused approval fails the case."""
        said = " ".join(("--as", approver, *(options if shown is None else shown)))
        self.say(f"{case.name}: `autobiz approvals approve {request_id} {said}`")
        ok, out, err = await self._autobiz(
            "approvals",
            "approve",
            request_id,
            "--as",
            approver,
            *options,
            "--tenant",
            self.tenant,
            "--reason",
            reason,
            "--json",
        )
        if not ok:
            raise _CaseFailed(f"approval from the CLI failed: {(err or out).decode().strip()}")
        try:
            return json.loads(out.decode()).get("status")
        except ValueError:
            return out.decode().strip()

    # -- watching -----------------------------------------------------------------------

    async def _state(self, case: Case, predicate: Callable[[FlowStatus], bool]) -> FlowStatus:
        assert case.workflow_id is not None
        deadline = asyncio.get_running_loop().time() + self.timing.state_reached
        last: FlowStatus | None = None
        while asyncio.get_running_loop().time() < deadline:
            try:
                last = await flow_status(self.client, case.workflow_id)
            except (RPCError, WorkflowFailureError, ApplicationError):
                last = None  # not started yet (the webhook is on its way)
            if last is not None and predicate(last):
                return last
            if last is not None and last.state in ("failed", "rejected", "completed"):
                break
            await asyncio.sleep(self.timing.poll)
        seen = f"state {last.state}" if last else "no workflow"
        raise _CaseFailed(f"{case.workflow_id}: expected progress never came ({seen})")

    async def _settle(self, case: Case) -> None:
        """Wait for the workflow to close and record its outcome."""
        assert case.workflow_id is not None
        handle = self.client.get_workflow_handle(case.workflow_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.result
        while True:
            try:
                desc = await handle.describe()
                if desc.status != WorkflowExecutionStatus.RUNNING:
                    break
            except RPCError:
                pass  # not there yet
            if loop.time() > deadline:
                raise _CaseFailed(f"{case.workflow_id} did not finish")
            await asyncio.sleep(self.timing.poll)
        try:
            result = await handle.result()
            case.actual = str(result.get("state") if isinstance(result, dict) else result)
        except WorkflowFailureError as exc:
            cause: BaseException | None = exc.cause
            while cause is not None and not isinstance(cause, ApplicationError):
                cause = getattr(cause, "cause", None)
            case.actual = f"failed:{cause.type if cause is not None else 'unknown'}"
        self.say(f"{case.name}: {case.actual}")

    async def _account(self, case: Case) -> None:
        """Receipts and cost, from the ledger and the workflow itself."""
        if case.workflow_id is None:
            return
        receipts = await ReceiptStore(self.db).for_workflow(case.tenant, case.workflow_id)
        case.receipts = len(receipts)
        case.money_receipts = sum(1 for r in receipts if r.side_effect is SideEffect.FINANCIAL)
        try:
            case.cost_micros = (await flow_status(self.client, case.workflow_id)).cost_micros
        except (RPCError, WorkflowFailureError, ApplicationError):
            pass

    async def _refunded_minor(self, pi: str) -> int:
        page = await self.stripe.list_refunds(payment_intent_id=pi)
        return sum(r.amount for r in page.refunds if r.status in ("succeeded", "pending"))

    def ui_link(self, case: Case) -> str | None:
        if case.workflow_id is None:
            return None
        return f"{self.settings.temporal.ui_url}/{quote(case.workflow_id, safe='')}"


class _CaseFailed(Exception):
    pass


def _minor(amount: str) -> int:
    units, _, cents = amount.partition(".")
    return int(units) * 100 + int((cents + "00")[:2])


def _settings_env(settings: Settings) -> dict[str, str]:
    """What a CLI subprocess needs to reach the same stack (config dir included)."""
    return {
        "AUTOBIZ_CONFIG_DIR": str(settings.config_dir.expanduser().resolve()),
        "AUTOBIZ_HOME": str(settings.home_dir),
    }
