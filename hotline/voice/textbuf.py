"""Deprecated shim: this is :mod:`hotline.tts_standin.textbuf` under its old name."""

import sys

from hotline.tts_standin import textbuf

sys.modules[__name__] = textbuf
