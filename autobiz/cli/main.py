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
from rich.markup import escape

from autobiz import __version__
from autobiz.cli import (
    approvals_cmd,
    breaker_cmd,
    closeout_cmd,
    codec_cmd,
    config_cmd,
    db,
    demo_cmd,
    dev,
    flows_cmd,
    gate_cmd,
    health_cmd,
    incidents_cmd,
    ingress_cmd,
    reconcile_cmd,
    replay_cmd,
    sandbox,
    settings_cmd,
    soak_cmd,
    temporal_cmd,
    tools_cmd,
    wismo_cmd,
    worker_cmd,
)
from autobiz.cli.output import emit_json, err_console, json_emitted, wants_json
from autobiz.errors import AutobizError, ExitCode, UsageError
from kernel.codes import ErrorCode
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
app.add_typer(settings_cmd.app, name="settings")  # docs/settings.md
app.command("codec-server")(codec_cmd.codec_server)
app.add_typer(sandbox.app, name="sandbox")
app.command("ingress")(ingress_cmd.ingress)
app.command("demo")(demo_cmd.demo)
app.command("soak")(soak_cmd.soak)  # docs/operations.md#soak-and-chaos
app.command("worker")(worker_cmd.worker)
# Deploying (docs/operations.md#docker-compose): namespace setup, container healthchecks.
app.add_typer(temporal_cmd.app, name="temporal")
app.command("health")(health_cmd.health)
# Operator commands for the flows (docs/operations.md#running-the-flows).
app.add_typer(flows_cmd.order_app, name="order")
app.add_typer(flows_cmd.refund_app, name="refund")
app.add_typer(flows_cmd.cancel_app, name="cancel")
app.add_typer(approvals_cmd.app, name="approvals")
app.command("replay")(replay_cmd.replay)
# Reconciliation: run now, list drift, keep the schedules (docs/operations.md#reconciliation).
app.add_typer(reconcile_cmd.app, name="reconcile")
app.add_typer(incidents_cmd.app, name="incidents")  # docs/operations.md#incidents
app.add_typer(closeout_cmd.app, name="closeout")  # docs/operations.md#daily-closeout
app.add_typer(wismo_cmd.app, name="wismo")  # docs/operations.md#wismo-review
app.add_typer(breaker_cmd.app, name="breaker")  # docs/operations.md#circuit-breakers
app.command("gate")(gate_cmd.gate)  # docs/operations.md#deploy-gate


@app.command()
def version() -> None:
    """Print the AutoBiz version."""
    print(__version__)


def _print_version(asked: bool) -> None:
    if asked:
        print(__version__)
        raise typer.Exit(0)


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the AutoBiz version and exit.",
    ),
) -> None:
    """AutoBiz: a print-on-demand back office on Temporal."""


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


def _run(argv: list[str] | None = None) -> None:
    """Dispatch ``argv``; every way out is an exit code from :class:`ExitCode` and, for a
    failure, one ``error[CODE]: message`` line and a hint (never Typer's box or a trace)."""
    args = sys.argv[1:] if argv is None else argv
    as_json = wants_json(args)  # then every error, even the parser's, is JSON too
    try:
        _configure_logging()
        _check_encoding(args)
        result = app(args=args, prog_name="autobiz", standalone_mode=False)
    except AutobizError as exc:
        _fail(exc.code, exc.message, exc.hint, exc.exit_code, as_json=as_json)
    except ValidationError as exc:
        _fail(
            ErrorCode.SETTINGS_INVALID,
            str(exc),
            "check the AUTOBIZ_* environment variables",
            ExitCode.USAGE,
            as_json=as_json,
        )
    except typer.Abort:
        _fail(ErrorCode.ABORTED, "aborted", None, ExitCode.INTERRUPTED, as_json=as_json)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except typer.TyperException as exc:  # Click's usage errors, from Typer's parser
        code, message, hint = _usage(exc)
        _fail(code, message, hint, ExitCode.USAGE, as_json=as_json)
    except Exception as exc:
        if os.environ.get("AUTOBIZ_DEBUG"):
            raise
        _fail(
            ErrorCode.INTERNAL,
            f"{type(exc).__name__}: {exc}",
            "set AUTOBIZ_DEBUG=1 for the traceback",
            ExitCode.INTERNAL,
            as_json=as_json,
        )
    # Not standalone: --help and typer.Exit come back as their exit code; a command
    # returns None.
    sys.exit(result if isinstance(result, int) else ExitCode.OK)


def _configure_logging() -> None:
    try:
        logging.basicConfig(level=os.environ.get("AUTOBIZ_LOG_LEVEL", "WARNING").upper())
    except ValueError as exc:
        raise AutobizError(
            str(exc),
            code=ErrorCode.SETTINGS_INVALID,
            hint="AUTOBIZ_LOG_LEVEL is DEBUG, INFO, WARNING or ERROR",
        ) from None
    install_log_redaction()  # secrets and PII never reach a log line


def _check_encoding(args: list[str]) -> None:
    """Arguments arrive as bytes; one that is not UTF-8 (Python keeps it as surrogate
    escapes) would fail later, deep in a client or when printed — refuse it here."""
    for position, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "surrogateescape")
            raise UsageError(
                f"argument {position} is not valid UTF-8: {raw!r}",
                hint="ids, amounts and options are UTF-8 text (order ids are ASCII digits)",
            ) from None


def _usage(exc: Exception) -> tuple[str, str, str]:
    """``(code, message, hint)`` for one of Click's usage errors."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "autobiz"
    hint = f"see `{path} --help`"
    if type(exc).__name__ == "NoArgsIsHelpError":  # its help text was just printed
        return ErrorCode.USAGE, f"`{path}` needs a command", hint
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    return ErrorCode.USAGE, str(message).strip() or "invalid usage", hint


def _fail(code: str, message: str, hint: str | None, exit_code: int, *, as_json: bool) -> NoReturn:
    err_console.print(f"[bold red]error[{code}][/]: {escape(message)}", highlight=False)
    if hint:
        err_console.print(f"hint: {escape(hint)}", highlight=False)
    if as_json and not json_emitted():  # a script asked for JSON: the error is JSON too
        emit_json(
            {"error": {"code": code, "message": message, "hint": hint, "exit_code": int(exit_code)}}
        )
    sys.exit(int(exit_code))


if __name__ == "__main__":
    run()
