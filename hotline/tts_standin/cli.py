"""``hotline tts-standin`` (formerly ``hotline voice``): the TTS stand-in alone, on a port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from hotline.tts_standin.config import StandInConfig
from hotline.tts_standin.faults import FAULT_MODES
from hotline.tts_standin.server import TTSStandIn

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--first-chunk-delay",
        type=float,
        default=StandInConfig.first_chunk_delay,
        metavar="SECONDS",
    )
    parser.add_argument("--realtime-factor", type=float, default=StandInConfig.realtime_factor)
    parser.add_argument("--fault", choices=FAULT_MODES, default=None)
    parser.add_argument("--api-key", default=None, help="require this xi-api-key header")
    parser.add_argument("--seed", type=int, default=0)


async def _serve(cfg: StandInConfig, host: str, port: int) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    voice = TTSStandIn(cfg)
    await voice.start(host, port)
    print(
        f"TTS stand-in on {voice.url}/v1/text-to-speech/<voice_id>/stream-input (and multi-stream-input)",
        flush=True,
    )
    if cfg.fault:
        print(f"fault mode: {cfg.fault}", flush=True)
    try:
        await stop.wait()
    finally:
        await voice.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = StandInConfig(
            api_key=args.api_key,
            first_chunk_delay=args.first_chunk_delay,
            realtime_factor=args.realtime_factor,
            fault=args.fault,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"hotline tts-standin: {exc}")
        return 2
    try:
        asyncio.run(_serve(cfg, args.host, args.port))
    except OSError as exc:
        print(f"hotline tts-standin: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    return 0
