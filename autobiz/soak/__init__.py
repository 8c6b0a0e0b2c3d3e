"""`autobiz soak`: the business day in rounds on the local stack, optionally under chaos,
judged against provider state and the ledger (docs/operations.md#soak-and-chaos).

``rounds`` plays one round with the demo's drivers, ``runner`` keeps rounds going until
enough events went through, ``checks`` finds what was lost or done twice, ``chaos`` breaks
the stack's processes by pid (``tests/chaos/`` uses the same actions)."""
