"""The server process as the kernel sees it: CPU seconds, resident memory, open fds."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcSample:
    """One look at a process: CPU seconds (user + system, all threads), RSS bytes, open fds."""

    pid: int
    cpu_s: float
    rss_bytes: int
    fds: int
    threads: int


def proc_sample(pid: int) -> ProcSample | None:
    """Read ``/proc/<pid>``; None if the process is gone or /proc is unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        # the command name may hold spaces and parentheses: split after the last ')'
        rest = stat[stat.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(rest[11]) + int(rest[12])) / ticks  # utime, stime (fields 14, 15)
        threads = int(rest[17])
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    return ProcSample(pid, cpu, rss, fds, threads)


# ----------------------------------------------------------------------------- /metrics
