"""``hotline serve [--host HOST] [--port PORT] [--insecure-dev]``."""

from __future__ import annotations

import argparse
import logging
import sys

from hotline.errors import ConfigError

__all__ = ["add_arguments", "run", "uvicorn_config_kwargs"]

log = logging.getLogger("hotline.app")

LOOPBACK = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $PORT or 8000)")
    parser.add_argument(
        "--insecure-dev",
        action="store_true",
        help="local development: bind 127.0.0.1 only; without TWILIO_AUTH_TOKEN, "
        "Twilio signatures are not checked",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def uvicorn_config_kwargs() -> dict[str, object]:
    """Settings every hotline uvicorn server uses (tests use them too)."""
    from hotline.server.session import MAX_MESSAGE

    return {
        "ws_max_size": MAX_MESSAGE,  # /media-stream caps inbound messages at 64 KiB
        "ws_ping_interval": None,  # Twilio does not answer pings reliably; TCP tells us
        # uvicorn's sans-I/O websockets protocol: its legacy one (the "auto" choice before
        # uvicorn's auto switched) warns with websockets 13 and imports the deprecated
        # websockets.legacy from 14 on.
        "ws": "websockets-sansio",
        "lifespan": "on",
        "server_header": False,
        # The client address is hotline's to work out (HOTLINE_TRUSTED_PROXIES): uvicorn's own
        # X-Forwarded-For handling (on by default, trusting 127.0.0.1) would be a second,
        # differently configured answer.
        "proxy_headers": False,
    }


def _configure_logging(level: str) -> None:
    from hotline.server import logs

    logs.install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(logs.RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from hotline.server.app import create_app
    from hotline.server.settings import Settings

    _configure_logging(args.log_level)
    try:
        settings = Settings.from_env().with_insecure_dev(bool(args.insecure_dev))
        settings.check_servable()
        host = args.host or LOOPBACK
        if settings.insecure_dev and host != LOOPBACK:
            raise ConfigError(
                f"--insecure-dev binds {LOOPBACK} only (asked for {host}); drop --insecure-dev "
                "and set TWILIO_AUTH_TOKEN to serve other hosts"
            )
        port = args.port if args.port is not None else settings.port
        app = create_app(settings)
    except ConfigError as exc:
        print(f"hotline serve: {exc}", file=sys.stderr)
        return 2
    if settings.insecure_dev:
        log.warning(
            "insecure-dev: listening on %s only%s",
            LOOPBACK,
            "; Twilio signatures are NOT checked (no TWILIO_AUTH_TOKEN)"
            if not settings.signatures_enforced
            else "",
        )
    log.info(
        "hotline serve on http://%s:%d (voice: %s, output_format %s)",
        host,
        port,
        settings.voice,
        settings.elevenlabs_output_format,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        log_config=None,  # keep our handlers (and their redaction)
        **uvicorn_config_kwargs(),  # type: ignore[arg-type]
    )
    from hotline.server.drain import DrainingServer

    # SIGTERM drains (live calls play on; /health says draining); see hotline.server.drain.
    server = DrainingServer(config, app.state.hub.registry, settings.drain_timeout)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled after a clean shutdown
        pass
    return 0 if server.started else 1
