"""`autobiz codec-server`: decrypt payloads for the Temporal Web UI and the `temporal` CLI
(who may: ``AUTOBIZ_KERNEL__CODEC_SERVER_AUTH``, see autobiz.codec_server)."""

from __future__ import annotations

import typer

from autobiz.settings import Settings, get_settings


def codec_server(
    host: str | None = typer.Option(None, help="bind address (default from settings)"),
    port: int | None = typer.Option(None, help="port (default from settings)"),
) -> None:
    """Serve /encode and /decode for the Temporal Web UI's codec endpoint."""
    import uvicorn

    from autobiz.codec_server import create_app
    from autobiz.logs import configure_logging

    settings = bound_to(get_settings(), host, port)
    configure_logging(settings)  # JSON or text lines, uvicorn's included
    app = create_app(settings)  # the auth check sees the address actually bound
    uvicorn.run(
        app,
        host=settings.kernel.codec_server_host,
        port=settings.kernel.codec_server_port,
        log_level="warning",
    )


def bound_to(settings: Settings, host: str | None, port: int | None) -> Settings:
    """The settings with the command line's address in them."""
    update = {
        name: value
        for name, value in (("codec_server_host", host), ("codec_server_port", port))
        if value is not None
    }
    if not update:
        return settings
    return settings.model_copy(update={"kernel": settings.kernel.model_copy(update=update)})
