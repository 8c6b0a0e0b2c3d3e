"""Clients for the outside world: Stripe, Shopify, Printful, SendGrid.

Each takes the settings (and optionally an injected HTTP client), has a timeout on every
call, never retries on its own (Temporal does) and raises only
:mod:`autobiz.providers.errors`. The same code talks to the local sandbox or to a
provider's test mode; only settings change (docs/providers.md).
"""
