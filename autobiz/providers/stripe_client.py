"""Stripe through the official SDK: PaymentIntents, refunds, balance transactions, events.

``StripeClient`` with the base address from settings (the sandbox, or Stripe itself in
test mode), ``max_network_retries=0`` (Temporal retries), the SDK's async methods over
its httpx transport with the configured timeout, and an explicit idempotency key on every
POST: the SDK would otherwise invent a random one, and an activity retry must resend the
same key so Stripe replays the first result instead of charging twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import stripe
from pydantic import BaseModel, ConfigDict, Field

from autobiz.providers.errors import (
    AuthenticationFailed,
    CardDeclined,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StateConflict,
)
from autobiz.providers.http import retry_after_seconds
from autobiz.providers.hygiene import ensure_host_allowed, ensure_test_credential
from autobiz.providers.throttle import Throttle
from autobiz.settings import Settings

PROVIDER = "stripe"
ORDER_KEY_METADATA = "order_key"
CaptureMethod = Literal["automatic", "manual"]
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
CancellationReason = Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"]
STATE_CODES = frozenset(
    {"payment_intent_unexpected_state", "charge_already_refunded", "charge_already_captured"}
)

if TYPE_CHECKING:
    from stripe import RequestOptions
    from stripe.params import (
        BalanceTransactionListParams,
        EventListParams,
        PaymentIntentCreateParams,
        RefundCreateParams,
        RefundListParams,
    )

T = TypeVar("T")


class PaymentError(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class PaymentIntentInfo(BaseModel):
    """The fields of a PaymentIntent the workflows act on."""

    model_config = ConfigDict(extra="ignore")
    id: str
    status: str
    amount: int
    amount_capturable: int = 0
    amount_received: int = 0
    currency: str
    capture_method: str | None = None
    latest_charge: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    last_payment_error: PaymentError | None = None
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    created: int
    livemode: bool = False


class RefundInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    status: str | None
    amount: int
    currency: str
    payment_intent: str | None = None
    charge: str | None = None
    reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created: int


class ChargeInfo(BaseModel):
    """A charge's money: what was captured and how much of it is refunded already."""

    model_config = ConfigDict(extra="ignore")
    id: str
    amount: int
    amount_captured: int = 0
    amount_refunded: int = 0
    currency: str
    payment_intent: str | None = None


class BalanceTransactionInfo(BaseModel):
    """A balance transaction: what a charge or refund did to the balance (``amount`` gross,
    negative for money out; ``fee`` Stripe's; ``net`` = amount - fee), in minor units."""

    model_config = ConfigDict(extra="ignore")
    id: str
    amount: int
    fee: int = 0
    net: int
    currency: str
    type: str
    reporting_category: str | None = None
    source: str | None = None
    status: str | None = None
    created: int


class BalanceTransactionPage(BaseModel):
    transactions: list[BalanceTransactionInfo]
    has_more: bool


class StripeEventInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: str
    created: int
    data: dict[str, Any]
    livemode: bool = False

    @property
    def object_id(self) -> str | None:
        obj = self.data.get("object") or {}
        value = obj.get("id")
        return value if isinstance(value, str) else None


class EventPage(BaseModel):
    events: list[StripeEventInfo]
    has_more: bool


class RefundPage(BaseModel):
    refunds: list[RefundInfo]
    has_more: bool


def _require_key(idempotency_key: str) -> RequestOptions:
    if not idempotency_key or not idempotency_key.strip():
        raise ValueError("every Stripe POST needs an explicit idempotency key")
    return {"idempotency_key": idempotency_key}


def map_stripe_error(exc: stripe.StripeError) -> ProviderError:
    """SDK exceptions onto our hierarchy. Declines never retry; 429/5xx/network do."""
    message = exc.user_message or str(exc) or type(exc).__name__
    status = exc.http_status
    code = exc.code
    if isinstance(exc, stripe.CardError):
        err = exc.error
        decline = (err.decline_code if err else None) or code
        pi = err.payment_intent if err else None
        pi_id = pi.get("id") if isinstance(pi, dict) else getattr(pi, "id", None)
        return CardDeclined(
            message,
            provider_code=code,
            decline_code=decline,
            http_status=status,
            payment_intent_id=pi_id,
        )
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflict(
            message,
            provider=PROVIDER,
            provider_code=code or "idempotency_error",
            http_status=status,
            retryable=False,
        )
    if isinstance(exc, stripe.RateLimitError):
        return RateLimited(
            message,
            provider=PROVIDER,
            http_status=status,
            retry_after=retry_after_seconds(dict(exc.headers or {})),
        )
    if isinstance(exc, stripe.APIConnectionError):
        return ProviderUnavailable(message, provider=PROVIDER, provider_code="network")
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return AuthenticationFailed(
            message, provider=PROVIDER, provider_code=code, http_status=status
        )
    if status == 409:
        # Stripe answers 409 while another request with the same key is in flight.
        return IdempotencyConflict(
            message,
            provider=PROVIDER,
            provider_code=code or "idempotency_in_flight",
            http_status=status,
            retryable=True,
        )
    if (status is not None and status >= 500) or isinstance(exc, stripe.APIError):
        return ProviderUnavailable(
            message, provider=PROVIDER, provider_code=code, http_status=status
        )
    if status == 404 or code == "resource_missing":
        return NotFound(message, provider=PROVIDER, provider_code=code, http_status=status)
    if code in STATE_CODES:
        return StateConflict(message, provider=PROVIDER, provider_code=code, http_status=status)
    return InvalidRequest(message, provider=PROVIDER, provider_code=code, http_status=status)


