"""The load generator (``hotline load``): many simulated Twilio calls at once, or a soak of many
short calls one after another, against one hotline server.

Each call is a :func:`hotline.sim.caller.place_call` (signed webhook, signed upgrade, real-time
20 ms inbound media, a playback clock that echoes marks only once their audio has played). While a
call is up, a single feeder task keeps it speaking back to back: it ``POST``s
``/calls/{CallSid}/say`` (admin token) for the next line once the server has sent the current
one's last frame (its end mark arrived) and the caller has at most ``lead_ms`` of it left to
play, so the next line's first audio arrives as the last one ends: speech is continuous when
the bridge is fast enough, and the server's time-to-first-audio and bridge-overhead histograms
measure latency, not waiting behind queued audio. The report joins what the callers measured (underruns, time to first audio, errors)
with what the server says about itself (its ``/metrics`` histograms, diffed over the run) and
with what the kernel says about the server process (CPU seconds and resident memory from
``/proc/<pid>``, when the server is local: ``--spawn-server`` or ``--server-pid``).

``--spawn-server`` starts ``hotline serve --insecure-dev`` as a child on a free port with
generated Twilio and admin tokens (signatures are checked, as in production), and by default the
local voice as a second child process (``hotline tts-standin``) reached through
``ELEVENLABS_BASE_URL``, so the server's CPU figure is hotline's own work, as it would be with
the real ElevenLabs; ``--embedded-voice`` uses the server's in-process voice instead.

Soak (issue 5 item 4): ``hotline load --sequential 1000 --seconds 0.6 --spawn-server`` places
1,000 short calls one after another and reports the server's resident memory growth and open
file descriptors before and after.
"""

from __future__ import annotations

from hotline.sim.load.calls import LoadOptions, run_load
from hotline.sim.load.cli import add_arguments, env_pairs, options_from_args, run, run_async
from hotline.sim.load.consts import (
    DEFAULT_TEXTS,
    HIST_BRIDGE,
    HIST_CONVERSION,
    HIST_TTFA,
    HIST_TTS_FIRST,
    UNDERRUN_LIMIT_MS,
)
from hotline.sim.load.metrics import Scrape, histogram_quantile, parse_metrics
from hotline.sim.load.proc import ProcSample, proc_sample
from hotline.sim.load.report import RunFigures, build_report, summary
from hotline.sim.load.spawn import SpawnedServer, spawn_server

__all__ = [
    "DEFAULT_TEXTS",
    "HIST_BRIDGE",
    "HIST_CONVERSION",
    "HIST_TTFA",
    "HIST_TTS_FIRST",
    "UNDERRUN_LIMIT_MS",
    "LoadOptions",
    "ProcSample",
    "RunFigures",
    "Scrape",
    "SpawnedServer",
    "add_arguments",
    "build_report",
    "env_pairs",
    "histogram_quantile",
    "options_from_args",
    "parse_metrics",
    "proc_sample",
    "run",
    "run_async",
    "run_load",
    "spawn_server",
    "summary",
]
