"""Deprecated shim: this is :mod:`hotline.tts_standin.espeak` under its old name."""

import sys

from hotline.tts_standin import espeak

sys.modules[__name__] = espeak
