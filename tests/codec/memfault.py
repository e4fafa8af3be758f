"""Real allocation failures for tests: a call made with the address space capped (RLIMIT_AS).

No mock: the allocator really returns NULL, so the compiled code takes its real out-of-memory
path. Only for a child process (the cap is process-wide; pytest itself must not run under it),
Linux/glibc only. In the child, call :func:`prepare` first thing, before allocating anything
large: it fixes glibc's mmap threshold at 128 KiB, so big blocks freed earlier are returned to
the system instead of staying in the heap where a later allocation would find room without
asking for more address space.

Use from another engineer's test (e.g. a Call that must reset its converter after *any*
exception)::

    code = "from tests.codec import memfault; memfault.prepare(); ...; " \
           "err = memfault.call_capped(lambda: converter.feed(big)); ..."
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
"""

from __future__ import annotations

import ctypes
import resource
import sys
from collections.abc import Callable

_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(resource, "RLIMIT_AS")


def prepare() -> None:
    """Make the heap give large blocks back (see the module docstring)."""
    ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def call_capped(fn: Callable[[], object], slack: int = 0) -> BaseException | None:
    """Run ``fn()`` with the address space capped at its current size + ``slack`` bytes;
    return the exception it raised (None if it did not). The cap is lifted afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + slack, hard))
    try:
        fn()
    except BaseException as e:  # the caller inspects it
        return e
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return None
