"""The one settings object.

Every knob lives here, read from the environment with the ``AUTOBIZ_`` prefix (nested
sections use ``__``: ``AUTOBIZ_STRIPE__API_BASE``). Secrets are ``SecretStr`` so they never
show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class CodecServerAuth(StrEnum):
    """How the codec server tells who may decode (autobiz.codec_server_auth)."""

    NONE = "none"
    TOKEN = "token"  # noqa: S105 (a mode, not a secret)
    OIDC = "oidc"


class TemporalSettings(BaseModel):
    """Where the Temporal frontend is, how to authenticate to it, and how the embedded dev
    server is laid out.

    A setting given here (``AUTOBIZ_TEMPORAL__...``) wins; one not given falls back to the
    Temporal SDK's environment configuration (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
    ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*``, a ``TEMPORAL_PROFILE`` of the TOML file), and
    then to the local dev server (``host:port``, plaintext). See autobiz.temporal_client.
    """

    model_config = {"populate_by_name": True}

    host: str = Field(
        default="127.0.0.1", description="Host of the embedded dev server (and its UI)."
    )
    port: int = Field(default=7233, description="The dev server's frontend (gRPC) port.")
    ui_port: int = Field(default=8233, description="The dev server's Web UI port.")
    http_port: int = Field(default=7243, description="The dev server's HTTP API port.")
    metrics_port: int = Field(default=7244, description="The dev server's metrics port.")
    namespace: str = Field(
        default="default",
        description="The Temporal namespace; unset here: TEMPORAL_NAMESPACE, else ``default``.",
    )
    task_queue: str = Field(
        default="autobiz",
        description="The task queue the worker polls and the flows are started on.",
    )
    # A remote frontend (``ns.acct.tmprl.cloud:7233``); wins over host/port and TEMPORAL_*.
    address_override: str | None = Field(default=None, alias="address")
    # Temporal Cloud API key: sent as ``authorization: Bearer``; implies TLS.
    api_key: SecretStr | None = None
    # TLS on/off; None: decided by the TLS paths below, then TEMPORAL_*, then the API key.
    tls: bool | None = None
    tls_client_cert_path: Path | None = None  # mTLS: the client certificate (PEM)
    tls_client_key_path: Path | None = None  # mTLS: its private key (PEM)
    tls_server_ca_cert_path: Path | None = None  # a private CA for the server's certificate
    tls_server_name: str | None = None  # SNI / certificate name, if not the address's host

    @property
    def dev_address(self) -> str:
        """The embedded dev server's frontend (what ``autobiz dev up`` starts)."""
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """The AutoBiz-configured frontend: ``address`` if set, else the dev server (the
        one actually dialled may come from TEMPORAL_*; see temporal_client.resolve)."""
        return self.address_override or self.dev_address

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}/namespaces/{self.namespace}/workflows"


class PostgresSettings(BaseModel):
    """The embedded PostgreSQL used when no ``AUTOBIZ_DATABASE_URL`` is given."""

    host: str = Field(default="127.0.0.1", description="Host of the embedded PostgreSQL.")
    port: int = Field(default=5433, description="Port of the embedded PostgreSQL.")
    app_role: str = Field(
        default="autobiz_app",
        description="The application role (no table ownership, no BYPASSRLS).",
    )
    app_password: SecretStr | None = Field(
        default=None, description="The application role's password; None: the dev stack's own."
    )
    pool_min_size: int = Field(default=1, description="Connections the pool keeps open.")
    pool_max_size: int = Field(default=10, description="Most connections the pool opens.")


class StripeSettings(BaseModel):
    api_base: str = Field(
        default="http://127.0.0.1:8766/stripe",
        description="Stripe's API base URL; unset: the sandbox's ``/stripe``.",
    )
    api_key: SecretStr = Field(
        default=SecretStr("sk_test_autobiz_sandbox"),
        description="The default tenant's Stripe secret key.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr("whsec_autobiz_sandbox"),
        description="The default tenant's Stripe webhook signing secret.",
    )
    timeout_seconds: float = Field(
        default=10.0, description="Per-request timeout of the Stripe client."
    )


