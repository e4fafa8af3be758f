"""The simulator's one error: a call that could not be set up."""

from __future__ import annotations

__all__ = ["CallError"]


class CallError(Exception):
    """The call could not be set up (webhook, TwiML or upgrade failed)."""
