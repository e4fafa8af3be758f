"""``python -m hotline.ear --port N``: the local ear on 127.0.0.1."""

from __future__ import annotations

import argparse

from hotline.ear.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hotline.ear", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


raise SystemExit(main())
