"""The caller's audio: eSpeak parts with a pause between them, recorded WAVs at any rate."""

from __future__ import annotations

import array
import wave
from pathlib import Path

import pytest

from hotline.sim.scenario.audio import step_audio, wav_ulaw
from hotline.sim.scenario.model import ScenarioError, parse_scenario


def steps(text: str):  # type: ignore[no-untyped-def]
    return parse_scenario(text, path=Path("/tmp/x/sc.toml")).steps


def write_wav(path: Path, rate: int, channels: int, seconds: float = 0.5, width: int = 2) -> None:
    n = int(rate * seconds)
    pcm = array.array("h", (int(8000 * ((i // 20) % 2 * 2 - 1)) for i in range(n * channels)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes() if width == 2 else bytes(n * channels))


def test_a_pause_mid_sentence_is_silence_between_the_parts() -> None:
    one = step_audio(steps("[[step]]\nsay = 'Tell me about the new album'")[0], "en-us", 170)
    two = step_audio(
        steps("[[step]]\nsay = ['Tell me about', 'the new album']\ngap_ms = 600")[0], "en-us", 170
    )
    assert one is not None and two is not None
    assert two.ms >= one.ms + 300  # the pause is in it
    assert 0 < two.speech_end < len(two.frames)


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (16000, 1), (44100, 2), (22050, 1)])
def test_a_wav_at_any_rate_becomes_8_khz(tmp_path: Path, rate: int, channels: int) -> None:
    path = tmp_path / "c.wav"
    write_wav(path, rate, channels)
    ulaw = wav_ulaw(path)
    assert abs(len(ulaw) - 4000) <= 80  # 0.5 s at 8 kHz, whatever it was recorded at


def test_a_bad_wav_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(ScenarioError, match="not a readable WAV"):
        wav_ulaw(tmp_path / "junk.wav")
    with pytest.raises(ScenarioError, match="not a readable WAV"):
        wav_ulaw(tmp_path / "missing.wav")
    write_wav(tmp_path / "u8.wav", 8000, 1, width=1)
    with pytest.raises(ScenarioError, match="8-bit samples"):
        wav_ulaw(tmp_path / "u8.wav")


def test_coughs_and_noise_are_sent_whole() -> None:
    cough, noise = steps("[[step]]\ncough = 300\n[[step]]\nnoise = 1000\nnoise_dbfs = -60")
    c = step_audio(cough, "en-us", 170)
    n = step_audio(noise, "en-us", 170)
    assert c is not None and c.ms == 300 and n is not None and n.ms == 1000
    assert n.speech_end == -1  # a -60 dBFS hiss is below the caller's speech energy