class ShopifySettings(BaseModel):
    # ``{shop}`` is replaced by the tenant's shop domain (``https://{shop}`` at Shopify).
    api_base: str = "http://127.0.0.1:8766/shopify/{shop}"
    shop_domain: str = Field(
        default="autobiz-demo.myshopify.com", description="The default tenant's shop domain."
    )
    # Pinned. 2026-01 is the first version whose refundCreate takes @idempotent(key:).
    api_version: str = "2026-01"
    access_token: SecretStr = Field(
        default=SecretStr("shpat_autobiz_sandbox"),
        description="The default tenant's Admin API access token.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr("shpss_autobiz_sandbox"),
        description="The default tenant's webhook HMAC secret.",
    )
    webhook_previous_secret: SecretStr | None = Field(
        default=None, description="The secret before a rotation, still accepted while set."
    )
    timeout_seconds: float = Field(
        default=10.0, description="Per-request timeout of the Shopify client."
    )
    # Longest the client waits for the cost bucket to refill before it gives up with a
    # retryable RateLimited (Temporal then backs off).
    max_throttle_wait_seconds: float = 2.0


class PrintfulSettings(BaseModel):
    api_base: str = Field(
        default="http://127.0.0.1:8766/printful",
        description="Printful's API base URL; unset: the sandbox's ``/printful``.",
    )
    api_token: SecretStr = Field(
        default=SecretStr("pf_autobiz_sandbox"),
        description="The default tenant's Printful API token.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr("pfwh_autobiz_sandbox"),
        description="The default tenant's Printful webhook secret.",
    )
    store_id: str = Field(default="1", description="The default tenant's Printful store id.")
    timeout_seconds: float = Field(
        default=10.0, description="Per-request timeout of the Printful client."
    )


class SendGridSettings(BaseModel):
    api_base: str = Field(
        default="http://127.0.0.1:8766/sendgrid",
        description="SendGrid's API base URL; unset: the sandbox's ``/sendgrid``.",
    )
    api_key: SecretStr = Field(
        default=SecretStr("SG.autobiz_sandbox.key"),
        description="The default tenant's SendGrid API key.",
    )
    from_email: str = Field(
        default="shop@autobiz.test", description="The sender address of every message."
    )
    timeout_seconds: float = Field(
        default=10.0, description="Per-request timeout of the SendGrid client."
    )
    # None: on everywhere except production (mail is accepted, never delivered).
    sandbox_mode: bool | None = None
    # One dynamic template per message kind.
    templates: dict[str, str] = Field(
        default_factory=lambda: {
            "order_confirmation": "d-autobiz-order-confirmation",
            "shipping_confirmation": "d-autobiz-shipping-confirmation",
            "refund_issued": "d-autobiz-refund-issued",
            "order_cancelled": "d-autobiz-order-cancelled",
            "payment_failed": "d-autobiz-payment-failed",
            "dunning_reminder": "d-autobiz-dunning-reminder",
            "payment_recovered": "d-autobiz-payment-recovered",
            "order_cancelled_unpaid": "d-autobiz-order-cancelled-unpaid",
            "wismo_reply": "d-autobiz-wismo-reply",
            "daily_report": "d-autobiz-daily-report",
            "approval_reminder": "d-autobiz-approval-reminder",
            "approval_escalated": "d-autobiz-approval-escalated",
            "approval_expired": "d-autobiz-approval-expired",
            "ops_alert": "d-autobiz-ops-alert",
            "fulfillment_problem": "d-autobiz-fulfillment-problem",
            "reconciliation_drift": "d-autobiz-reconciliation-drift",
        }
    )


class LlmSettings(BaseModel):
    """The LLM client (``llm.complete``): the offline template model unless configured."""

    provider: Literal["template", "openai_compatible"] = Field(
        default="template",
        description="``template``: the offline model; ``openai_compatible``: the one at base_url.",
    )
    # An OpenAI-compatible server (OpenAI, vLLM, Ollama); ``/v1/chat/completions`` is added.
    base_url: str = "http://127.0.0.1:11434"
    # The models this worker serves; a flow pins one of them (and the fallback) per run.
    primary_model: str = "template-v1"
    fallback_model: str | None = Field(
        default=None, description="The model tried when the primary fails; None: no fallback."
    )
    # Per model attempt: primary and fallback together stay inside the tool's 60 s.
    timeout_seconds: float = Field(default=20.0, gt=0, le=29)
    # Per tenant in the secrets (``llm_api_key``); this one is the default tenant's.
    api_key: SecretStr | None = None


class SandboxSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Host the provider sandbox listens on.")
    port: int = Field(
        default=8766,
        description="Port the provider sandbox listens on (the providers' api_base follow it).",
    )
    # Base URL webhooks go to (``{target}/stripe``, ``/shopify``, ``/printful``); settable
    # at run time through ``POST /_control/webhooks``. None: events wait until one is set.
    webhook_target: str | None = None
    # Extra merchant accounts the sandbox hosts, in the secrets-file shape
    # ({tenant: {stripe_api_key: ..., shopify_shop_domain: ..., ...}}); the settings'
    # provider credentials are always one account (ingress.default_tenant's).
    accounts_file: Path | None = None
    webhook_max_attempts: int = Field(
        default=5, description="Deliveries of one webhook before the sandbox gives up."
    )
    webhook_retry_seconds: float = Field(
        default=0.5, description="Wait between webhook delivery attempts."
    )
    # Bearer token for the control API (/_control). None: the sandbox makes one at each
    # start and writes it to $AUTOBIZ_HOME/sandbox/control_token (0600), where clients
    # read it (sandbox.control_auth).
    control_token: SecretStr | None = None


class IngressSettings(BaseModel):
    """The webhook receiver (`autobiz ingress`, DESIGN §7)."""

    host: str = Field(default="127.0.0.1", description="Host the webhook ingress listens on.")
    port: int = Field(default=8780, description="Port the webhook ingress listens on.")
    # Largest body accepted; checked on Content-Length before any hashing (413).
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    stripe_tolerance_seconds: int = Field(
        default=300, gt=0, description="Largest age of a Stripe signature's timestamp."
    )
    # Events held by the ordering gate are released (flagged) after this long.
    hold_timeout_seconds: float = Field(default=60.0, gt=0)
    # How long a request waits for a database connection before answering 503.
    db_timeout_seconds: float = Field(default=3.0, gt=0)
    relay_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the relay looks for events to hand off."
    )
    relay_batch_size: int = Field(
        default=50, gt=0, description="Events the relay hands off per poll."
    )
    # A hand-off that keeps failing is dead-lettered after this many attempts.
    relay_max_attempts: int = Field(default=50, gt=0)
    handoff_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one hand-off to Temporal."
    )
    # The tenant the settings-level webhook secrets (stripe/shopify/printful) belong to.
    default_tenant: str = "demo-shop"
    # Optional YAML/JSON file {tenant: {stripe: [...], shopify: [...], printful: [...],
    # shop_domains: [...]}} with per-tenant webhook secrets.
    secrets_file: Path | None = None
    # Where operators reach the ingress (the daily closeout's report links), e.g.
    # https://ops.example.com behind a proxy; None: http://{host}:{port}.
    public_url: str | None = None


class HygieneSettings(BaseModel):
    """Outside production, clients only reach these hosts and mail only these recipients."""

    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Hosts clients may reach outside production.",
    )
    allowed_email_domains: list[str] = Field(
        default_factory=lambda: ["autobiz.test", "example.com"],
        description="Recipient domains mail may go to outside production.",
    )
    allowed_email_recipients: list[str] = Field(
        default_factory=list, description="Single recipients mail may go to outside production."
    )


class KernelSettings(BaseModel):
    """The tool-call kernel (DESIGN §3): payload encryption, idempotency, prices."""

    # Payload codec keys: key id -> base64 of 32 random bytes (AES-256-GCM). New payloads
    # use ``codec_active_key``; old ids stay listed so history written with them decodes.
    # The ``dev-`` key is public and refused in production.
    codec_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {"dev-1": SecretStr("9gMCCvz9Mx9xqc9vTsPOzf/jN2LO849n6OWJM880BZw=")}
    )
    codec_active_key: str = Field(
        default="dev-1",
        description="The id (in ``codec_keys``) of the key new payloads are encrypted with.",
    )
    # `autobiz codec-server`: the Temporal Web UI (and `temporal --codec-endpoint`) decode
    # through it; who may is ``codec_server_auth`` (autobiz.codec_server_auth).
    codec_server_host: str = Field(
        default="127.0.0.1",
        description="Bind address of ``autobiz codec-server`` (auth ``none``: loopback only).",
    )
    codec_server_port: int = Field(default=8235, description="Port of ``autobiz codec-server``.")
    codec_server_auth: CodecServerAuth | None = Field(
        default=None,
        description="Who may decode: ``none`` (loopback, not production), ``token`` (the "
        "static bearer token), ``oidc`` (the Web UI user's access token, checked against the "
        "issuer's keys). Unset: ``token`` when a token is set, else ``none``.",
    )
    codec_server_token: SecretStr | None = Field(
        default=None,
        description="Static bearer token (auth ``token``), e.g. for ``temporal --codec-auth``.",
    )
    codec_server_oidc_issuer: str | None = Field(
        default=None,
        description="Auth ``oidc``: the issuer (``iss``) of the access tokens the UI forwards.",
    )
    codec_server_oidc_audience: str | None = Field(
        default=None, description="Auth ``oidc``: the audience (``aud``) a token must name."
    )
    codec_server_oidc_jwks_url: str | None = Field(
        default=None,
        description="Auth ``oidc``: the issuer's JWKS; unset: the ``jwks_uri`` of its "
        "``/.well-known/openid-configuration``.",
    )
    codec_server_oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="Auth ``oidc``: signature algorithms accepted (asymmetric ones only).",
    )
    codec_server_oidc_required_claim: str | None = Field(
        default=None,
        description="Auth ``oidc``: a claim the token must carry (e.g. ``groups``, ``scope``).",
    )
    codec_server_oidc_required_value: str | None = Field(
        default=None,
        description="Auth ``oidc``: the value that claim must hold (one of a list, or a word "
        "of a space-separated string).",
    )
    codec_server_oidc_leeway_seconds: float = Field(
        default=30.0, ge=0, description="Auth ``oidc``: clock skew allowed on ``exp``/``nbf``."
    )
    codec_server_cors_origins: list[str] = Field(
        default_factory=list,
        description="Web UI origins allowed to call the codec server, besides the dev "
        "server UI's own (``http://127.0.0.1:<ui_port>``, ``http://localhost:<ui_port>``; "
        "those not in production).",
    )
    idempotency_window_hours: int = Field(
        default=24, gt=0, description="How long a tool call's idempotency key is remembered."
    )
    # A YAML/JSON price table (kernel.cost.PriceTable); None: the built-in table.
    price_table_path: Path | None = None


