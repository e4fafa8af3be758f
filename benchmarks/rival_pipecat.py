"""The benchmark rival: the same jobs as hotline's, done with pipecat.

    /work/rival-venv/bin/python benchmarks/rival_pipecat.py --port P --voice-url ws://127.0.0.1:V \
        --api-key K [--script hotline/core/default_script.toml] \
        [--stt-url ws://127.0.0.1:E --stt-key D]

Runs in its OWN venv (``pipecat-ai[websocket,deepgram]==1.14.0`` + fastapi + uvicorn; see
benchmarks/bench_rival.py, which creates it): pipecat is a test-only rival, never a hotline
dependency, and this file imports nothing from hotline.

What it serves (what ``hotline load --url http://127.0.0.1:P`` needs):

- ``POST /voice``: TwiML ``<Connect><Stream url="wss://127.0.0.1:P/media-stream"/>`` (the
  simulator reaches a wss:// url over ws:// when the base url is http://).
- ``GET /health``: 200.
- ``WS /media-stream``: Twilio's ``connected`` + ``start`` are read here, then the stream is
  handed to pipecat's own stack: ``FastAPIWebsocketTransport`` with ``TwilioFrameSerializer``
  (µ-law 8 kHz in and out) and ``ElevenLabsTTSService`` (the multi-stream-input WebSocket
  service) pointed at hotline's local voice. When the client connects the script's greeting is
  queued as a ``TTSSpeakFrame``, as hotline speaks its greeting on ``start``.

Two pipelines:

- greeting only (no ``--stt-url``): ``input -> tts -> output``: no STT, no LLM.
- conversing (``--stt-url``): ``input -> DeepgramSTTService -> user aggregator -> brain -> tts
  -> output -> assistant aggregator``, the shape of pipecat's own Twilio examples.
  ``DeepgramSTTService`` (pipecat's Deepgram live client, through the deepgram-sdk) with
  ``base_url`` at the local ear's Deepgram stand-in and the script's intent phrases as
  ``keyterm`` (as hotline sends them); pipecat asks for ``encoding=linear16&sample_rate=8000``
  (the line decoded to PCM by the serializer). The user aggregator
  (``LLMContextAggregatorPair``) gets ``SileroVADAnalyzer()`` (pipecat's docs and examples
  wire it there; 1.14 has no VAD by default) and pipecat 1.14's default turn strategies
  (``UserTurnStrategies()``: start on VAD or a transcript, stop when
  ``LocalSmartTurnAnalyzerV3`` -- Smart Turn v3.2, the ONNX model in the wheel -- says the
  turn is complete, 3 s fallback); on a VAD stop the STT service sends Deepgram ``Finalize``.
  The brain (:class:`ScriptBrain`) stands where the LLM service would: it answers the turn's
  words the way hotline's script brain does (the intent whose phrase, as whole words, has the
  most words, then the longest, then the first declared; else the script's ``fallback``),
  as an LLM response (``LLMFullResponseStartFrame``, one ``LLMTextFrame``,
  ``LLMFullResponseEndFrame``), so both servers speak the same lines for the same questions.
  ``--turn-stop speech-timeout`` swaps Smart Turn for pipecat's
  ``SpeechTimeoutUserTurnStopStrategy`` (not a default: it shows what Smart Turn costs).

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
import re
import sys
from pathlib import Path
from typing import Any

import tomllib

DEFAULT_SCRIPT = Path(__file__).resolve().parent.parent / "hotline" / "core" / "default_script.toml"
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


class Script:
    """What the rival needs of a hotline call script: the greeting, the intents, the fallback."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as f:
            data = tomllib.load(f)
        self.greeting = str(data["greeting"]).strip()
        self.fallback = str(data.get("fallback", "Sorry, I did not catch that.")).strip()
        # intents that say a line (the actions -- repeat, goodbye, hand-off -- are not modelled:
        # the conversing calls' script has none)
        self.intents: list[tuple[list[str], str]] = [
            ([str(p) for p in v.get("phrases", [])], str(v["say"]).strip())
            for v in data.get("intents", {}).values()
            if "say" in v
        ]

    def keyterms(self) -> list[str]:
        """The intents' phrases as written, each normalised phrase once (hotline's order)."""
        seen: dict[str, str] = {}
        for phrases, _ in self.intents:
            for p in phrases:
                seen.setdefault(_normalise(p), p)
        return list(seen.values())

    def reply(self, transcript: str) -> str:
        text = f" {_normalise(transcript)} "
        best: tuple[int, int, int] | None = None
        found = self.fallback
        for order, (phrases, say) in enumerate(self.intents):
            for p in phrases:
                phrase = _normalise(p)
                if phrase and f" {phrase} " in text:
                    rank = (phrase.count(" ") + 1, len(phrase), -order)
                    if best is None or rank > best:
                        best, found = rank, say
        return found


