"""eSpeak NG speech synthesis through its C API (ctypes over the ``espeakng-loader`` wheel).

The wheel ships ``libespeak-ng`` and its data, so nothing is installed system-wide. The engine
is global state inside the library and is not thread-safe: it is initialised once per process,
and every call holds one lock for the whole synthesis. Output is collected from the synth
callback in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode (no audio device is opened). The random seed is
reset before every call, but libespeak-ng keeps its pitch-flutter phase in a private static that
runs on from call to call: a repeated sentence may differ slightly within one process, while the
same sequence of calls gives the same samples in every process.

Call::

    pcm = synthesize("Hello there.", voice="en-us", rate_wpm=175)
    pcm.samples       # int16 mono little-endian bytes
    pcm.sample_rate   # 22050 for the bundled voices
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from dataclasses import dataclass
from typing import Final

from hotline.errors import SynthesisError

__all__ = [
    "MAX_PITCH",
    "MAX_RATE_WPM",
    "MIN_PITCH",
    "MIN_RATE_WPM",
    "Pcm",
    "sample_rate",
    "synthesize",
]

MIN_RATE_WPM: Final = 80
MAX_RATE_WPM: Final = 450
MIN_PITCH: Final = 0
MAX_PITCH: Final = 99
DEFAULT_PITCH: Final = 50
MAX_TEXT_CHARS: Final = 10_000  # ElevenLabs caps a request near here; ~9 min of speech

# speak_lib.h / espeak_ng.h constants used here.
_ENOUTPUT_MODE_SYNCHRONOUS: Final = 0x0001
_ENS_OK: Final = 0
_POS_CHARACTER: Final = 1
_ESPEAK_CHARS_UTF8: Final = 1
_ESPEAK_RATE: Final = 1
_ESPEAK_PITCH: Final = 3
_RAND_SEED: Final = 1


@dataclass(frozen=True)
class Pcm:
    """Mono 16-bit PCM.

    Attributes:
        samples: signed 16-bit little-endian samples, one channel.
        sample_rate: samples per second.
    """

    samples: bytes
    sample_rate: int

    def __post_init__(self) -> None:
        if len(self.samples) % 2:
            raise ValueError("Pcm.samples must hold whole int16 samples (even byte count)")
        if self.sample_rate <= 0:
            raise ValueError(f"Pcm.sample_rate must be positive, got {self.sample_rate}")

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return len(self.samples) // 2

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.sample_rate


# int (*t_espeak_callback)(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The process-wide eSpeak NG instance. Only used with ``_LOCK`` held."""

    def __init__(self) -> None:
        import espeakng_loader

        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise SynthesisError(f"cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        self._lib = lib
        self._declare(lib)
        self._chunks: list[bytes] = []
        # Kept referenced for the life of the process: the C library holds the pointer.
        self._callback = _SYNTH_CALLBACK(self._on_samples)

        lib.espeak_ng_InitializePath(data_path.encode())
        context = ctypes.c_void_p()
        status = lib.espeak_ng_Initialize(ctypes.byref(context))
        if context.value:
            lib.espeak_ng_ClearErrorContext(ctypes.byref(context))
        self._check(status, "initialise")
        self._check(
            lib.espeak_ng_InitializeOutput(_ENOUTPUT_MODE_SYNCHRONOUS, 0, None),
            "initialise output",
        )
        lib.espeak_SetSynthCallback(self._callback)
        self.sample_rate = int(lib.espeak_ng_GetSampleRate())
        if self.sample_rate <= 0:
            raise SynthesisError(f"eSpeak NG reported sample rate {self.sample_rate}")

    @staticmethod
    def _declare(lib: ctypes.CDLL) -> None:
        c_int, c_uint, c_char_p, c_void_p = (
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_char_p,
            ctypes.c_void_p,
        )
        lib.espeak_ng_InitializePath.argtypes = [c_char_p]
        lib.espeak_ng_InitializePath.restype = None
        lib.espeak_ng_Initialize.argtypes = [c_void_p]
        lib.espeak_ng_Initialize.restype = c_int
        lib.espeak_ng_ClearErrorContext.argtypes = [c_void_p]
        lib.espeak_ng_ClearErrorContext.restype = None
        lib.espeak_ng_InitializeOutput.argtypes = [c_int, c_int, c_char_p]
        lib.espeak_ng_InitializeOutput.restype = c_int
        lib.espeak_ng_GetSampleRate.argtypes = []
        lib.espeak_ng_GetSampleRate.restype = c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ng_SetVoiceByName.argtypes = [c_char_p]
        lib.espeak_ng_SetVoiceByName.restype = c_int
        lib.espeak_ng_SetParameter.argtypes = [c_int, c_int, c_int]
        lib.espeak_ng_SetParameter.restype = c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_ng_Synthesize.argtypes = [
            c_void_p,  # text
            ctypes.c_size_t,  # size
            c_uint,  # position
            c_int,  # position_type
            c_uint,  # end_position
            c_uint,  # flags
            ctypes.POINTER(c_uint),  # unique_identifier
            c_void_p,  # user_data
        ]
        lib.espeak_ng_Synthesize.restype = c_int
        lib.espeak_ng_GetStatusCodeMessage.argtypes = [c_int, c_char_p, ctypes.c_size_t]
        lib.espeak_ng_GetStatusCodeMessage.restype = None

    def _message(self, status: int) -> str:
        buf = ctypes.create_string_buffer(512)
        self._lib.espeak_ng_GetStatusCodeMessage(status, buf, len(buf))
        text = buf.value.decode("utf-8", "replace").strip()
        return text or f"status 0x{status & 0xFFFFFFFF:08x}"

    def _check(self, status: int, what: str) -> None:
        if status != _ENS_OK:
            raise SynthesisError(f"eSpeak NG failed to {what}: {self._message(status)}")

    def _on_samples(self, wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
        # Called from inside espeak_ng_Synthesize on this thread (GIL re-acquired by ctypes).
        # n == 0 marks the end of the text; wav may then be NULL.
        if n > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, n * 2))
        return 0  # 0 = continue

    def synthesize(self, text: str, voice: str, rate_wpm: int, pitch: int) -> bytes:
        lib = self._lib
        status = lib.espeak_ng_SetVoiceByName(voice.encode("utf-8"))
        if status != _ENS_OK:
            raise SynthesisError(f"eSpeak NG has no voice {voice!r}: {self._message(status)}")
        self._check(lib.espeak_ng_SetParameter(_ESPEAK_RATE, rate_wpm, 0), "set the rate")
        self._check(lib.espeak_ng_SetParameter(_ESPEAK_PITCH, pitch, 0), "set the pitch")
        lib.espeak_ng_SetRandSeed(_RAND_SEED)
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        self._chunks = []
        try:
            status = lib.espeak_ng_Synthesize(
                buf, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            self._check(status, "synthesise")
            return b"".join(self._chunks)
        finally:
            self._chunks = []


_LOCK = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    # Caller holds _LOCK.
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    """The engine's output sample rate in Hz (initialises the engine on first use)."""
    with _LOCK:
        return _get_engine().sample_rate


@functools.lru_cache(maxsize=64)
def has_voice(voice: str) -> bool:
    """Whether eSpeak NG has a voice called ``voice`` (e.g. a language code: ``es``); blocks
    while a synthesis holds the engine."""
    if not voice or "\0" in voice or len(voice) > 100:
        return False
    with _LOCK:
        engine = _get_engine()
        status = engine._lib.espeak_ng_SetVoiceByName(voice.encode("utf-8"))
    return bool(status == _ENS_OK)


def synthesize(
    text: str, *, voice: str = "en-us", rate_wpm: int = 175, pitch: int | None = None
) -> Pcm:
    """Speak ``text`` with eSpeak NG.

    Thread-safe (calls are serialised); nothing is printed.

    Args:
        text: plain UTF-8 text (not SSML). Empty or whitespace-only text gives an empty Pcm.
        voice: an eSpeak NG voice name, e.g. ``"en-us"``, ``"en"``, ``"de"``.
        rate_wpm: speaking rate, words per minute, 80..450.
        pitch: base pitch 0..99; ``None`` means the default (50).

    Returns:
        Mono int16 PCM at the engine's rate (22050 Hz).

    Raises:
        SynthesisError: unknown voice, out-of-range rate or pitch, text too long or containing
            NUL, or an engine failure.
    """
    if not isinstance(text, str):
        raise SynthesisError(f"text must be str, not {type(text).__name__}")
    if isinstance(rate_wpm, bool) or not isinstance(rate_wpm, int):
        raise SynthesisError(f"rate_wpm must be an int, not {type(rate_wpm).__name__}")
    if not MIN_RATE_WPM <= rate_wpm <= MAX_RATE_WPM:
        raise SynthesisError(
            f"rate_wpm must be within {MIN_RATE_WPM}..{MAX_RATE_WPM}, got {rate_wpm}"
        )
    if pitch is None:
        pitch = DEFAULT_PITCH
    if isinstance(pitch, bool) or not isinstance(pitch, int):
        raise SynthesisError(f"pitch must be an int or None, not {type(pitch).__name__}")
    if not MIN_PITCH <= pitch <= MAX_PITCH:
        raise SynthesisError(f"pitch must be within {MIN_PITCH}..{MAX_PITCH}, got {pitch}")
    if not isinstance(voice, str) or not voice or "\0" in voice or len(voice) > 100:
        raise SynthesisError(f"invalid voice name {voice!r}")
    if "\0" in text:
        raise SynthesisError("text must not contain NUL characters")
    if len(text) > MAX_TEXT_CHARS:
        raise SynthesisError(f"text longer than {MAX_TEXT_CHARS} characters ({len(text)})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise SynthesisError(f"text is not valid Unicode: {exc}") from exc
    with _LOCK:
        engine = _get_engine()
        if not text.strip():
            return Pcm(b"", engine.sample_rate)
        samples = engine.synthesize(text, voice, rate_wpm, pitch)
        rate = engine.sample_rate
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        import array

        arr = array.array("h", samples)
        arr.byteswap()
        samples = arr.tobytes()
    return Pcm(samples, rate)