class WorkerSettings(BaseModel):
    """`autobiz worker`: concurrency, shutdown grace and (optional) Prometheus metrics."""

    max_concurrent_activities: int = Field(
        default=100, gt=0, description="Activities one worker runs at once."
    )
    max_concurrent_workflow_tasks: int = Field(
        default=100, gt=0, description="Workflow tasks one worker runs at once."
    )
    # How long in-flight activities get to finish after SIGTERM before they are cancelled.
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    # "127.0.0.1:9464" serves the SDK's runtime metrics there; None: no endpoint.
    metrics_bind: str | None = None
    metrics_refresh_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often a worker with ``metrics_bind`` re-reads the gauges kept in "
        "the database (approval backlog, open incidents, open drift; docs/metrics.md).",
    )
    # Watch list for the risk tool (ISO 3166 alpha-2).
    high_risk_countries: list[str] = Field(default_factory=list)
    # At start, create or update each tenant's Reconciliation schedule from its config
    # (idempotent; several workers may do it at once).
    ensure_schedules: bool = True


class BreakerSettings(BaseModel):
    """Circuit breakers per provider account (autobiz.breakers): when the workers stop
    calling a failing provider, and how they find out it is back."""

    enabled: bool = Field(
        default=True, description="Guard every tool activity of ``providers`` with a breaker."
    )
    providers: list[str] = Field(
        default_factory=lambda: ["stripe", "shopify", "printful", "sendgrid", "llm"],
        description="Providers with a breaker, one per tenant (each tenant's own account).",
    )
    failure_threshold: int = Field(
        default=5, ge=1, description="Failures in one window that open the breaker (at least)."
    )
    failure_rate: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of the window's calls that must have failed too (0: count only).",
    )
    window_seconds: float = Field(
        default=60.0, gt=0, description="How long one counting window of a closed breaker is."
    )
    open_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long an open breaker refuses calls before it lets a probe through.",
    )
    half_open_probes: int = Field(
        default=1, ge=1, description="Probe calls a half-open breaker lets through at once."
    )
    probe_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="After this long an unreported probe (its worker died) is forgotten.",
    )
    count_rate_limits: bool = Field(
        default=True,
        description="Whether a 429 counts as a failure (the account is saturated), not only "
        "5xx, timeouts and broken connections.",
    )