def patch_close_with_flush() -> None:
    """Make ElevenLabsTTSService's close_context carry flush (see the module docstring)."""
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    async def _close_context(self: Any, context_id: str) -> None:
        if context_id and self._websocket:
            msg = {"context_id": context_id, "close_context": True, "flush": True}
            await self._websocket.send(json.dumps(msg))

    ElevenLabsTTSService._close_context = _close_context  # type: ignore[method-assign]


def script_brain(script: Script) -> Any:
    """A frame processor standing where the LLM service would: the script's reply to the
    turn's words, as an LLM response (the TTS service aggregates and speaks it)."""
    from pipecat.frames.frames import (
        LLMContextFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        LLMTextFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    class ScriptBrain(FrameProcessor):
        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if not isinstance(frame, LLMContextFrame):
                await self.push_frame(frame, direction)
                return
            said = ""
            for m in reversed(frame.context.get_messages()):
                if isinstance(m, dict) and m.get("role") == "user":
                    content = m.get("content")
                    said = content if isinstance(content, str) else json.dumps(content)
                    break
            line = script.reply(said)
            replies[line] = replies.get(line, 0) + 1  # the script's lines: counted, for the report
            await self.push_frame(LLMFullResponseStartFrame())
            await self.push_frame(LLMTextFrame(line))
            await self.push_frame(LLMFullResponseEndFrame())

    return ScriptBrain()


stats = {"calls": 0, "active": 0}
replies: dict[str, int] = {}


def build_app(
    port: int,
    voice_url: str,
    api_key: str,
    script: Script,
    stt_url: str | None = None,
    stt_key: str = "",
    turn_stop: str = "smart-turn",
) -> Any:
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import PlainTextResponse, Response
    from pipecat.frames.frames import TTSSpeakFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
    from pipecat.transports.websocket.fastapi import (
        FastAPIWebsocketParams,
        FastAPIWebsocketTransport,
    )
    from pipecat.workers.runner import WorkerRunner

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, **stats, "replies": replies}

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

    def conversing(transport: Any, tts: Any) -> list[Any]:
        from pipecat.audio.vad.silero import SileroVADAnalyzer
        from pipecat.processors.aggregators.llm_context import LLMContext
        from pipecat.processors.aggregators.llm_response_universal import (
            LLMContextAggregatorPair,
            LLMUserAggregatorParams,
        )
        from pipecat.services.deepgram.stt import DeepgramSTTService

        stt = DeepgramSTTService(
            api_key=stt_key,
            base_url=stt_url or "",
            settings=DeepgramSTTService.Settings(keyterm=script.keyterms()),
        )
        params = LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
        if turn_stop == "speech-timeout":  # not the default: what Smart Turn costs, by difference
            from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
                SpeechTimeoutUserTurnStopStrategy,
            )
            from pipecat.turns.user_turn_strategies import UserTurnStrategies

            params.user_turn_strategies = UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy()]
            )
        pair = LLMContextAggregatorPair(LLMContext(), user_params=params)
        return [
            transport.input(),
            stt,
            pair.user(),
            script_brain(script),
            tts,
            transport.output(),
            pair.assistant(),
        ]

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
        if stt_url is None:
            processors = [transport.input(), tts, transport.output()]
        else:
            processors = conversing(transport, tts)
        task = PipelineWorker(
            Pipeline(processors),
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
        )

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport: Any, _client: Any) -> None:
            await task.queue_frames([TTSSpeakFrame(script.greeting)])

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _client: Any) -> None:
            await task.cancel()

        stats["calls"] += 1
        stats["active"] += 1
        try:
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(task)
            await runner.run()
        finally:
            stats["active"] -= 1

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rival_pipecat")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--voice-url", required=True, help="ws://127.0.0.1:N (hotline tts-standin)")
    p.add_argument("--api-key", default=os.environ.get("ELEVENLABS_API_KEY", ""))
    p.add_argument("--script", type=Path, default=DEFAULT_SCRIPT, help="a hotline call script")
    p.add_argument(
        "--stt-url",
        default=None,
        help="ws://127.0.0.1:E (the local ear's Deepgram stand-in): the conversing pipeline",
    )
    p.add_argument("--stt-key", default=os.environ.get("DEEPGRAM_API_KEY", ""))
    p.add_argument(
        "--turn-stop",
        choices=("smart-turn", "speech-timeout"),
        default="smart-turn",
        help="conversing: the user turn's stop strategy (default: pipecat's, Smart Turn v3; "
        "speech-timeout: SpeechTimeoutUserTurnStopStrategy, to show what Smart Turn adds)",
    )
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
    app = build_app(
        args.port,
        args.voice_url,
        args.api_key,
        Script(args.script),
        args.stt_url,
        args.stt_key,
        args.turn_stop,
    )
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
