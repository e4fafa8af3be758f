"""The local ear's Deepgram live session (``/v1/listen``)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed

from hotline.codec import ulaw_encode
from hotline.ear.recognizer import Final, Partial
from hotline.ear.session import Session, query_value

__all__ = ["DEEPGRAM_ENCODINGS", "DeepgramSession"]

#: The ``encoding`` values the stand-in takes (both at ``sample_rate=8000``): µ-law as phone
#: lines carry it, and Deepgram's ``linear16`` (16-bit little-endian signed PCM, what clients
#: that decode the line first send, e.g. pipecat's Deepgram service), turned into µ-law here.
DEEPGRAM_ENCODINGS = ("mulaw", "linear16")


class DeepgramSession(Session):
    async def run(self) -> None:
        q = self.query
        self.request_id = str(uuid.uuid4())
        self.interim = (query_value(q, "interim_results", "false") or "") == "true"
        self.vad_events = (query_value(q, "vad_events", "false") or "") == "true"
        endpointing = query_value(q, "endpointing", "10") or "10"
        self.utterance_end = query_value(q, "utterance_end_ms")
        silence_ms = 3000 if endpointing == "false" else max(int(endpointing), 300)
        keyterms = tuple(t for t in [*q.get("keyterm", []), *q.get("keywords", [])] if t.strip())
        keyterms = tuple(t.rsplit(":", 1)[0] if ":" in t else t for t in keyterms)
        await self.make_recognizer(keyterms, silence_ms, True)
        self.audio_s = 0.0
        self.in_speech = False
        linear16 = query_value(q, "encoding") == "linear16"
        carry = b""  # linear16: a sample split across two messages
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), self.cfg.idle_close_s)
            except asyncio.TimeoutError:  # not the builtin on 3.10
                await self.ws.close(1011, "NET-0001")
                return
            except ConnectionClosed:
                return
            if isinstance(raw, bytes):
                if linear16:
                    pcm = carry + raw
                    cut = len(pcm) - len(pcm) % 2
                    carry = pcm[cut:]
                    raw = ulaw_encode(pcm[:cut]) if cut else b""
                if not raw:
                    continue
                if not await self.on_audio_chunk():
                    return
                was = self.rec.in_segment if self.rec else False
                results = await self.recognise(raw)
                self.audio_s += len(raw) / 8000
                if self.vad_events and not was and self.rec is not None and self.rec.in_segment:
                    await self.send(
                        {
                            "type": "SpeechStarted",
                            "channel": [0],
                            "timestamp": round(self.audio_s, 3),
                        }
                    )
                for r in results:
                    await self._result(r, from_finalize=False)
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                await self.ws.close(1008, "DATA-0000")
                return
            kind = msg.get("type") if type(msg) is dict else None
            if kind == "KeepAlive":
                continue
            if kind == "Finalize":
                for r in await self.recognise(b"", commit=True):
                    await self._result(r, from_finalize=True)
            elif kind == "CloseStream":
                for r in await self.recognise(b"", commit=True):
                    await self._result(r, from_finalize=True)
                await self.send(
                    {
                        "type": "Metadata",
                        "transaction_key": "deprecated",
                        "request_id": self.request_id,
                        "sha256": "",
                        "created": "",
                        "duration": round(self.audio_s, 3),
                        "channels": 1,
                        "models": ["local-ear"],
                        "model_info": {},
                    }
                )
                await self.ws.close(1000)
                return
            else:
                await self.ws.close(1008, "DATA-0000")
                return

    def _results(
        self,
        text: str,
        words: list[dict[str, Any]],
        start: float,
        end: float,
        confidence: float | None = None,
        **flags: bool,
    ) -> dict[str, Any]:
        if confidence is None:
            confidence = 0.9 if text else 0.0  # a recogniser that cannot rate its words
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(max(end - start, 0.0), 3),
            "start": round(start, 3),
            "is_final": flags.get("is_final", False),
            "speech_final": flags.get("speech_final", False),
            "from_finalize": flags.get("from_finalize", False),
            "channel": {
                "alternatives": [
                    {"transcript": text, "confidence": round(confidence, 4), "words": words}
                ]
            },
            "metadata": {"request_id": self.request_id, "model_info": {"name": "local-ear"}},
        }

    async def _result(self, result: Partial | Final, *, from_finalize: bool) -> None:
        if isinstance(result, Partial):
            if self.interim:
                await self.send(self._results(result.text, [], 0.0, self.audio_s))
            return
        self.ear.stats.commits += 1
        conf = 0.9 if result.confidence is None else round(result.confidence, 4)
        words = [
            {
                "word": w.text,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "confidence": conf,
                "punctuated_word": w.text,
            }
            for w in result.words
        ]
        await self.send(
            self._results(
                result.text,
                words,
                result.start,
                result.end,
                result.confidence,
                is_final=True,
                speech_final=not from_finalize,
                from_finalize=from_finalize,
            )
        )
        if self.utterance_end is not None and result.text and not from_finalize:
            last = result.words[-1].end if result.words else result.end
            await self.send(
                {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last, 3)}
            )
