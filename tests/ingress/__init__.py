"""Tests of the webhook ingress (issue 6)."""
