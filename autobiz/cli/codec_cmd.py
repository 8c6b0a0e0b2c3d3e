"""`autobiz codec-server`: decrypt payloads for the Temporal Web UI (bearer token)."""

from __future__ import annotations

import typer

from autobiz.settings import get_settings


def codec_server(
    host: str | None = typer.Option(None, help="bind address (default from settings)"),
    port: int | None = typer.Option(None, help="port (default from settings)"),
) -> None:
    """Serve /encode and /decode for the Temporal Web UI's codec endpoint."""
    import uvicorn

    from autobiz.codec_server import create_app
    from autobiz.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)  # JSON or text lines, uvicorn's included
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.kernel.codec_server_host,
        port=port or settings.kernel.codec_server_port,
        log_level="warning",
    )
