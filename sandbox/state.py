"""All the sandbox's in-memory state in one place, so ``reset`` forgets all of it."""

from __future__ import annotations

from autobiz.settings import Settings
from sandbox.accounts import AccountBook
from sandbox.faults import FaultBook
from sandbox.printful_api import PrintfulSandbox
from sandbox.sendgrid_api import SendGridSandbox
from sandbox.shopify_api import ShopifySandbox
from sandbox.stripe_api import StripeSandbox
from sandbox.webhooks import WebhookDispatcher


class SandboxState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.faults = FaultBook()
        self.accounts = AccountBook(settings)
        self.webhooks = WebhookDispatcher(settings)
        self.stripe = StripeSandbox(self.webhooks, self.accounts)
        self.shopify = ShopifySandbox(settings, self.webhooks, self.faults, self.accounts)
        self.printful = PrintfulSandbox(settings, self.webhooks, self.accounts)
        self.sendgrid = SendGridSandbox(settings, self.accounts)

    def reset(self) -> None:
        self.faults.reset()
        self.accounts.reset()
        self.webhooks.reset()
        self.stripe.reset()
        self.shopify.reset()
        self.printful.reset()
        self.sendgrid.reset()
