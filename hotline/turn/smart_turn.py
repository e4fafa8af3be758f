"""Smart Turn v3: an end-of-turn model that listens to the caller's turn and says whether it is done.

The model (pipecat-ai's Smart Turn v3.2, BSD-2-Clause; a Whisper-Tiny encoder with a linear
head, an 8.7 MB int8 ONNX) takes the last 8 s of a turn as Whisper log-mel features
(:mod:`hotline.turn.features`) and returns the probability that the speaker has finished: its
graph ends in a sigmoid, so the output *is* the probability (done = p > 0.5 in its authors' use).

Phone audio goes in as it arrives: 8 kHz µ-law, decoded and upsampled to 16 kHz by hotline's
own resampler (:class:`hotline.codec.Resampler`), the last 8 s kept and, when shorter, padded
with zeros at the *front* (as the model was trained). The model never heard the phone band: on
a simulated µ-law channel its "unfinished called finished" rate was published as 1.8× the
wideband one, so the threshold belongs to whoever combines it with other signals, measured on
phone audio (``benchmarks/bench_turns.py``).

Where the model comes from (:func:`load`): a path to the ONNX file, or ``"auto"``: the file
that the installed ``pipecat-ai`` package ships as data (found through its distribution's file
list; pipecat is never imported), pinned by SHA-256. Never downloaded. Installing it: ``make``
(see the Makefile: pipecat-ai without its dependencies, whose pins would fight ours) or by
hand ``pip install 'hotline[turn]'`` and ``pip install --no-deps pipecat-ai==1.14.0``.

Cost (``benchmarks/bench_turns.py``): one inference is ~50-70 ms of one core, so it runs off
the event loop (a worker thread) and only at pauses. One :class:`SmartTurn` per process
(:func:`load` caches it); its methods are thread-safe (onnxruntime's ``run`` is; the resampler
is made per call). The session uses one intra-op and one inter-op thread.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Final

from hotline.errors import ConfigError

__all__ = [
    "BUNDLED_FILE",
    "BUNDLED_PACKAGE",
    "BUNDLED_SHA256",
    "SmartTurn",
    "bundled_model_path",
    "load",
]

#: The distribution that ships the model, the file inside it, and that file's SHA-256.
BUNDLED_PACKAGE: Final = "pipecat-ai"
BUNDLED_FILE: Final = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
BUNDLED_SHA256: Final = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"

_RATE = 16_000
_HOP = 160


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class SmartTurn:
    """One Smart Turn model in an onnxruntime session (see the module docstring).

    Args:
        path: the ONNX file. Its input must be float ``[batch, 80, frames]`` and its output
            ``[batch, 1]``; the window is ``frames`` × 10 ms (800: 8 s), read from the file.

    Raises:
        ConfigError: the file is missing, is not a model onnxruntime can load, or its inputs
            and outputs are not Smart Turn's.
        ImportError: onnxruntime or numpy is not installed.
    """

    __slots__ = ("_input", "_n_mels", "_output", "_samples", "_session", "path")

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"no end-of-turn model at {self.path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about the quantised graph are not ours to fix
        try:
            session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own (Fail, InvalidGraph, ...)
            raise ConfigError(f"{self.path} is not a model onnxruntime can load: {exc}") from exc
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ConfigError(f"{self.path}: expected one input and one output (Smart Turn's)")
        shape_in, shape_out = inputs[0].shape, outputs[0].shape
        if (
            inputs[0].type != "tensor(float)"
            or len(shape_in) != 3
            or not isinstance(shape_in[1], int)
            or not isinstance(shape_in[2], int)
            or len(shape_out) != 2
            or shape_out[1] != 1
        ):
            raise ConfigError(
                f"{self.path}: input {inputs[0].name} {shape_in} -> {outputs[0].name} "
                f"{shape_out} is not Smart Turn's float [batch, mels, frames] -> [batch, 1]"
            )
        if shape_in[1] != 80:
            raise ConfigError(f"{self.path}: {shape_in[1]} mel bins; the front end makes 80")
        self._session = session
        self._input = inputs[0].name
        self._output = outputs[0].name
        self._n_mels = shape_in[1]
        self._samples = shape_in[2] * _HOP

    @property
    def window_seconds(self) -> float:
        """How much of the end of a turn the model hears (8 s for v3)."""
        return self._samples / _RATE

    def features(self, ulaw_8k: bytes) -> Any:
        """The model's input for a turn: float32 ``[1, 80, frames]`` (see :meth:`complete_probability`)."""
        import numpy as np

        from hotline.codec import Resampler, ulaw_decode

        keep = self._samples // 2  # 8 kHz samples = µ-law bytes that fill the window
        tail = bytes(ulaw_8k[-keep:])
        resampler = Resampler(8000, _RATE)
        pcm = resampler.process(ulaw_decode(tail)) + resampler.flush()
        return self.features_16k(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)

    def features_16k(self, audio: Any) -> Any:
        """The model's input for 16 kHz float audio in [-1, 1] (the last 8 s, front-padded)."""
        import numpy as np

        from hotline.turn.features import log_mel, normalise

        audio = np.asarray(audio, dtype=np.float32)[-self._samples :]
        window = np.zeros(self._samples, dtype=np.float32)
        window[self._samples - audio.size :] = audio
        return log_mel(normalise(window))[None, :, :]

    def complete_probability(self, ulaw_8k: bytes) -> float:
        """The probability that the caller's turn is complete.

        Args:
            ulaw_8k: the turn so far as 8 kHz µ-law, from its start (or earlier: only the last
                :attr:`window_seconds` are heard) through the trailing silence.

        Returns:
            A probability in [0, 1].

        Raises:
            ValueError: no audio.
        """
        if not ulaw_8k:
            raise ValueError("complete_probability needs some audio")
        return self._run(self.features(ulaw_8k))

    def complete_probability_16k(self, audio: Any) -> float:
        """As :meth:`complete_probability`, for 16 kHz float audio in [-1, 1] (wideband: what
        the model was trained on; the benchmark compares it with the phone's).

        Raises:
            ValueError: no audio.
        """
        if len(audio) == 0:
            raise ValueError("complete_probability_16k needs some audio")
        return self._run(self.features_16k(audio))

    def _run(self, features: Any) -> float:
        out = self._session.run([self._output], {self._input: features})[0]
        p = float(out.reshape(-1)[0])
        if not 0.0 <= p <= 1.0:  # NaN included
            raise ValueError(f"the model returned {p}, not a probability")
        return p


