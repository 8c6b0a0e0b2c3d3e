"""Entry point of the `autobiz` console script."""

from __future__ import annotations

import logging
import os
import sys

import typer
from pydantic import ValidationError

from autobiz import __version__
from autobiz.cli import codec_cmd, config_cmd, db, dev, ingress_cmd, sandbox, tools_cmd
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
app.command("worker")(__import__("autobiz.cli.worker_cmd", fromlist=["worker"]).worker)


@app.command()
def version() -> None:
    """Print the AutoBiz version."""
    print(__version__)


def run() -> None:
    """Run the CLI: known failures print a stable code and no traceback."""
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
