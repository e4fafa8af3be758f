"""Deprecated shim: this is :mod:`hotline.tts_standin.encode` under its old name."""

import sys

from hotline.tts_standin import encode

sys.modules[__name__] = encode
