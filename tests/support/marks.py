"""The marks `make test`'s scheduling relies on. It runs the suite on pytest-xdist workers with
``--dist loadgroup``: tests sharing an ``xdist_group`` run on one worker, one after another.

Timing is asserted on the media clock where the test can read it (e.g. a clear's latency as
media milliseconds, tests/server/test_calls.py); the tests below assert wall-clock windows
read from the caller simulator's report or a socket's elapsed time, which a second test
running beside them on the other worker can stretch but not a test in their own group."""

from __future__ import annotations

import pytest

#: Asserts an upper bound on wall-clock time: never beside another test of this group.
wall_clock = pytest.mark.xdist_group("wallclock")

#: Uses the fault matrix's one shared server (tests/faults/conftest.py).
fault_matrix = pytest.mark.xdist_group("faults")
