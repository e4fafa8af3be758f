"""Deprecated shim: use :mod:`hotline.tts_standin.server` (``TTSStandIn``, ``StandInConfig``)."""

from __future__ import annotations

from hotline.tts_standin.cli import add_arguments, run
from hotline.tts_standin.config import ConnectionRecord
from hotline.tts_standin.config import StandInConfig as VoiceConfig
from hotline.tts_standin.config import StandInStats as VoiceStats
from hotline.tts_standin.faults import FAULT_MODES
from hotline.tts_standin.server import TTSStandIn as LocalVoice

__all__ = [
    "FAULT_MODES",
    "ConnectionRecord",
    "LocalVoice",
    "VoiceConfig",
    "VoiceStats",
    "add_arguments",
    "run",
]
