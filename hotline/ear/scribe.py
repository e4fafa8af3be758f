"""The local ear's ElevenLabs Scribe v2 Realtime session (``/v1/speech-to-text/realtime``)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from typing import Any

from hotline.ear.config import SCRIBE_DEFAULT_SILENCE_S
from hotline.ear.recognizer import Final, Partial
from hotline.ear.session import Session, query_value

__all__ = ["ScribeSession"]


class ScribeSession(Session):
    async def run(self) -> None:
        q = self.query
        session_id = uuid.uuid4().hex
        if self.fault == "refuse" or not self.ear.authorised(
            self.ws.request.headers.get("xi-api-key") if self.ws.request else None,
            query_value(q, "token"),
        ):
            if self.fault == "refuse":
                self.ear.stats.faults_injected += 1
            await self.send({"message_type": "auth_error", "error": "You must be authenticated."})
            await self.ws.close(1008, "auth_error")
            return
        error = self._configure()
        if error is not None:
            await self.send({"message_type": "input_error", "error": error})
            await self.ws.close(1008, "input_error")
            return
        keyterms = tuple(t for t in q.get("keyterms", []) if t.strip())
        await self.make_recognizer(keyterms, int(self.silence_s * 1000), self.vad)
        await self.send(
            {
                "message_type": "session_started",
                "session_id": session_id,
                "config": {
                    "sample_rate": 8000,
                    "audio_format": self.audio_format,
                    "language_code": query_value(q, "language_code", "en"),
                    "timestamps_granularity": "word",
                    "vad_commit_strategy": self.vad,
                    "vad_silence_threshold_secs": self.silence_s,
                    "model_id": query_value(q, "model_id"),
                    "enable_logging": True,
                    "include_timestamps": self.timestamps,
                    "include_language_detection": False,
                },
            }
        )
        first = True
        async for raw in self.ws:
            if isinstance(raw, bytes):
                await self._input_error("binary frames are not accepted; send input_audio_chunk")
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                await self._input_error("message is not valid JSON")
                continue
            if type(msg) is not dict or msg.get("message_type") != "input_audio_chunk":
                await self._input_error("unknown or missing message_type")
                continue
            audio_b64 = msg.get("audio_base_64")
            commit = msg.get("commit", False)
            if type(audio_b64) is not str or type(commit) is not bool:
                await self._input_error("audio_base_64 must be a string and commit a boolean")
                continue
            if "previous_text" in msg and not first:
                await self._input_error("previous_text can only be sent with the first chunk")
                continue
            sample_rate = msg.get("sample_rate", 8000)
            if sample_rate != 8000:
                await self._input_error("sample_rate must match the audio format (8000)")
                continue
            try:
                audio = base64.b64decode(audio_b64, validate=True)
            except (binascii.Error, ValueError):
                await self._input_error("audio_base_64 is not valid base64")
                continue
            if len(audio) > self.cfg.max_chunk_bytes:
                self.ear.stats.input_errors += 1
                await self.send(
                    {
                        "message_type": "chunk_size_exceeded",
                        "error": f"audio chunk larger than {self.cfg.max_chunk_bytes} bytes",
                    }
                )
                continue
            first = False
            if self.audio_format == "pcm_8000":
                from hotline.codec import ulaw_encode

                audio = ulaw_encode(audio[: len(audio) - len(audio) % 2])
            if audio and not await self.on_audio_chunk():
                return
            for result in await self.recognise(audio, commit=commit):
                await self._result(result)

    def _configure(self) -> str | None:
        q = self.query
        if not query_value(q, "model_id"):
            return "model_id is required"
        self.audio_format = query_value(q, "audio_format", "pcm_16000") or ""
        if self.audio_format not in ("ulaw_8000", "pcm_8000"):
            return f"audio_format {self.audio_format!r} is not served by the local ear"
        strategy = query_value(q, "commit_strategy", "manual")
        if strategy not in ("manual", "vad"):
            return f"commit_strategy must be manual or vad, got {strategy!r}"
        self.vad = strategy == "vad"
        raw = query_value(q, "vad_silence_threshold_secs")
        try:
            self.silence_s = float(raw) if raw is not None else SCRIBE_DEFAULT_SILENCE_S
        except ValueError:
            return "vad_silence_threshold_secs must be a number"
        if not 0.3 <= self.silence_s <= 3.0:
            return "vad_silence_threshold_secs must be within 0.3..3.0"
        self.timestamps = (query_value(q, "include_timestamps", "false") or "").lower() == "true"
        return None

    async def _input_error(self, message: str) -> None:
        self.ear.stats.input_errors += 1
        await self.send({"message_type": "input_error", "error": message})

    async def _result(self, result: Partial | Final) -> None:
        if isinstance(result, Partial):
            await self.send({"message_type": "partial_transcript", "text": result.text})
            return
        self.ear.stats.commits += 1
        await self.send({"message_type": "committed_transcript", "text": result.text})
        if self.timestamps:
            words: list[dict[str, Any]] = []
            # Scribe's words[].logprob: the final's confidence as a log-probability (the
            # recogniser rates the whole final, so each of its words carries that)
            conf = result.confidence
            logprob = None if conf is None else round(math.log(max(conf, 1e-6)), 4)
            for i, w in enumerate(result.words):
                if i:
                    words.append({"text": " ", "start": w.start, "end": w.start, "type": "spacing"})
                words.append(
                    {
                        "text": w.text,
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "type": "word",
                        **({} if logprob is None else {"logprob": logprob}),
                    }
                )
            await self.send(
                {
                    "message_type": "committed_transcript_with_timestamps",
                    "text": result.text,
                    "language_code": "en",
                    "words": words,
                }
            )
