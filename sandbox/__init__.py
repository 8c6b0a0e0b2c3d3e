"""A local stand-in for Stripe, Shopify, Printful and SendGrid (``autobiz sandbox``)."""
