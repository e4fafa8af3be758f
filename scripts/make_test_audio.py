#!/usr/bin/env python3
"""Write the test audio (and what callers would hear) as files a person can listen to.

    .venv/bin/python scripts/make_test_audio.py [OUT_DIR] [--prototype]

The suite makes the same audio on demand (tests/audio.py, cached in tests/data/generated/);
this script also writes it out as playable files:

- ``source-speech-22050.wav``: the eSpeak NG speech every test uses
- ``elevenlabs-<format>.{mp3,wav}``: that speech in each ElevenLabs ``output_format`` (PCM and
  G.711 wrapped in a WAV header only here, for players; the tests use the raw bytes)
- ``elevenlabs-mp3_44100_128-lametag.mp3``: the gapless variant with an Info/LAME tag
- ``sweep-44100.wav``: the 100 Hz -> 20 kHz anti-aliasing sweep
- ``caller-hears-<format>.wav``: hotline's µ-law 8 kHz output for each format (needs the codec)
- ``caller-hears-prototype.wav`` (with ``--prototype``): the per-chunk pydub prototype, slow
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import audio  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=str(audio.GENERATED / "listen"))
    parser.add_argument("--prototype", action="store_true", help="also render the prototype")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    written: list[Path] = []

    def write(name: str, data: bytes) -> None:
        path = out / name
        path.write_bytes(data)
        written.append(path)

    write("source-speech-22050.wav", audio.wav_bytes(audio.speech(), audio.ESPEAK_RATE))
    for fmt in audio.iter_all_formats():
        codec = fmt.split("_")[0]
        data = audio.encoded(fmt)
        if codec == "mp3":
            write(f"elevenlabs-{fmt}.mp3", data)
        else:
            write(f"elevenlabs-{fmt}.wav", audio.wav_bytes(data, audio.format_rate(fmt), codec))
    write("elevenlabs-mp3_44100_128-lametag.mp3", audio.encoded("mp3_44100_128", tag=True))
    write("sweep-44100.wav", audio.wav_bytes(audio.sweep(44100), 44100))

    try:
        from hotline.codec import Transcoder
    except ImportError as exc:
        print(f"hotline.codec not importable ({exc}); skipping caller-hears-*.wav")
    else:
        for fmt in audio.iter_all_formats():
            t = Transcoder(fmt)
            ulaw = b"".join(t.feed(c) for c in audio.chunks(audio.encoded(fmt))) + t.flush()
            write(f"caller-hears-{fmt}.wav", audio.wav_bytes(ulaw, 8000, "ulaw"))

    if args.prototype:
        from benchmarks.rivals import Prototype, run

        data = audio.encoded("mp3_44100_128")
        ulaw = run(Prototype(), audio.chunks(data))
        write("caller-hears-prototype.wav", audio.wav_bytes(ulaw, 8000, "ulaw"))

    for path in written:
        print(f"{path.stat().st_size:>10,d}  {path}")
    print(f"{len(written)} files in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
