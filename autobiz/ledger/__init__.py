"""The kernel's I/O side, used by activities: idempotency store, receipts, traces."""
