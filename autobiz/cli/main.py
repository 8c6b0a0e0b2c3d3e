"""Entry point of the `autobiz` console script."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import NoReturn

import typer
from pydantic import ValidationError

from autobiz import __version__
from autobiz.cli import (
    approvals_cmd,
    codec_cmd,
    config_cmd,
    db,
    demo_cmd,
    dev,
    flows_cmd,
    ingress_cmd,
    reconcile_cmd,
    replay_cmd,
    sandbox,
    tools_cmd,
    worker_cmd,
)
from autobiz.cli.output import err_console
from autobiz.errors import AutobizError
from kernel.redaction import install_log_redaction

app = typer.Typer(
    name="autobiz",
    help="AutoBiz: a print-on-demand back office on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev.app, name="dev")
app.add_typer(db.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(tools_cmd.app, name="tools")
app.command("codec-server")(codec_cmd.codec_server)
app.command("sandbox")(sandbox.sandbox)
app.command("ingress")(ingress_cmd.ingress)
app.command("demo")(demo_cmd.demo)
app.command("worker")(worker_cmd.worker)
# Operator commands for the flows (docs/operations.md#running-the-flows).
app.add_typer(flows_cmd.order_app, name="order")
app.add_typer(flows_cmd.refund_app, name="refund")
app.add_typer(flows_cmd.cancel_app, name="cancel")
app.add_typer(approvals_cmd.app, name="approvals")
app.command("replay")(replay_cmd.replay)
# Reconciliation: run now, list drift, keep the schedules (docs/operations.md#reconciliation).
app.add_typer(reconcile_cmd.app, name="reconcile")


@app.command()
def version() -> None:
    """Print the AutoBiz version."""
    print(__version__)


def run() -> None:
    """Run the CLI: known failures print a stable code and no traceback."""
    try:
        _run()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _exit(code: str | int | None) -> NoReturn:
    """Exit with ``code``. Once the Temporal client's native runtime is loaded, skip the
    interpreter's teardown: its threads can touch a finalizing interpreter and abort the
    process (``Fatal Python error: PyGILState_Release``, temporalio/sdk-python#300), turning
    a command that finished into SIGABRT. What teardown does first still happens: waiting
    for non-daemon threads, exit handlers, flushing output."""
    if "temporalio.bridge.temporal_sdk_bridge" not in sys.modules:
        sys.exit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _run() -> None:
    logging.basicConfig(level=os.environ.get("AUTOBIZ_LOG_LEVEL", "WARNING"))
    install_log_redaction()  # secrets and PII never reach a log line
    try:
        app()
    except AutobizError as exc:
        err_console.print(f"[bold red]error[{exc.code}][/]: {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"hint: {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        err_console.print(f"[bold red]error[SETTINGS_INVALID][/]: {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("AUTOBIZ_DEBUG"):
            raise
        err_console.print(
            f"[bold red]error[INTERNAL][/]: {type(exc).__name__}: {exc}\n"
            "set AUTOBIZ_DEBUG=1 for the traceback", highlight=False,
        )  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    run()
