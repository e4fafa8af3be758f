"""``python -m hotline.sim.load``: the same as ``hotline load``."""

from __future__ import annotations

import argparse
import sys

from hotline.sim.load.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hotline.sim.load")
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