def _as_dict(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return result


class StripePayments:
    """Async Stripe client for the activities. One instance per worker; ``aclose`` at exit."""

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: stripe.HTTPClient | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        cfg = settings.stripe
        self._throttle = throttle
        ensure_test_credential(PROVIDER, "stripe.api_key", cfg.api_key, settings)
        ensure_host_allowed(PROVIDER, cfg.api_base, settings)
        self._http = http_client or stripe.HTTPXClient(timeout=cfg.timeout_seconds)
        self._client = stripe.StripeClient(
            cfg.api_key.get_secret_value(),
            base_addresses={"api": cfg.api_base.rstrip("/")},
            max_network_retries=0,
            http_client=self._http,
        )

    @property
    def sdk(self) -> stripe.StripeClient:
        """The underlying SDK client, for calls this wrapper does not cover."""
        return self._client

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """One Stripe request, once the account's rate limit lets it go."""
        if self._throttle is not None:
            await self._throttle.acquire(PROVIDER)
        try:
            return await fn()
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc

    # -- PaymentIntents -------------------------------------------------------------

    async def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        order_key: str,
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
        capture_method: CaptureMethod = "manual",
        metadata: dict[str, str] | None = None,
        description: str | None = None,
    ) -> PaymentIntentInfo:
        """Create (and with ``confirm`` authorize) a PaymentIntent tagged with our order key."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "capture_method": capture_method,
            "metadata": {**(metadata or {}), ORDER_KEY_METADATA: order_key},
            "payment_method_types": ["card"],
        }
        if payment_method is not None:
            params["payment_method"] = payment_method
        if confirm:
            params["confirm"] = True
        if description is not None:
            params["description"] = description
        options = _require_key(idempotency_key)
        pi = await self._call(
            lambda: self._client.v1.payment_intents.create_async(
                cast("PaymentIntentCreateParams", params), options
            )
        )
        return PaymentIntentInfo.model_validate(_as_dict(pi))

    async def confirm_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, payment_method: str | None = None
    ) -> PaymentIntentInfo:
        params: dict[str, Any] = {}
        if payment_method is not None:
            params["payment_method"] = payment_method
        return await self._post_pi("confirm", payment_intent_id, params, idempotency_key)

    async def capture_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, amount_to_capture: int | None = None
    ) -> PaymentIntentInfo:
        params: dict[str, Any] = {}
        if amount_to_capture is not None:
            params["amount_to_capture"] = amount_to_capture
        return await self._post_pi("capture", payment_intent_id, params, idempotency_key)

    async def cancel_payment_intent(
        self,
        payment_intent_id: str,
        *,
        idempotency_key: str,
        reason: CancellationReason | None = None,
    ) -> PaymentIntentInfo:
        """Void an authorization (or abandon an unpaid PaymentIntent)."""
        params: dict[str, Any] = {}
        if reason is not None:
            params["cancellation_reason"] = reason
        return await self._post_pi("cancel", payment_intent_id, params, idempotency_key)

    async def set_order_key(
        self, payment_intent_id: str, order_key: str, *, idempotency_key: str
    ) -> PaymentIntentInfo:
        """Name the order a PaymentIntent paid for, once the order exists (checkout creates
        the intent before the shop has an order number)."""
        params = {"metadata": {ORDER_KEY_METADATA: order_key}}
        return await self._post_pi("update", payment_intent_id, params, idempotency_key)

    async def _post_pi(
        self, action: str, payment_intent_id: str, params: dict[str, Any], idempotency_key: str
    ) -> PaymentIntentInfo:
        """POST to one PaymentIntent (``confirm``, ``capture``, ``cancel``, ``update``),
        always with an explicit idempotency key."""
        options = _require_key(idempotency_key)
        method = getattr(self._client.v1.payment_intents, f"{action}_async")
        pi = await self._call(lambda: method(payment_intent_id, params, options))
        return PaymentIntentInfo.model_validate(_as_dict(pi))

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        pi = await self._call(
            lambda: self._client.v1.payment_intents.retrieve_async(payment_intent_id)
        )
        return PaymentIntentInfo.model_validate(_as_dict(pi))

    async def find_payment_intents(self, order_key: str) -> list[PaymentIntentInfo]:
        """PaymentIntents carrying our ``order_key`` metadata (lookup before create)."""
        escaped = order_key.replace("\\", "\\\\").replace("'", "\\'")
        query = f"metadata['{ORDER_KEY_METADATA}']:'{escaped}'"
        result = await self._call(
            lambda: self._client.v1.payment_intents.search_async({"query": query, "limit": 100})
        )
        return [PaymentIntentInfo.model_validate(_as_dict(pi)) for pi in result.data]

    # -- Refunds ---------------------------------------------------------------------

    async def create_refund(
        self,
        *,
        payment_intent_id: str,
        idempotency_key: str,
        amount: int | None = None,
        reason: RefundReason | None = None,
        metadata: dict[str, str] | None = None,
    ) -> RefundInfo:
        """Refund part or all of a captured PaymentIntent (never more than captured)."""
        params: dict[str, Any] = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        if reason is not None:
            params["reason"] = reason
        if metadata:
            params["metadata"] = metadata
        options = _require_key(idempotency_key)
        refund = await self._call(
            lambda: self._client.v1.refunds.create_async(
                cast("RefundCreateParams", params), options
            )
        )
        return RefundInfo.model_validate(_as_dict(refund))

    async def retrieve_refund(self, refund_id: str) -> RefundInfo:
        refund = await self._call(lambda: self._client.v1.refunds.retrieve_async(refund_id))
        return RefundInfo.model_validate(_as_dict(refund))

    async def list_refunds(
        self,
        *,
        payment_intent_id: str | None = None,
        created_gte: int | None = None,
        created_lte: int | None = None,
        limit: int = 100,
        starting_after: str | None = None,
    ) -> RefundPage:
        """One page of refunds, newest first: of one PaymentIntent and/or created in a
        range (epoch seconds, inclusive). Walk the pages with ``starting_after``."""
        params: dict[str, Any] = {"limit": limit}
        if payment_intent_id is not None:
            params["payment_intent"] = payment_intent_id
        created = {k: v for k, v in (("gte", created_gte), ("lte", created_lte)) if v is not None}
        if created:
            params["created"] = created
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = await self._call(
            lambda: self._client.v1.refunds.list_async(cast("RefundListParams", params))
        )
        return RefundPage(
            refunds=[RefundInfo.model_validate(_as_dict(r)) for r in page.data],
            has_more=bool(page.has_more),
        )

    async def refunds_of(self, payment_intent_id: str, *, max_pages: int = 10) -> list[RefundInfo]:
        """Every refund of one PaymentIntent, newest first (a few pages at most: a payment
        has a handful of refunds). The lookup ``create_refund`` runs before it creates."""
        refunds: list[RefundInfo] = []
        after: str | None = None
        for _ in range(max_pages):
            page = await self.list_refunds(
                payment_intent_id=payment_intent_id, starting_after=after
            )
            refunds.extend(page.refunds)
            if not page.has_more or not page.refunds:
                break
            after = page.refunds[-1].id
        return refunds

    async def retrieve_charge(self, charge_id: str) -> ChargeInfo:
        charge = await self._call(lambda: self._client.v1.charges.retrieve_async(charge_id))
        return ChargeInfo.model_validate(_as_dict(charge))

    # -- Balance transactions ----------------------------------------------------------

    async def list_balance_transactions(
        self,
        *,
        created_gte: int,
        created_lt: int,
        limit: int = 100,
        starting_after: str | None = None,
    ) -> BalanceTransactionPage:
        """One page of balance transactions created in ``[created_gte, created_lt)``
        (epoch seconds), newest first (``GET /v1/balance_transactions``); walk the pages
        with ``starting_after`` while ``has_more``."""
        params: dict[str, Any] = {
            "limit": limit,
            "created": {"gte": created_gte, "lt": created_lt},
        }
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = await self._call(
            lambda: self._client.v1.balance_transactions.list_async(
                cast("BalanceTransactionListParams", params)
            )
        )
        return BalanceTransactionPage(
            transactions=[BalanceTransactionInfo.model_validate(_as_dict(t)) for t in page.data],
            has_more=bool(page.has_more),
        )

    # -- Events ----------------------------------------------------------------------

    async def list_events(
        self, *, types: list[str] | None = None, limit: int = 100, starting_after: str | None = None
    ) -> EventPage:
        """One page of events, newest first (reconciliation walks them with ``starting_after``)."""
        params: dict[str, Any] = {"limit": limit}
        if types:
            params["types"] = types
        if starting_after:
            params["starting_after"] = starting_after
        page = await self._call(
            lambda: self._client.v1.events.list_async(cast("EventListParams", params))
        )
        return EventPage(
            events=[StripeEventInfo.model_validate(_as_dict(e)) for e in page.data],
            has_more=bool(page.has_more),
        )
