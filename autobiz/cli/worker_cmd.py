"""`autobiz worker`: run the order-to-cash worker until SIGTERM."""

from __future__ import annotations

import asyncio

import typer

from autobiz.settings import get_settings


def worker(
    task_queue: str = typer.Option(
        None, help="Task queue (default: AUTOBIZ_TEMPORAL__TASK_QUEUE)."
    ),
) -> None:
    """Poll Temporal for the order-to-cash workflows and their tool activities.

    Refuses to start when a BusinessConfig in AUTOBIZ_CONFIG_DIR does not compile or a
    provider setting is unsafe. SIGTERM finishes in-flight tasks, then exits.
    """
    from autobiz.logs import configure_logging
    from workers.worker import run_worker

    configure_logging(get_settings())  # JSON or text lines with the Temporal context
    asyncio.run(run_worker(get_settings(), task_queue=task_queue))
