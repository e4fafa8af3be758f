"""Whisper's log-mel front end, as the Smart Turn model reads it. numpy only.

Written from the published definition (openai/whisper ``log_mel_spectrogram``; Smart Turn calls
it through a feature extractor with an 8 s window and waveform normalisation first):

1. normalise the whole window to zero mean and unit variance (``var + 1e-7``);
2. short-time Fourier transform: 400-sample periodic Hann window (25 ms at 16 kHz), hop 160
   (10 ms), centred (the signal reflected by 200 samples at each end); power ``|X|²``;
3. the last frame dropped (Whisper's ``stft[..., :-1]``): ``len(x) / 160`` frames;
4. 80 triangular mel filters on the Slaney scale with Slaney area normalisation, 0 to 8 kHz;
5. ``log10`` of the filter energies, floored at 1e-10;
6. clamped from below at the window's maximum minus 8 (80 dB of range);
7. ``(L + 4) / 4``.

The STFT is done in float64 and the result returned as float32 ``[80, frames]``. Nothing here
calls BLAS (see :func:`_apply_filters`): the front end runs on the thread that calls it.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["HOP", "N_FFT", "N_MELS", "RATE", "log_mel", "mel_filters", "normalise"]

RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80

# The Slaney mel scale (Auditory Toolbox): linear below 1 kHz at 200/3 Hz per mel, logarithmic
# above, where 27 mels span a factor of 6.4 in frequency.
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _hz_to_mel(hz: F64) -> F64:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        log = _BREAK_MEL + np.log(np.maximum(hz, 1e-300) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, log, linear)


def _mel_to_hz(mel: F64) -> F64:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _LINEAR_HZ_PER_MEL
    log = _BREAK_HZ * np.exp(_LOG_STEP * (mel - _BREAK_MEL))
    return np.where(mel >= _BREAK_MEL, log, linear)


@functools.cache
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = RATE) -> F64:
    """The ``[n_mels, n_fft // 2 + 1]`` Slaney mel filter bank from 0 Hz to ``rate / 2``.

    Filter ``i`` is a triangle rising from edge ``i`` to edge ``i + 1`` and falling to edge
    ``i + 2`` (edges equally spaced in mels), scaled by ``2 / (f[i + 2] - f[i])`` so that each
    filter has the same area. Read-only (cached).
    """
    bins = np.arange(n_fft // 2 + 1, dtype=np.float64) * rate / n_fft
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(np.float64(rate / 2))), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))
    weights.setflags(write=False)
    return weights


@functools.cache
def _filter_spans() -> tuple[tuple[int, int, F64], ...]:
    # Each filter's nonzero bins: a triangle a few bins wide.
    out = []
    for row in mel_filters():
        nz = np.flatnonzero(row)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        out.append((lo, hi, row[lo:hi, None].copy()))
    return tuple(out)


def _apply_filters(power: F64) -> F64:
    """``mel_filters() @ power`` without BLAS: a matrix product this size makes OpenBLAS start
    its worker threads, which then spin for milliseconds after it returns, on another core,
    while the model runs (measured: the query's process CPU doubled). The filters are narrow
    triangles, so the sums over their own bins are cheap."""
    mel = np.empty((N_MELS, power.shape[1]), dtype=np.float64)
    for i, (lo, hi, weights) in enumerate(_filter_spans()):
        mel[i] = (weights * power[lo:hi]).sum(axis=0)
    return mel


@functools.cache
def _window(n_fft: int) -> F64:
    # Periodic Hann: 0.5 - 0.5 cos(2 pi n / N) for n = 0..N-1.
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    w.setflags(write=False)
    return w


def normalise(x: npt.ArrayLike) -> F32:
    """Zero mean and unit variance over the whole window (population variance, + 1e-7)."""
    x = np.asarray(x, dtype=np.float32)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


def log_mel(x: npt.ArrayLike) -> F32:
    """Whisper's log-mel spectrogram of 16 kHz mono float audio (steps 2-7 of the module doc).

    Args:
        x: samples (any real dtype), at least ``N_FFT // 2 + 1`` of them; a whole number of hops
            gives exactly ``len(x) / HOP`` frames.

    Returns:
        float32 ``[80, len(x) // HOP]``.

    Raises:
        ValueError: not one-dimensional, or too short to reflect-pad.
    """
    signal = np.asarray(x, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError("log_mel takes one channel (a 1-D array)")
    half = N_FFT // 2
    if signal.size <= half:
        raise ValueError(f"log_mel needs more than {half} samples")
    padded = np.pad(signal, half, mode="reflect")
    n_frames = 1 + (padded.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    spectrum = np.fft.rfft(frames * _window(N_FFT), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2)[:-1].T  # [bins, frames], last frame dropped
    mel = _apply_filters(power)
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)
