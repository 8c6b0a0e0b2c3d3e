"""The subset of Stripe's v1 API AutoBiz uses, with Stripe's semantics.

- Form-encoded requests as the SDK sends them; ``Authorization: Bearer sk_test_...``.
  Each secret key is one Stripe account (:mod:`sandbox.accounts`): an unknown key is
  401, and an object of another account is ``resource_missing`` — lists, searches and
  events show only the caller's own objects, and webhooks are signed with the owning
  account's endpoint secret.
- Idempotency on every POST: same key + same endpoint and parameters → the recorded
  response, status included (``Idempotent-Replayed: true``); different parameters → 400
  ``idempotency_error``; same key while the first is still running → 409. Requests that
  fail parameter validation are not recorded (Stripe saves a result only once the
  endpoint has started executing).
- PaymentIntent state machine: ``requires_payment_method`` → ``requires_confirmation``
  → (confirm) ``requires_capture`` (manual) or ``succeeded`` (automatic); capture;
  cancel; a declined confirmation answers 402 ``card_error`` and returns the intent to
  ``requires_payment_method``.
- Refunds never beyond what was captured and not yet refunded (400 ``amount_too_large``);
  ``GET /v1/refunds`` lists them (by PaymentIntent, charge, creation time), newest first.
- Money moving makes a balance transaction (``GET /v1/balance_transactions``, by
  ``created``, ``type``, ``source``, newest first): a charge when it is captured (gross
  amount, Stripe's card fee of 2.9% + 30), a refund when it is made (negative, no fee).
- Every state change records an event (``GET /v1/events``) and sends it as a signed
  webhook.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import stripe_objects as objects
from sandbox.accounts import AccountBook, SandboxAccount, acting_as, current_account
from sandbox.faults import processing_delay
from sandbox.formdecode import decode_form, pairs_fingerprint
from sandbox.idempotency import IdempotencyStore, Outcome, RecordedResponse
from sandbox.webhooks import WebhookDispatcher

DEFAULT_API_VERSION = "2025-06-30.basil"
CANCELABLE = {
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "requires_capture",
    "processing",
}


class StripeApiError(Exception):
    """An error answer. ``executed`` False: validation failed before execution (not
    recorded under the idempotency key)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        executed: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.executed = executed
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            self.body["code"] = code
        if param is not None:
            self.body["param"] = param
        self.body.update(extra or {})


def _invalid(
    message: str, *, param: str | None = None, code: str = "parameter_invalid"
) -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param, executed=False)


