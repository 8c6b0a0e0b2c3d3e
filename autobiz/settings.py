"""The one settings object.

Every knob lives here, read from the environment with the ``AUTOBIZ_`` prefix (nested
sections use ``__``: ``AUTOBIZ_STRIPE__API_BASE``). Secrets are ``SecretStr`` so they never
show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class TemporalSettings(BaseModel):
    """Where the Temporal frontend is, and how the embedded dev server is laid out."""

    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int = 8233
    http_port: int = 7243
    metrics_port: int = 7244
    namespace: str = "default"
    task_queue: str = "autobiz"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}/namespaces/{self.namespace}/workflows"


class PostgresSettings(BaseModel):
    """The embedded PostgreSQL used when no ``AUTOBIZ_DATABASE_URL`` is given."""

    host: str = "127.0.0.1"
    port: int = 5433
    app_role: str = "autobiz_app"
    app_password: SecretStr | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10


class StripeSettings(BaseModel):
    api_base: str = "http://127.0.0.1:8766/stripe"
    api_key: SecretStr = SecretStr("sk_test_autobiz_sandbox")
    webhook_secret: SecretStr = SecretStr("whsec_autobiz_sandbox")
    timeout_seconds: float = 10.0


class ShopifySettings(BaseModel):
    api_base: str = "http://127.0.0.1:8766/shopify"
    shop_domain: str = "autobiz-demo.myshopify.com"
    api_version: str = "2025-01"
    access_token: SecretStr = SecretStr("shpat_autobiz_sandbox")
    webhook_secret: SecretStr = SecretStr("shpss_autobiz_sandbox")
    webhook_previous_secret: SecretStr | None = None
    timeout_seconds: float = 10.0


class PrintfulSettings(BaseModel):
    api_base: str = "http://127.0.0.1:8766/printful"
    api_token: SecretStr = SecretStr("pf_autobiz_sandbox")
    webhook_secret: SecretStr = SecretStr("pfwh_autobiz_sandbox")
    store_id: str = "1"
    timeout_seconds: float = 10.0


class SendGridSettings(BaseModel):
    api_base: str = "http://127.0.0.1:8766/sendgrid"
    api_key: SecretStr = SecretStr("SG.autobiz_sandbox.key")
    from_email: str = "shop@autobiz.test"
    timeout_seconds: float = 10.0


class SandboxSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8766


class HygieneSettings(BaseModel):
    """Outside production, clients only reach these hosts and mail only these recipients."""

    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])
    allowed_email_domains: list[str] = Field(default_factory=lambda: ["autobiz.test", "example.com"])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTOBIZ_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    env: Environment = Environment.DEVELOPMENT
    home: Path = Path(".autobiz")
    # Owner connection: runs migrations and the explicitly named admin path.
    database_url: SecretStr | None = None
    # Application connection (a role with no table, no BYPASSRLS). Derived from
    # ``database_url`` with the app role swapped in when not given.
    app_database_url: SecretStr | None = None
    secrets_file: Path | None = None
    config_dir: Path = Path("config")
    log_level: str = "INFO"

    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    shopify: ShopifySettings = Field(default_factory=ShopifySettings)
    printful: PrintfulSettings = Field(default_factory=PrintfulSettings)
    sendgrid: SendGridSettings = Field(default_factory=SendGridSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    hygiene: HygieneSettings = Field(default_factory=HygieneSettings)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
