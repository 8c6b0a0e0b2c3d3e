"""When a business key's workflow may run again: one rule for every flow and every
starter (``starters.flows``, the CLI through it, the ingress's signal-with-start).

Every flow runs under a business-key workflow id (``order:{tenant}:{order}``,
``refund:{tenant}:{request}``, ``cancel:{tenant}:{order}``,
``payment-failure:{tenant}:{pi}``) and every side effect's idempotency key is derived
from that id, the step and the input — not from the run. So:

* while a run is open, a second start attaches to it (``USE_EXISTING``): a duplicate
  trigger never makes a second concurrent run;
* once a run **completed**, the key is done for good (the last run's outcome is the
  business outcome; a completed refund or a fulfilled order is never re-done);
* once a run **failed, was terminated, cancelled or timed out**, the key may be started
  again (``ALLOW_DUPLICATE_FAILED_ONLY``). The new run recomputes the same keys, so
  every side effect the failed run completed is replayed from its record (within the
  idempotency window) instead of being done again, and the run carries on from there.

Per flow: an **order** that failed on a transient provider answer must be re-runnable,
or its payment stays uncaptured (issue 10). A **refund** that failed is re-run under
the same request id — a new id would be a second refund, while the same id replays
what already moved; a *denied* refund completes, so it is never re-asked this way. A
**cancellation** that failed (e.g. Printful refused while the order was in production)
may be asked again once the situation changed. A **payment failure** that failed (an
outage past its retries) re-runs its dunning; notices already sent are replayed, not
re-sent.
"""

from __future__ import annotations

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

# A running run is attached to (never a second one beside it).
KEY_CONFLICT_POLICY = WorkflowIDConflictPolicy.USE_EXISTING
# A completed run is final; a failed/terminated/cancelled/timed-out one may run again.
KEY_REUSE_POLICY = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
