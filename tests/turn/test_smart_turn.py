"""Smart Turn v3.2 on phone audio, and how :func:`load` finds (or refuses) a model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hotline.errors import ConfigError
from hotline.sim.speech import caller_speech_frames
from hotline.turn import smart_turn
from hotline.turn.smart_turn import SmartTurn, load

SILENCE_200MS = b"\xff" * 1600

needs_model = pytest.mark.skipif(
    smart_turn.bundled_model_path() is None or not smart_turn._runtime_available(),
    reason="Smart Turn not installed (hotline[turn] and pipecat-ai --no-deps: make)",
)


def _turn(text: str, voice: str = "en-us") -> bytes:
    return b"".join(caller_speech_frames(text, voice, 170)) + SILENCE_200MS


@needs_model
def test_load_auto_is_one_session_per_process() -> None:
    model = load("auto")
    assert isinstance(model, SmartTurn)
    assert load(None) is model and load("") is model
    assert load(str(model.path)) is model  # the same file by path: the same session
    assert model.window_seconds == 8.0


@needs_model
@pytest.mark.parametrize("voice", ["en-us", "en", "en-gb-x-rp"])
def test_a_finished_question_on_phone_audio_reads_complete(voice: str) -> None:
    model = load("auto")
    assert model is not None
    assert model.complete_probability(_turn("What are the tour dates?", voice)) > 0.5


@needs_model
def test_fragments_on_phone_audio_are_not_told_apart() -> None:
    """What the model does with eSpeak's voices on 8 kHz µ-law, pinned so a change shows: a
    question broken off after "What are the," (a comma's continuation, 200 ms of silence) reads as
    *complete* as the whole question. The model is no guard against cut-offs on its own here
    (benchmarks/bench_turns.py measures it on the whole set); the transcript signal is."""
    model = load("auto")
    assert model is not None
    whole = model.complete_probability(_turn("What are the tour dates?"))
    fragment = model.complete_probability(_turn("What are the,"))
    assert fragment > 0.5 and whole > 0.5


@needs_model
def test_threads_share_one_session() -> None:
    model = load("auto")
    assert model is not None
    audio = _turn("Where can I buy merch?")
    expected = model.complete_probability(audio)
    results: list[float] = []

    def ask() -> None:
        for _ in range(3):
            results.append(model.complete_probability(audio))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 9


@needs_model
def test_only_the_last_eight_seconds_count() -> None:
    model = load("auto")
    assert model is not None
    audio = _turn("What are the tour dates?")
    noisy_start = bytes(range(256)) * 200  # 6.4 s of junk, then 8 s of silence pushes it out
    padded = noisy_start + b"\xff" * 64000 + audio
    f1 = model.features(padded)
    f2 = model.features(b"\xff" * (64000 - len(audio)) + audio)
    assert f1.shape == (1, 80, 800)
    assert (f1 == f2).all()


@needs_model
def test_no_audio_is_an_error() -> None:
    model = load("auto")
    assert model is not None
    with pytest.raises(ValueError):
        model.complete_probability(b"")


def test_off_is_none() -> None:
    assert load("off") is None
    assert load(" OFF ") is None


def test_a_missing_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no end-of-turn model"):
        load(str(tmp_path / "missing.onnx"))


def test_a_file_that_is_not_a_model_is_a_config_error(tmp_path: Path) -> None:
    if not smart_turn._runtime_available():
        pytest.skip("onnxruntime not installed")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a model"):
        load(str(junk))


def test_auto_without_the_package_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def absent(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", absent)
    assert smart_turn.bundled_model_path() is None
    assert load("auto") is None


def test_auto_without_onnxruntime_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart_turn, "_runtime_available", lambda: False)
    assert load("auto") is None


@needs_model
def test_a_changed_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart_turn, "BUNDLED_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="checksum"):
        smart_turn.bundled_model_path()


@pytest.mark.parametrize("setting", ["off", "auto"])
def test_the_server_loads_the_model_it_is_told_to(setting: str) -> None:
    from hotline.server.app import create_app
    from hotline.server.settings import Settings

    settings = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "t" * 32,
            "HOTLINE_PUBLIC_URL": "https://hotline.example",
            "HOTLINE_TURN_MODEL": setting,
        }
    )
    judge = create_app(settings).state.hub.turn_judge
    model = load(setting)
    if model is None:
        assert judge is None
    else:
        assert judge == model.complete_probability  # the process's one session