class RateLimitSettings(BaseModel):
    """Provider rate limits per provider account, shared by every worker process
    (autobiz.ratelimits): ``AUTOBIZ_RATE_LIMIT__STRIPE_PER_SECOND`` and so on. The defaults
    are the published limits; ``headroom`` and ``burst_margin_seconds`` keep the workers a
    little under them."""

    enabled: bool = Field(
        default=True,
        description="Take budget from the shared bucket (PostgreSQL) before each request.",
    )
    stripe_per_second: float | None = Field(
        default=25.0,
        gt=0,
        description="Stripe requests per second, reads and writes together (test mode: 25; "
        "live mode: 100). None: no limit.",
    )
    shopify_bucket_size: float | None = Field(
        default=1000.0,
        gt=0,
        description="Shopify GraphQL cost bucket, in query cost points (standard plans: "
        "1000). None: no limit.",
    )
    shopify_restore_rate: float = Field(
        default=50.0, gt=0, description="Shopify cost points restored per second (standard: 50)."
    )
    printful_per_minute: float | None = Field(
        default=120.0, gt=0, description="Printful requests per minute (120). None: no limit."
    )
    sendgrid_per_second: float | None = Field(
        default=None,
        gt=0,
        description="SendGrid mail/send requests per second. SendGrid publishes no number "
        "for it (answers carry X-RateLimit-* headers), so None: no limit.",
    )
    headroom: float = Field(
        default=0.05,
        ge=0,
        lt=0.5,
        description="Share of each rate left unused, so that the workers stay under the "
        "provider's clock as well as their own.",
    )
    burst_margin_seconds: float = Field(
        default=0.2,
        ge=0,
        le=5,
        description="Each bucket is kept this many seconds of refill below the provider's: "
        "requests granted together reach it some milliseconds apart, and this absorbs it.",
    )
    max_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        le=15,
        description="Longest wait for budget inside the activity (keep it plus the provider "
        "timeout under the tools' 30 s start-to-close); a longer one fails the attempt fast "
        "(RATE_LIMIT_WAIT) with the wait as Temporal's next retry delay.",
    )


class LogSettings(BaseModel):
    """The processes' log lines (autobiz.logs): ``AUTOBIZ_LOG__FORMAT``, ``__LEVEL``."""

    # "json": one object per line; "text": readable. None: JSON in production, else text.
    format: Literal["json", "text"] | None = None
    level: str | None = None  # None: ``log_level``


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTOBIZ_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    env: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="The environment; production refuses the sandbox, dev keys, public defaults.",
    )
    home: Path = Field(
        default=Path(".autobiz"),
        description="Where local state lives (Temporal's SQLite, PostgreSQL data, logs, pids).",
    )
    # Owner connection: runs migrations and the explicitly named admin path.
    database_url: SecretStr | None = None
    # Application connection (a role with no table, no BYPASSRLS). Derived from
    # ``database_url`` with the app role swapped in when not given.
    app_database_url: SecretStr | None = None
    # Per-tenant provider credentials: a YAML/JSON file {tenant: {name: value}} (names in
    # autobiz.providers.tenant_clients.CREDENTIALS and *_webhook_secret), read again when it
    # changes; values are cached this long, so a rotation takes effect within it.
    secrets_file: Path | None = None
    secrets_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long the secrets file's values are cached (a rotation takes this long).",
    )
    # The tenants' BusinessConfig directory. A relative path is resolved against the
    # current directory when the settings are read (so every process the stack starts is
    # handed an absolute path); an error about it names the absolute path it tried.
    config_dir: Path = Field(default=Path("config"), validate_default=True)
    # `autobiz demo` runs the stack's worker on this one: the demo tenant with durations
    # of seconds (approval timeouts, dunning), so a business day takes about a minute.
    # Defaults to the copy shipped inside the package, so it works from any directory.
    demo_config_dir: Path = Field(
        default_factory=lambda: packaged_demo_config_dir(), validate_default=True
    )
    log_level: str = Field(
        default="INFO",
        description="Log level of the processes (``log.level`` overrides it for log lines).",
    )

    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    shopify: ShopifySettings = Field(default_factory=ShopifySettings)
    printful: PrintfulSettings = Field(default_factory=PrintfulSettings)
    sendgrid: SendGridSettings = Field(default_factory=SendGridSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    hygiene: HygieneSettings = Field(default_factory=HygieneSettings)
    kernel: KernelSettings = Field(default_factory=KernelSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @field_validator("config_dir", "demo_config_dir", mode="after")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().absolute()

    @model_validator(mode="after")
    def _providers_default_to_the_sandbox(self) -> Settings:
        """A provider whose ``api_base`` is not set talks to the sandbox where the sandbox
        settings put it (so moving the sandbox's port moves every client with it)."""
        sandbox = f"http://{self.sandbox.host}:{self.sandbox.port}"
        for name in ("stripe", "shopify", "printful", "sendgrid"):
            section = getattr(self, name)
            if "api_base" not in section.model_fields_set:
                shop = "/{shop}" if name == "shopify" else ""
                section.api_base = f"{sandbox}/{name}{shop}"
        return self

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION


def packaged_demo_config_dir() -> Path:
    """The demo tenants' configs shipped as package data (``autobiz/devstack/demo_config``;
    ``config/demo`` in a checkout is a link to it)."""
    return Path(str(files("autobiz.devstack") / "demo_config"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
