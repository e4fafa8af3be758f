"""The ``hotline`` command: ``hotline serve``, ``call``, ``tts-standin``, ``load``, ``test``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when chosen, so ``hotline call`` does not pay for
FastAPI and ``hotline serve`` does not pay for the simulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("hotline.server.cli", "run the bridge (FastAPI on uvicorn)"),
    "call": ("hotline.sim.call_cli", "place a simulated Twilio call against a running server"),
    "tts-standin": (
        "hotline.tts_standin.cli",
        "run the TTS stand-in alone (eSpeak NG speaking ElevenLabs' WebSocket protocol)",
    ),
    "load": ("hotline.sim.load", "drive many simulated calls at once and report"),
    "test": (
        "hotline.sim.scenario.cli",
        "run scenario files (what callers say, what they must hear) against a line",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__.splitlines()[0])
    from hotline import __version__

    parser.add_argument("--version", action="version", version=f"hotline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the module that will run
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
