"""G.711: the pure-Python reference is the oracle; the compiled kernels must match it bit for
bit (the compiled tests subclass the reference tests with the functions rebound), and both must
match the stdlib audioop where it exists."""

from __future__ import annotations

import math
import struct
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pytest

import hotline.codec as codec
from hotline.codec import reference

ALL_INT16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


class TestUlawReference:
    ulaw_encode: ClassVar[Any] = staticmethod(reference.ulaw_encode)
    ulaw_decode: ClassVar[Any] = staticmethod(reference.ulaw_decode)
    alaw_to_ulaw: ClassVar[Any] = staticmethod(reference.alaw_to_ulaw)
    ulaw_frame_stats: ClassVar[Any] = staticmethod(reference.ulaw_frame_stats)
    ulaw_periodicity: ClassVar[Any] = staticmethod(reference.ulaw_periodicity)

    def test_encode_all_int16_vs_audioop(self, audioop: ModuleType) -> None:
        assert self.ulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16, 2)

    def test_decode_all_codes_vs_audioop(self, audioop: ModuleType) -> None:
        assert self.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)

    def test_alaw_to_ulaw_all_codes_vs_audioop(self, audioop: ModuleType) -> None:
        expected = audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)
        assert self.alaw_to_ulaw(ALL_CODES) == expected

    def test_known_values(self) -> None:
        # zero and the extremes, from the G.711 tables
        assert self.ulaw_encode(struct.pack("<3h", 0, 32767, -32768)) == bytes([0xFF, 0x80, 0x00])
        assert self.ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])) == struct.pack(
            "<4h", 0, 0, 32124, -32124
        )

    def test_decode_encode_roundtrip_is_identity_on_codes(self) -> None:
        # every code but negative zero (0x7F decodes to 0, which encodes as 0xFF) survives
        back = self.ulaw_encode(self.ulaw_decode(ALL_CODES))
        assert [c for c, b in zip(ALL_CODES, back, strict=True) if c != b] == [0x7F]

    def test_encode_is_monotonic(self) -> None:
        # larger sample -> never a smaller decoded value
        decoded = np.frombuffer(self.ulaw_decode(self.ulaw_encode(ALL_INT16)), "<i2")
        assert np.all(np.diff(decoded.astype(np.int32)) >= 0)

    def test_empty(self) -> None:
        assert self.ulaw_encode(b"") == b""
        assert self.ulaw_decode(b"") == b""
        assert self.alaw_to_ulaw(b"") == b""

    def test_odd_length_pcm_is_an_error(self) -> None:
        with pytest.raises(ValueError):
            self.ulaw_encode(b"\x00\x01\x02")

    def test_frame_stats_silence_and_empty(self) -> None:
        assert self.ulaw_frame_stats(b"") == (reference.DBFS_FLOOR, 0.0)
        assert self.ulaw_frame_stats(b"\xff" * 160) == (reference.DBFS_FLOOR, 0.0)
        assert self.ulaw_frame_stats(b"\x7f\xff" * 80) == (reference.DBFS_FLOOR, 0.0)

    def test_frame_stats_full_scale_square(self) -> None:
        # +-32124 alternating: rms = 32124, a crossing between every pair
        db, zcr = self.ulaw_frame_stats(bytes([0x80, 0x00]) * 80)
        assert db == pytest.approx(20 * math.log10(32124 / 32768), abs=1e-9)
        assert zcr == 1.0

    def test_frame_stats_tone(self) -> None:
        t = np.arange(160)
        pcm = np.rint(8000 * np.sin(2 * np.pi * 1000 * t / 8000)).astype("<i2").tobytes()
        db, zcr = self.ulaw_frame_stats(reference.ulaw_encode(pcm))
        assert db == pytest.approx(20 * math.log10(8000 / math.sqrt(2) / 32768), abs=0.2)
        assert zcr == pytest.approx(2000 / 8000, abs=0.02)  # 2 crossings per 1 kHz period

    def test_periodicity_of_a_pitch_pulse_train_and_of_noise(self) -> None:
        # a 150 Hz vowel-like wave (fundamental + two harmonics): period 53.3 samples
        t = np.arange(320)
        wave = sum(np.sin(2 * np.pi * 150 * k * t / 8000) / k for k in (1, 2, 3))
        voiced = reference.ulaw_encode(np.rint(6000 * wave).astype("<i2").tobytes())
        assert self.ulaw_periodicity(voiced, 20, 120) > 0.9
        noise = np.random.default_rng(3).normal(0, 4000, 320).astype("<i2").tobytes()
        assert self.ulaw_periodicity(reference.ulaw_encode(noise), 20, 120) < 0.4

    def test_periodicity_edges(self) -> None:
        assert self.ulaw_periodicity(b"", 20, 120) == 0.0
        assert self.ulaw_periodicity(b"\x80" * 120, 20, 120) == 0.0  # n <= max_lag
        assert self.ulaw_periodicity(b"\xff" * 320, 20, 120) == 0.0  # silence: no energy
        assert self.ulaw_periodicity(b"\x80" * 320, 1, 5) == 0.0  # constant: mean removed
        with pytest.raises(ValueError):
            self.ulaw_periodicity(b"\x80" * 320, 0, 5)
        with pytest.raises(ValueError):
            self.ulaw_periodicity(b"\x80" * 320, 9, 5)


