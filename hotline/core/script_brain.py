"""The script brain: the offline default, answering from the call script's intents and menu.

Sans-I/O: :meth:`ScriptBrain.respond` takes one brain input and returns the outputs at once::

    brain = ScriptBrain(default_script())
    brain.respond(CallerTurn("when are you touring?"))
    # [SayText("Wren is on the road ...", last=True)]

Rules:

* a final :class:`CallerTurn` is matched with :meth:`CallScript.match_intent`; nothing
  matched -> the script's ``fallback`` line; partials (``final=False``) and empty text -> [].
* ``say`` intent -> its line; ``goodbye`` -> the goodbye line, then :class:`EndCall`;
  ``repeat`` -> the last line said again (the greeting before anything else); ``handoff``
  -> its line, then :class:`EndCall` with ``handoff_data`` ``{"reason":"handoff","intent":…}``;
  without ``handoff`` (no person configured) the line, which promises one, is not said: only
  the :class:`EndCall`, after which the shell says the script's ``no_handoff`` line.
* :class:`CallerDigit` -> the DTMF menu entry (``CallScript.entry_for``), an entry with
  ``hangup`` also ends the call. Whether the session routes keys here or keeps its own
  menu handling is the session's choice; both say the same lines.
* :class:`Interrupted` and :class:`CallEnding` -> [].
* **Ending intents need confident words.** A turn matching a ``goodbye`` intent ends the call
  only when the recogniser's confidence in its words (``CallerTurn.confidence``) is at least
  ``end_confidence`` (the script's, or the constructor's, which the shell takes from
  ``HOTLINE_END_CONFIDENCE``); a ``handoff`` intent, at least ``handoff_confidence``
  (``HOTLINE_HANDOFF_CONFIDENCE``), a lower floor: junk obeyed as a handoff passes the caller
  to a person, as a goodbye it hangs up on them. Below it the turn is treated as words not
  understood: the ``fallback`` line, and the call goes on (a grunt the grammar recogniser
  forced onto "bye" is asked again, not obeyed). A turn without a confidence (a recogniser
  that gives none, such as cloud Scribe) is obeyed as before.

Every line is one :class:`SayText` with ``last=True``.
"""

from __future__ import annotations

import json

from hotline.core.brain import (
    BrainInput,
    BrainOutput,
    CallEnding,
    CallerDigit,
    CallerTurn,
    EndCall,
    Interrupted,
    Retract,
    SayText,
)
from hotline.core.script import CallScript, IntentAction

__all__ = ["ScriptBrain"]


class ScriptBrain:
    """Answers a call from a :class:`CallScript` (deterministic, no I/O)."""

    def __init__(
        self,
        script: CallScript,
        *,
        handoff: bool = True,
        end_confidence: float | None = None,
        handoff_confidence: float | None = None,
    ) -> None:
        self.script = script
        #: The confidence an ending intent's words need (see the module docstring).
        self.floors = {
            IntentAction.GOODBYE: (
                script.end_confidence if end_confidence is None else end_confidence
            ),
            IntentAction.HANDOFF: (
                script.handoff_confidence if handoff_confidence is None else handoff_confidence
            ),
        }
        #: Ending intents not obeyed for want of confidence (for logs and tests).
        self.doubted = 0
        #: A person can take a handed-off call (else a handoff intent promises nobody).
        self.handoff = handoff
        self._last_line = script.greeting
        self._before_turn = self._last_line  # "repeat" after a retracted turn
        #: Name of the last intent matched (None for the fallback), for metrics.
        self.last_intent: str | None = None

    def respond(self, ev: BrainInput) -> list[BrainOutput]:
        """The outputs for one input (see the module docstring)."""
        if isinstance(ev, CallerTurn):
            if not ev.final or not ev.text.strip():
                return []
            self._before_turn = self._last_line
            return self._turn(ev.text, ev.confidence)
        if isinstance(ev, CallerDigit):
            entry = self.script.entry_for(ev.digit)
            out = self._say(entry.say)
            if entry.hangup:
                out.append(EndCall("digit"))
            return out
        if isinstance(ev, Retract):
            self._last_line = self._before_turn  # its line was never heard
            return []
        if isinstance(ev, (Interrupted, CallEnding)):
            return []
        raise TypeError(f"not a brain input: {type(ev).__name__}")

    def _say(self, line: str) -> list[BrainOutput]:
        self._last_line = line
        return [SayText(line, last=True)]

    def _turn(self, text: str, confidence: float | None = None) -> list[BrainOutput]:
        intent = self.script.match_intent(text)
        if (
            intent is not None
            and intent.action in self.floors
            and confidence is not None
            and confidence < self.floors[intent.action]
        ):
            self.doubted += 1
            intent = None  # not sure enough to end the call on: as words not understood
        self.last_intent = intent.name if intent is not None else None
        if intent is None:
            return [SayText(self.script.fallback, last=True)]
        if intent.action is IntentAction.SAY:
            assert intent.say is not None
            return self._say(intent.say)
        if intent.action is IntentAction.GOODBYE:
            return [*self._say(self.script.goodbye), EndCall("goodbye")]
        if intent.action is IntentAction.REPEAT:
            return [SayText(self._last_line, last=True)]
        if intent.action is IntentAction.HANDOFF:
            assert intent.say is not None
            data = json.dumps({"reason": "handoff", "intent": intent.name})
            line = self._say(intent.say) if self.handoff else []
            return [*line, EndCall("handoff", handoff_data=data)]
        raise AssertionError(intent.action)  # pragma: no cover - exhaustive
