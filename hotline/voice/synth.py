"""Deprecated shim: this is :mod:`hotline.tts_standin.synth` under its old name."""

import sys

from hotline.tts_standin import synth

sys.modules[__name__] = synth