def _int_param(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise _invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise _invalid(
            f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer"
        ) from None
    if value <= 0:
        raise _invalid(f"This value must be greater than or equal to 1 ({name}).", param=name)
    return value


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    raw = params.get("metadata") or {}
    if not isinstance(raw, dict):
        raise _invalid("Invalid object", param="metadata")
    return {str(k): str(v) for k, v in raw.items()}


_CREATED_BOUNDS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _list_limit(params: dict[str, Any]) -> int:
    """A list's ``limit``: 10 unless given, 1-100 (400 ``parameter_invalid`` beyond)."""
    limit = _int_param(params, "limit") or 10
    if limit > 100:
        raise _invalid("This value must be less than or equal to 100 (limit).", param="limit")
    return limit


def _created_within(rows: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows whose ``created`` meets ``created[gt|gte|lt|lte]`` and an exact ``created``."""
    for op, test in _CREATED_BOUNDS.items():
        name = f"created[{op}]"
        if params.get(name) not in (None, ""):
            value = _int_param(params, name) or 0
            rows = [r for r in rows if test(r["created"], value)]
    if params.get("created") not in (None, ""):
        exact = _int_param(params, "created")
        rows = [r for r in rows if r["created"] == exact]
    return rows


def _after(rows: list[dict[str, Any]], params: dict[str, Any], noun: str) -> list[dict[str, Any]]:
    """The rows after ``starting_after`` (all without it); an id not among them is 404."""
    after = params.get("starting_after")
    if not after:
        return rows
    ids = [r["id"] for r in rows]
    if after not in ids:
        raise StripeApiError(
            404,
            f"No such {noun}: '{after}'",
            code="resource_missing",
            param="starting_after",
        )
    return rows[ids.index(after) + 1 :]


def _list_page(rows: list[dict[str, Any]], limit: int, url: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": rows[:limit],
        "has_more": len(rows) > limit,
        "url": url,
    }


_SEARCH_CLAUSE = re.compile(r"""^\s*(\w+)(?:\['([^']*)'\])?\s*:\s*'((?:[^'\\]|\\.)*)'\s*$""")


def _search_matcher(query: str) -> list[tuple[str, str | None, str]]:
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        match = _SEARCH_CLAUSE.match(part)
        if not match:
            raise _invalid(f"Invalid search query: {query}", param="query")
        field, key, value = match.groups()
        clauses.append((field, key, re.sub(r"\\(.)", r"\1", value)))
    return clauses


class StripeSandbox:
    def __init__(self, dispatcher: WebhookDispatcher, accounts: AccountBook) -> None:
        self.dispatcher = dispatcher
        self.accounts = accounts
        self.idempotency = IdempotencyStore()
        # object id -> the tenant of the account that made it
        self.owner: dict[str, str] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.balance_transactions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.idempotency.reset()
        self.owner.clear()
        self.payment_intents.clear()
        self.charges.clear()
        self.refunds.clear()
        self.balance_transactions.clear()
        self.events.clear()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/payment_intents", self.post(self.create_pi), methods=["POST"]),
            Route("/v1/payment_intents/search", self.get(self.search_pi), methods=["GET"]),
            Route("/v1/payment_intents/{id}", self.get(self.retrieve_pi), methods=["GET"]),
            Route("/v1/payment_intents/{id}", self.post(self.update_pi), methods=["POST"]),
            Route("/v1/payment_intents/{id}/confirm", self.post(self.confirm_pi), methods=["POST"]),
            Route("/v1/payment_intents/{id}/capture", self.post(self.capture_pi), methods=["POST"]),
            Route("/v1/payment_intents/{id}/cancel", self.post(self.cancel_pi), methods=["POST"]),
            Route("/v1/charges/{id}", self.get(self.retrieve_charge), methods=["GET"]),
            Route("/v1/refunds", self.post(self.create_refund), methods=["POST"]),
            Route("/v1/refunds", self.get(self.list_refunds), methods=["GET"]),
            Route("/v1/refunds/{id}", self.get(self.retrieve_refund), methods=["GET"]),
            Route(
                "/v1/balance_transactions",
                self.get(self.list_balance_transactions),
                methods=["GET"],
            ),
            Route(
                "/v1/balance_transactions/{id}",
                self.get(self.retrieve_balance_transaction),
                methods=["GET"],
            ),
            Route("/v1/events", self.get(self.list_events), methods=["GET"]),
            Route("/v1/events/{id}", self.get(self.retrieve_event), methods=["GET"]),
        ]

    # -- request plumbing -------------------------------------------------------------

    def _api_key(self, request: Request) -> tuple[str, SandboxAccount]:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip()
        account = (
            self.accounts.by_stripe_key(key) if key.startswith(("sk_test_", "rk_test_")) else None
        )
        if account is None:
            shown = f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else "****"
            raise StripeApiError(
                401,
                f"Invalid API Key provided: {shown}",
                type_="invalid_request_error",
                executed=False,
            )
        return key, account

    def _own(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.owner[obj["id"]] = current_account().tenant
        return obj

    def _mine(self, obj_id: str) -> bool:
        return self.owner.get(obj_id) == current_account().tenant

    def _owned(self, store: dict[str, dict[str, Any]], obj_id: str, noun: str) -> dict[str, Any]:
        """The caller's own object ``obj_id`` of ``store``; another account's or none is 404."""
        obj = store.get(obj_id)
        if obj is None or not self._mine(obj["id"]):
            raise StripeApiError(
                404, f"No such {noun}: '{obj_id}'", code="resource_missing", param="id"
            )
        return obj

    def _newest_mine(self, store: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The caller's own objects of ``store``, newest first (the last made first within
        a second)."""
        rows = [r for r in reversed(store.values()) if self._mine(r["id"])]
        rows.sort(key=lambda r: r["created"], reverse=True)
        return rows

    @staticmethod
    def _error_response(exc: StripeApiError) -> Response:
        return JSONResponse({"error": exc.body}, status_code=exc.status)

    def get(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                _, account = self._api_key(request)
                await processing_delay(request)
                with acting_as(account):
                    return JSONResponse(
                        handler(request, dict(request.query_params), request.query_params)
                    )
            except StripeApiError as exc:
                return self._error_response(exc)

        return endpoint

    def post(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            request_id = objects.new_id("req")
            try:
                api_key, account = self._api_key(request)
            except StripeApiError as exc:
                return self._error_response(exc)
            raw = await request.body()
            key = request.headers.get("idempotency-key")
            fingerprint = (request.method, request.url.path, pairs_fingerprint(raw))
            if key:
                decision = self.idempotency.begin(api_key, key, fingerprint)
                if decision.outcome is Outcome.MISMATCH:
                    return self._error_response(
                        StripeApiError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type_="idempotency_error",
                            executed=False,
                        )
                    )
                if decision.outcome is Outcome.IN_FLIGHT:
                    return self._error_response(
                        StripeApiError(
                            409,
                            "There is currently another in-progress request using this idempotent "
                            f"key '{key}'. Please try again later.",
                            type_="idempotency_error",
                            executed=False,
                        )
                    )
                if decision.outcome is Outcome.REPLAY and decision.response is not None:
                    rec = decision.response
                    return JSONResponse(
                        rec.body,
                        status_code=rec.status,
                        headers={**rec.headers, "Idempotent-Replayed": "true"},
                    )
            ctx = {
                "request_id": request_id,
                "idempotency_key": key,
                "api_version": request.headers.get("stripe-version", DEFAULT_API_VERSION),
            }
            try:
                await processing_delay(request)
                with acting_as(account):
                    status, body = 200, handler(request, decode_form(raw), ctx)
            except StripeApiError as exc:
                if not exc.executed:
                    if key:
                        self.idempotency.abandon(api_key, key)
                    return self._error_response(exc)
                status, body = exc.status, {"error": exc.body}
            except BaseException:
                if key:
                    self.idempotency.abandon(api_key, key)
                raise
            headers = {"Request-Id": request_id}
            if key:
                headers["Idempotency-Key"] = key
                self.idempotency.finish(api_key, key, RecordedResponse(status, body, headers))
            return JSONResponse(body, status_code=status, headers=headers)

        return endpoint

    def _emit(self, type_: str, obj: dict[str, Any], ctx: dict[str, Any]) -> None:
        evt = objects.event(
            type_=type_,
            obj=dict(obj),
            request_id=ctx.get("request_id"),
            idempotency_key=ctx.get("idempotency_key"),
            api_version=ctx["api_version"],
        )
        self.events.append(self._own(evt))
        self.dispatcher.emit("stripe", type_, evt["id"], evt, current_account())

    def _pi(self, pi_id: str) -> dict[str, Any]:
        pi = self.payment_intents.get(pi_id)
        if pi is None or not self._mine(pi_id):
            raise StripeApiError(
                404,
                f"No such payment_intent: '{pi_id}'",
                code="resource_missing",
                param="intent",
                executed=False,
            )
        return pi

    # -- PaymentIntents ---------------------------------------------------------------

    def create_pi(
        self, request: Request, params: dict[str, Any], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        amount = _int_param(params, "amount", required=True)
        assert amount is not None
        currency = str(params.get("currency") or "")
        if not re.fullmatch(r"[a-zA-Z]{3}", currency):
            raise _invalid(
                "Missing required param: currency.", param="currency", code="parameter_missing"
            )
        capture_method = str(params.get("capture_method") or "automatic")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise _invalid(f"Invalid capture_method: {capture_method}", param="capture_method")
        pm = params.get("payment_method")
        pm_types = params.get("payment_method_types") or ["card"]
        pi = objects.payment_intent(
            amount=amount,
            currency=currency.lower(),
            capture_method=capture_method,
            payment_method=str(pm) if pm else None,
            metadata=_metadata(params),
            description=params.get("description"),
            receipt_email=params.get("receipt_email"),
            payment_method_types=list(pm_types) if isinstance(pm_types, list) else ["card"],
        )
        self.payment_intents[pi["id"]] = self._own(pi)
        self._emit("payment_intent.created", pi, ctx)
        if str(params.get("confirm", "false")).lower() == "true":
            self._confirm(pi, None, ctx)
        return pi

    def retrieve_pi(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        return self._pi(request.path_params["id"])

    def update_pi(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        """Stripe's update, for metadata: keys merge, a key set to "" is removed."""
        pi = self._pi(request.path_params["id"])
        unsupported = sorted(set(params) - {"metadata", "description"})
        if unsupported:
            raise _invalid(f"Received unknown parameter: {unsupported[0]}", param=unsupported[0])
        for key, value in _metadata(params).items():
            if value == "":
                pi["metadata"].pop(key, None)
            else:
                pi["metadata"][key] = value
        if "description" in params:
            pi["description"] = str(params["description"]) or None
        return pi

    def search_pi(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        clauses = _search_matcher(str(params.get("query", "")))
        limit = min(int(params.get("limit", 10)), 100)

        def matches(pi: dict[str, Any]) -> bool:
            for field, key, value in clauses:
                if field == "metadata":
                    if key is None or pi["metadata"].get(key) != value:
                        return False
                elif str(pi.get(field)) != value:
                    return False
            return True

        found = [
            pi
            for pi in reversed(self.payment_intents.values())
            if self._mine(pi["id"]) and matches(pi)
        ]
        return {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }

    def confirm_pi(
        self, request: Request, params: dict[str, Any], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        pi = self._pi(request.path_params["id"])
        pm = params.get("payment_method")
        return self._confirm(pi, str(pm) if pm else None, ctx)

    def _confirm(self, pi: dict[str, Any], pm: str | None, ctx: dict[str, Any]) -> dict[str, Any]:
        if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeApiError(
                400,
                "This PaymentIntent's status is "
                f"{pi['status']}, but it must be requires_confirmation or requires_payment_method.",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": dict(pi)},
            )
        pm = pm or pi["payment_method"]
        if pm is None:
            raise StripeApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": dict(pi)},
            )
        if pm not in objects.TEST_PAYMENT_METHODS:
            raise StripeApiError(
                400,
                f"No such PaymentMethod: '{pm}'",
                code="resource_missing",
                param="payment_method",
            )
        pi["payment_method"] = pm
        failure = objects.TEST_PAYMENT_METHODS[pm]
        manual = pi["capture_method"] == "manual"
        ch = objects.charge(pi, captured=not manual, failure=failure)
        self.charges[ch["id"]] = self._own(ch)
        pi["latest_charge"] = ch["id"]
        if failure is not None:
            code, decline_code, message = failure
            pi["status"] = "requires_payment_method"
            pi["payment_method"] = None
            error = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "charge": ch["id"],
                "payment_method": {"id": pm, "object": "payment_method", "type": "card"},
            }
            pi["last_payment_error"] = error
            self._emit("charge.failed", ch, ctx)
            self._emit("payment_intent.payment_failed", pi, ctx)
            raise StripeApiError(
                402,
                message,
                type_="card_error",
                code=code,
                extra={
                    "decline_code": decline_code,
                    "charge": ch["id"],
                    "payment_intent": dict(pi),
                    "doc_url": f"https://stripe.com/docs/error-codes/{code}",
                },
            )
        pi["last_payment_error"] = None
        self._emit("charge.succeeded", ch, ctx)
        if manual:
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self._emit("payment_intent.amount_capturable_updated", pi, ctx)
        else:
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            self._charge_settled(ch, pi["amount"])
            self._emit("payment_intent.succeeded", pi, ctx)
            if pm == "pm_card_createDispute":
                ch["disputed"] = True
                self._emit("charge.dispute.created", objects.dispute(ch=ch), ctx)
        return pi

    def capture_pi(
        self, request: Request, params: dict[str, Any], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        pi = self._pi(request.path_params["id"])
        amount = _int_param(params, "amount_to_capture") or pi["amount_capturable"]
        if pi["status"] != "requires_capture":
            raise StripeApiError(
                400,
                "This PaymentIntent could not be captured because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses "
                "may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": dict(pi)},
            )
        if amount > pi["amount_capturable"]:
            raise StripeApiError(
                400,
                "The amount to capture must be less than or equal to the amount capturable.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        ch = self.charges[pi["latest_charge"]]
        ch["captured"] = True
        ch["amount_captured"] = amount
        self._charge_settled(ch, amount)
        pi["amount_received"] = amount
        pi["amount_capturable"] = 0
        pi["status"] = "succeeded"
        self._emit("charge.captured", ch, ctx)
        self._emit("payment_intent.succeeded", pi, ctx)
        return pi

    def cancel_pi(
        self, request: Request, params: dict[str, Any], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        pi = self._pi(request.path_params["id"])
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ):
            raise _invalid(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        if pi["status"] not in CANCELABLE:
            raise StripeApiError(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. "
                "Only a PaymentIntent with one of the following statuses may be canceled: "
                + ", ".join(sorted(CANCELABLE))
                + ".",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": dict(pi)},
            )
        if pi["status"] == "requires_capture":  # the authorization is released
            ch = self.charges[pi["latest_charge"]]
            ch["amount_refunded"] = ch["amount"]
            ch["refunded"] = True
        pi["status"] = "canceled"
        pi["amount_capturable"] = 0
        pi["canceled_at"] = objects.now()
        pi["cancellation_reason"] = reason
        self._emit("payment_intent.canceled", pi, ctx)
        return pi

    # -- Charges, refunds, events -----------------------------------------------------

    def retrieve_charge(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        return self._owned(self.charges, request.path_params["id"], "charge")

    def create_refund(
        self, request: Request, params: dict[str, Any], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        amount = _int_param(params, "amount")
        reason = params.get("reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
        ):
            raise _invalid(f"Invalid reason: {reason}", param="reason")
        if params.get("payment_intent"):
            pi = self._pi(str(params["payment_intent"]))
            ch = self.charges.get(pi["latest_charge"] or "")
        elif params.get("charge"):
            ch = self.charges.get(str(params["charge"]))
            if ch is None or not self._mine(ch["id"]):
                raise StripeApiError(
                    404,
                    f"No such charge: '{params['charge']}'",
                    code="resource_missing",
                    param="charge",
                    executed=False,
                )
        else:
            raise _invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        if ch is None or not ch["captured"]:
            raise StripeApiError(
                400,
                "This charge has not been captured and cannot be refunded; cancel the "
                "PaymentIntent to release the authorization instead.",
                code="charge_not_refundable",
            )
        remaining = ch["amount_captured"] - ch["amount_refunded"]
        if remaining <= 0:
            raise StripeApiError(
                400, f"Charge {ch['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = amount if amount is not None else remaining
        if amount > remaining:
            raise StripeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                code="amount_too_large",
                param="amount",
            )
        re_ = objects.refund(ch=ch, amount=amount, reason=reason, metadata=_metadata(params))
        self.refunds[re_["id"]] = self._own(re_)
        self._record_balance(
            objects.balance_transaction(
                txn_id=re_["balance_transaction"],
                amount=-amount,
                currency=ch["currency"],
                type_="refund",
                source=re_["id"],
            )
        )
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
        ch["refunds"]["data"].insert(0, re_)
        self._emit("refund.created", re_, ctx)
        self._emit("charge.refunded", ch, ctx)
        return re_

    def retrieve_refund(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        return self._owned(self.refunds, request.path_params["id"], "refund")

    def list_refunds(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        """``GET /v1/refunds``: newest first; ``payment_intent``, ``charge``, ``created``
        (exact or ``created[gt|gte|lt|lte]``), ``limit`` (1-100) and ``starting_after``."""
        limit = _list_limit(params)
        selected = self._newest_mine(self.refunds)
        pi_id = params.get("payment_intent")
        if pi_id:
            self._pi(str(pi_id))  # 404 for an unknown intent, as Stripe does
            selected = [r for r in selected if r["payment_intent"] == pi_id]
        if params.get("charge"):
            selected = [r for r in selected if r["charge"] == params["charge"]]
        selected = _after(_created_within(selected, params), params, "refund")
        return _list_page(selected, limit, "/v1/refunds")

    # -- balance transactions -----------------------------------------------------------

    def _record_balance(self, txn: dict[str, Any]) -> None:
        self.balance_transactions[txn["id"]] = self._own(txn)

    def _charge_settled(self, ch: dict[str, Any], amount: int) -> None:
        """The captured charge's balance transaction: gross ``amount``, the card fee."""
        txn = objects.balance_transaction(
            txn_id=objects.new_id("txn"),
            amount=amount,
            currency=ch["currency"],
            type_="charge",
            source=ch["id"],
            fee=objects.card_fee(amount),
        )
        ch["balance_transaction"] = txn["id"]
        self._record_balance(txn)

    def list_balance_transactions(
        self, request: Request, params: dict[str, Any], _: Any
    ) -> dict[str, Any]:
        """``GET /v1/balance_transactions``: newest first; ``created`` (exact or
        ``created[gt|gte|lt|lte]``), ``type``, ``source``, ``currency``, ``limit`` (1-100)
        and ``starting_after``."""
        limit = _list_limit(params)
        selected = self._newest_mine(self.balance_transactions)
        for name in ("type", "source", "currency"):
            if params.get(name):
                selected = [t for t in selected if t[name] == params[name]]
        selected = _after(_created_within(selected, params), params, "balance transaction")
        return _list_page(selected, limit, "/v1/balance_transactions")

    def retrieve_balance_transaction(
        self, request: Request, params: dict[str, Any], _: Any
    ) -> dict[str, Any]:
        return self._owned(
            self.balance_transactions, request.path_params["id"], "balance transaction"
        )

    def list_events(self, request: Request, params: dict[str, Any], query: Any) -> dict[str, Any]:
        limit = max(1, min(int(params.get("limit", 10)), 100))
        types = [v for k, v in query.multi_items() if k.startswith("types")]
        single = params.get("type")
        events = _after([e for e in reversed(self.events) if self._mine(e["id"])], params, "event")

        def wanted(evt: dict[str, Any]) -> bool:
            if single:
                pattern = re.escape(single).replace(r"\*", ".*")
                if not re.fullmatch(pattern, evt["type"]):
                    return False
            return not types or evt["type"] in types

        return _list_page([e for e in events if wanted(e)], limit, "/v1/events")

    def retrieve_event(self, request: Request, params: dict[str, Any], _: Any) -> dict[str, Any]:
        for evt in self.events:
            if evt["id"] == request.path_params["id"] and self._mine(evt["id"]):
                return evt
        raise StripeApiError(
            404,
            f"No such event: '{request.path_params['id']}'",
            code="resource_missing",
            param="id",
        )