class TestUlawCompiled(TestUlawReference):
    ulaw_encode = staticmethod(codec.ulaw_encode)
    ulaw_decode = staticmethod(codec.ulaw_decode)
    alaw_to_ulaw = staticmethod(codec.alaw_to_ulaw)
    ulaw_frame_stats = staticmethod(codec.ulaw_frame_stats)
    ulaw_periodicity = staticmethod(codec.ulaw_periodicity)

    def test_periodicity_vs_reference(self) -> None:
        rng = np.random.default_rng(11)
        t = np.arange(1100)
        for n, lo, hi in ((121, 20, 120), (160, 20, 120), (320, 20, 120), (1100, 1, 30)):
            for pitch in (0, 90, 210):
                x = rng.normal(0, 2000, n)
                if pitch:
                    x = x + 8000 * np.sign(np.sin(2 * np.pi * pitch * t[:n] / 8000))
                window = codec.ulaw_encode(np.clip(x, -32768, 32767).astype("<i2").tobytes())
                assert codec.ulaw_periodicity(window, lo, hi) == pytest.approx(
                    reference.ulaw_periodicity(window, lo, hi), abs=1e-12
                )

    def test_encode_all_int16_vs_reference(self) -> None:
        assert codec.ulaw_encode(ALL_INT16) == reference.ulaw_encode(ALL_INT16)

    def test_decode_all_codes_vs_reference(self) -> None:
        assert codec.ulaw_decode(ALL_CODES) == reference.ulaw_decode(ALL_CODES)

    def test_alaw_all_codes_vs_reference(self) -> None:
        assert codec.alaw_to_ulaw(ALL_CODES) == reference.alaw_to_ulaw(ALL_CODES)

    def test_frame_stats_vs_reference(self) -> None:
        rng = np.random.default_rng(7)
        for n in (1, 2, 3, 159, 160, 161, 1000):
            frame = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            db, zcr = codec.ulaw_frame_stats(frame)
            rdb, rzcr = reference.ulaw_frame_stats(frame)
            assert db == pytest.approx(rdb, abs=1e-9)
            assert zcr == pytest.approx(rzcr, abs=1e-12)

    def test_any_buffer_type(self) -> None:
        pcm = np.arange(-1000, 1000, 7, dtype="<i2")
        expected = codec.ulaw_encode(pcm.tobytes())
        assert codec.ulaw_encode(pcm) == expected
        assert codec.ulaw_encode(memoryview(pcm.tobytes())) == expected
        assert codec.ulaw_encode(bytearray(pcm.tobytes())) == expected
        assert codec.ulaw_decode(bytearray(expected)) == codec.ulaw_decode(expected)

    def test_non_contiguous_buffer_is_a_clear_error(self) -> None:
        pcm = np.arange(100, dtype="<i2")[::2]
        with pytest.raises(ValueError, match="contiguous"):
            codec.ulaw_encode(pcm)

    def test_not_a_buffer(self) -> None:
        with pytest.raises(TypeError):
            codec.ulaw_encode("text")