def bundled_model_path() -> Path | None:
    """The model file of the installed ``pipecat-ai`` distribution, or None when not installed.

    Found from the distribution's record of its files; nothing of pipecat is imported.

    Raises:
        ConfigError: the package is installed but the file is not the pinned one.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(BUNDLED_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.as_posix() == BUNDLED_FILE:
            path = Path(str(dist.locate_file(entry)))
            break
    else:
        return None
    if not path.is_file():
        return None
    if _sha256(path) != BUNDLED_SHA256:
        raise ConfigError(
            f"{path} is not Smart Turn v3.2 as pinned (checksum differs): refusing a changed model"
        )
    return path


def _runtime_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "numpy"))


_LOCK = threading.Lock()
_LOADED: dict[Path, SmartTurn] = {}


def load(setting: str | None) -> SmartTurn | None:
    """The process's end-of-turn model for a setting (``HOTLINE_TURN_MODEL``).

    Args:
        setting: ``"off"``: none. ``"auto"``, ``""`` or None: the installed pipecat-ai's file
            when it and onnxruntime are installed, else none. Anything else: a path to a Smart
            Turn ONNX file, which must load.

    Returns:
        The model (one per file per process: later calls return the same object), or None.

    Raises:
        ConfigError: a path that is missing or not a Smart Turn model, a path given without
            onnxruntime installed, or an installed pipecat-ai whose file is not the pinned one.
    """
    name = (setting or "auto").strip()
    if name.lower() == "off":
        return None
    if name.lower() == "auto":
        if not _runtime_available():
            return None
        found = bundled_model_path()
        if found is None:
            return None
        path = found
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"no end-of-turn model at {path}")
        if not _runtime_available():
            raise ConfigError(
                f"the end-of-turn model {path} needs onnxruntime and numpy: "
                "pip install 'hotline[turn]'"
            )
    path = path.resolve()
    with _LOCK:
        model = _LOADED.get(path)
        if model is None:
            model = _LOADED[path] = SmartTurn(path)
        return model
