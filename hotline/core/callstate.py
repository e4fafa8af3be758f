"""Where a :class:`~hotline.core.call.Call` is in its life, and the error for a method used in
the wrong state. Sans-I/O."""

from __future__ import annotations

import enum

from hotline.errors import HotlineError

__all__ = ["CallState", "CallStateError"]


class CallStateError(HotlineError, RuntimeError):
    """A call method was used in a state that does not allow it (e.g. ``say`` after hang-up)."""


class CallState(enum.Enum):
    """Where a :class:`~hotline.core.call.Call` is in its life."""

    CONNECTING = "connecting"  # before Twilio's ``start``
    STARTED = "started"  # ``start`` seen; waiting for the shell to accept() or reject()
    ACTIVE = "active"  # speaking, listening
    CLOSING = "closing"  # the goodbye is playing; hang up once it has played
    ENDED = "ended"  # hung up, stopped or rejected; everything else is ignored
