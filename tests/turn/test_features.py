"""The Whisper log-mel front end against faster-whisper's extractor (an oracle, test-only)."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.turn.features import log_mel, mel_filters, normalise

fw = pytest.importorskip("faster_whisper.feature_extractor")


def _oracle() -> object:
    return fw.FeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=8)


def test_mel_filters_match_the_slaney_bank() -> None:
    ours = mel_filters()
    ref = fw.FeatureExtractor.get_mel_filters(16000, 400, 80)
    assert ours.shape == (80, 201)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    # Slaney area normalisation: every filter's weights sum to about the same area per Hz.
    assert (ours >= 0).all() and (ours.max(axis=1) > 0).all()


@pytest.mark.parametrize("seconds", [0.5, 2.0, 8.0])
def test_log_mel_matches_the_oracle(seconds: float) -> None:
    rng = np.random.default_rng(int(seconds * 10))
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    speechy = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    audio = np.zeros(128000, np.float32)  # front-padded, as the model expects
    audio[-n:] = speechy + 0.01 * rng.standard_normal(n)
    x = normalise(audio)
    ours = log_mel(x)
    ref = _oracle()(x, padding=0)
    assert ours.shape == ref.shape == (80, 800)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_normalise_is_zero_mean_unit_variance() -> None:
    x = normalise(np.linspace(-3, 5, 1000))
    assert abs(float(x.mean())) < 1e-5
    assert abs(float(x.std()) - 1.0) < 1e-4
    assert normalise(np.zeros(10)).tolist() == [0.0] * 10  # the 1e-7 keeps silence finite


def test_log_mel_refuses_what_it_cannot_frame() -> None:
    with pytest.raises(ValueError):
        log_mel(np.zeros((2, 1000)))
    with pytest.raises(ValueError):
        log_mel(np.zeros(100))
