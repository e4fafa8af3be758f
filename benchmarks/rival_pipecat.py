"""The benchmark rival: the same job as hotline's greeting-only call, done with pipecat.

    /work/rival-venv/bin/python benchmarks/rival_pipecat.py --port P --voice-url ws://127.0.0.1:V \
        --api-key K [--greeting-file hotline/core/default_script.toml]

Runs in its OWN venv (``pipecat-ai[websocket]==1.14.0`` + fastapi + uvicorn; see
benchmarks/bench_rival.py, which creates it): pipecat is a test-only rival, never a hotline
dependency, and this file imports nothing from hotline.

What it serves (what ``hotline load --url http://127.0.0.1:P --no-say`` needs):

- ``POST /voice``: TwiML ``<Connect><Stream url="wss://127.0.0.1:P/media-stream"/>`` (the
  simulator reaches a wss:// url over ws:// when the base url is http://).
- ``GET /health``: 200.
- ``WS /media-stream``: Twilio's ``connected`` + ``start`` are read here, then the stream is
  handed to pipecat's own stack: ``FastAPIWebsocketTransport`` with ``TwilioFrameSerializer``
  (µ-law 8 kHz in and out), ``ElevenLabsTTSService`` (the multi-stream-input WebSocket
  service) pointed at hotline's local voice, and a pipeline ``input -> tts -> output``: no STT,
  no LLM. When the client connects the greeting is queued as a ``TTSSpeakFrame``, as hotline
  speaks its greeting on ``start``.

Known infidelity workaround (``--close-with-flush``, on by default): pipecat 1.14 sends the text,
``flush``, then ``close_context`` at once; hotline's local voice (unlike ElevenLabs) drops a
context's pending audio on a bare ``close_context``, so every utterance ends with no audio.
With the option, the rival's ``close_context`` message also carries ``"flush": true`` (same
number of messages, same pipecat code path otherwise), which the local voice honours by
finishing the audio first. ``--no-close-with-flush`` shows pipecat's unmodified behaviour.

The ElevenLabs service asks for ``pcm_8000`` (pipecat derives the format from the pipeline's
8 kHz output rate) and the serializer converts PCM to µ-law.
"""

# no `from __future__ import annotations`: FastAPI must resolve the WebSocket annotation of a
# route defined inside build_app()

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import tomllib

DEFAULT_SCRIPT = Path(__file__).resolve().parent.parent / "hotline" / "core" / "default_script.toml"


def greeting_text(path: Path) -> str:
    with path.open("rb") as f:
        return str(tomllib.load(f)["greeting"]).strip()


def patch_close_with_flush() -> None:
    """Make ElevenLabsTTSService's close_context carry flush (see the module docstring)."""
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    async def _close_context(self: Any, context_id: str) -> None:
        if context_id and self._websocket:
            msg = {"context_id": context_id, "close_context": True, "flush": True}
            await self._websocket.send(json.dumps(msg))

    ElevenLabsTTSService._close_context = _close_context


def build_app(port: int, voice_url: str, api_key: str, greeting: str) -> Any:
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import PlainTextResponse, Response
    from pipecat.frames.frames import TTSSpeakFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
    from pipecat.transports.websocket.fastapi import (
        FastAPIWebsocketParams,
        FastAPIWebsocketTransport,
    )

    app = FastAPI()
    stats = {"calls": 0, "active": 0}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, **stats}

    @app.post("/voice")
    async def voice() -> Response:
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="wss://127.0.0.1:{port}/media-stream"/></Connect></Response>'
        )
        return Response(content=twiml, media_type="text/xml")

    @app.get("/")
    async def root() -> PlainTextResponse:
        return PlainTextResponse("pipecat rival")

    @app.websocket("/media-stream")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        stream_sid = call_sid = None
        # Twilio sends `connected` then `start`; pipecat's runner utilities do the same read.
        for _ in range(2):
            msg = json.loads(await websocket.receive_text())
            if msg.get("event") == "start":
                stream_sid = msg["start"]["streamSid"]
                call_sid = msg["start"]["callSid"]
                break
        if stream_sid is None:
            await websocket.close()
            return
        serializer = TwilioFrameSerializer(
            stream_sid=stream_sid,
            call_sid=call_sid,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
            ),
        )
        tts = ElevenLabsTTSService(
            api_key=api_key,
            url=voice_url,
            settings=ElevenLabsTTSService.Settings(voice="local", model="eleven_flash_v2_5"),
        )
        task = PipelineTask(
            Pipeline([transport.input(), tts, transport.output()]),
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
        )

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport: Any, _client: Any) -> None:
            await task.queue_frames([TTSSpeakFrame(greeting)])

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _client: Any) -> None:
            await task.cancel()

        stats["calls"] += 1
        stats["active"] += 1
        try:
            await PipelineRunner(handle_sigint=False).run(task)
        finally:
            stats["active"] -= 1

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rival_pipecat")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--voice-url", required=True, help="ws://127.0.0.1:N (hotline tts-standin)")
    p.add_argument("--api-key", default=os.environ.get("ELEVENLABS_API_KEY", ""))
    p.add_argument("--greeting-file", type=Path, default=DEFAULT_SCRIPT)
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--close-with-flush",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send flush with close_context (works around the local voice; default on)",
    )
    args = p.parse_args(argv)
    if args.close_with_flush:
        patch_close_with_flush()
    import uvicorn
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    logging.basicConfig(level=args.log_level)
    app = build_app(args.port, args.voice_url, args.api_key, greeting_text(args.greeting_file))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level.lower(),
        ws_ping_interval=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
