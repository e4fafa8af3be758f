"""One call's brain (``HOTLINE_BRAIN``), glued to the Call: what it is told and what it says.

The session owns the :class:`~hotline.core.call.Call`; a :class:`BrainRunner` owns the call's
brain (its speech-to-text stream and end-of-turn judge are the
:class:`~hotline.server.listen.Listener`'s). It only feeds the Call (then ``host.fed()``: the
session drains the Call's actions once, when this wake-up is over).

* **the brain**: :class:`~hotline.core.brain.CallStarted` at accept, then every
  :class:`~hotline.core.actions.CallerTurn`, :class:`~hotline.core.actions.DigitPressed`,
  :class:`~hotline.core.actions.LineInterrupted` in order, :class:`CallEnding` at teardown. The
  inputs go through one queue and one task, so the brain sees them in order and the session's
  receive loop never awaits it. Outputs are executed on the Call: ``SayText`` pieces become one
  streamed reply (:class:`hotline.core.utterances.Replies`), ``PlayAudio`` is fetched and
  decoded (:mod:`hotline.server.play`) and played as µ-law, ``SendDigits`` plays DTMF tones,
  ``SetLanguage`` moves the voice (and, through the listener, the recogniser), ``EndCall`` lets
  the reply play and hangs up (the goodbye line if nothing is left to say), ``Fallback`` speaks
  the script's ``brain_error`` line and the call goes on.
* **speculation** (:class:`~hotline.core.turns.Speculate`, for brains with ``speculates``): at
  the caller's pause the brain gets the words so far as a :class:`CallerTurn`. When the turn
  is likely to end at the settle time (``Speculate.likely``: its words look finished), what the
  brain says goes to the Call as a *speculative reply* (:meth:`hotline.core.lines.Lines.speculate`):
  its TTS starts at once and its audio is framed, but nothing of it is sent, transcribed or
  heard; anything else it emits after (audio, keys, the end of the call) is *held* here. A turn
  that waits for a verdict or the fallback (the caller usually goes on) has all of it held:
  its voice is not paid for on a guess that is mostly wrong. The confirmed turn releases both
  (the same words, case and punctuation aside: the reply is heard with its first audio
  already in hand) or retracts them (:class:`~hotline.core.brain.Retract`: the brain
  cancels the request and forgets the turn; the speculative reply's TTS is cancelled and its
  audio dropped, the held outputs too) and sends the whole turn. So nothing of a cancelled
  reply reaches the caller, and the brain's history keeps only what the caller said and heard.
  A relay app never speculates: it gets ``prompt`` only for a confirmed turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from hotline.core import brain as b
from hotline.core.actions import CallerTurn, LineInterrupted
from hotline.core.call import Call
from hotline.core.callstate import CallState, CallStateError
from hotline.core.events import Start
from hotline.core.turns import normalise
from hotline.errors import PlayError
from hotline.server.listen import ListenerHost
from hotline.server.logs import mask_number

if TYPE_CHECKING:
    from hotline.server.hub import Hub

__all__ = [
    "APP_PARAMETER",
    "CALL_FIELDS",
    "MAX_PLAY_LOOP_BYTES",
    "BrainHost",
    "BrainRunner",
    "new_brain",
]

log = logging.getLogger("hotline.call")
clock = time.perf_counter

#: A looped ``play`` is cut at this much audio (10 minutes of µ-law).
MAX_PLAY_LOOP_BYTES = 10 * 60 * 8000
#: Webhook fields the ``/voice`` answer passes on to the stream (``<Parameter>``s of the same
#: name) for the brain: what a ConversationRelay app's ``setup`` carries.
CALL_FIELDS = ("To", "Direction", "ForwardedFrom", "CallerName", "ParentCallSid")
#: Prefix of the script's ``[relay.parameters]`` on the stream (``setup.customParameters``).
APP_PARAMETER = "cp."
#: Seconds the brain gets to take CallEnding before it is closed.
_ENDING_GRACE = 1.0


def new_brain(hub: Hub, caller: str) -> b.Brain:
    """The call's brain as ``HOTLINE_BRAIN`` says (validated by the settings)."""
    from hotline.server.brains import make_brain

    listen = hub.settings.listen
    return make_brain(
        listen.brain,
        hub.script,
        llm_url=listen.llm_url,
        llm_api_key=listen.llm_api_key or "",
        llm_model=listen.llm_model,
        relay_url=listen.relay_url,
        twilio_auth_token=hub.settings.twilio_auth_token,
        caller=caller,
        handoff=hub.handoff is not None and hub.handoff.configured,
        end_confidence=listen.end_confidence,
        handoff_confidence=listen.handoff_confidence,
        llm_client=hub.llm_client,
    )


class _Speculative:
    """Brain queue item: a speculative turn (``voice``: what the brain says is voiced ahead,
    unheard; else held with the rest)."""

    __slots__ = ("confidence", "text", "voice")

    def __init__(self, text: str, confidence: float | None, voice: bool) -> None:
        self.text = text
        self.confidence = confidence
        self.voice = voice


class _Unspeculate:
    """Brain queue item: the caller went on from the speculative turn."""

    __slots__ = ()


class BrainHost(ListenerHost, Protocol):
    """What a :class:`BrainRunner` needs from the call's session: what its listener needs, and
    who is calling."""

    @property
    def caller(self) -> str: ...

    @property
    def caller_history(self) -> tuple[dict[str, str], ...]: ...


#: Reopens the call's recogniser in a language (a ``language`` message's
#: ``transcriptionLanguage``): :meth:`hotline.server.listen.Listener.hear_in`.
HearIn = Callable[[str], None]


class BrainRunner:
    """One call's brain: its input queue and task, speculation, its outputs on the Call."""

    def __init__(
        self,
        host: BrainHost,
        brain: b.Brain | None,
        hear_in: HearIn | None = None,
    ) -> None:
        self.host = host
        self.brain = brain
        self._hear_in = hear_in
        self._inputs: asyncio.Queue[b.BrainInput | _Speculative | _Unspeculate | None] = (
            asyncio.Queue()
        )
        #: The brain may get speculative turns (its reply unheard until the turn is confirmed).
        self.speculates = bool(getattr(brain, "speculates", False))
        self._spec_put = False  # a speculation was queued and not yet withdrawn or confirmed
        self._spec_text: str | None = None  # the brain's speculative turn (in the brain task)
        self._held: list[b.BrainOutput] | None = None  # its outputs, held
        self._spec_voice = False  # what it says is voiced ahead (a speculative reply)
        self.speculations = 0
        self.retracted = 0
        self.confirmed = 0
        self._task: asyncio.Task[None] | None = None
        self._play_tasks: set[asyncio.Task[None]] = set()
        self._logged: set[str] = set()
        self._closed = False
        #: ``EndCall.handoff_data`` if the brain ended the call with some.
        self.handoff_data: str | None = None
        self.fallbacks = 0

    # ------------------------------------------------------------------ life

    def start(self, start: Start) -> None:
        """The call was accepted: start the brain (in its own task)."""
        if self.brain is None:
            return
        given = start.custom_parameters
        params = {  # the script's [relay.parameters], filled in by the webhook
            k[len(APP_PARAMETER) :]: v for k, v in given.items() if k.startswith(APP_PARAMETER)
        }
        caller = self.host.caller
        started = b.CallStarted(
            call_sid=start.call_sid,
            stream_sid=start.stream_sid,
            to=given.get("To", ""),
            from_masked=mask_number(caller) if caller else None,
            custom_parameters=params,
            account_sid=start.account_sid,
            forwarded_from=given.get("ForwardedFrom", ""),
            caller_name=given.get("CallerName", ""),
            parent_call_sid=given.get("ParentCallSid", ""),
            direction=given.get("Direction", "") or "inbound",
            caller_history=self.host.caller_history,
        )
        self._task = asyncio.get_running_loop().create_task(
            self._run_brain(started), name=f"hotline-brain-{start.call_sid}"
        )

    async def aclose(self) -> None:
        """The call is over: the brain hears :class:`CallEnding`, then closes."""
        if self._closed:
            return
        self._closed = True
        for play in self._play_tasks:
            play.cancel()
        task, self._task = self._task, None
        if task is not None:
            self._inputs.put_nowait(b.CallEnding())
            self._inputs.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), _ENDING_GRACE)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.brain is not None:
            try:
                await asyncio.wait_for(self.brain.aclose(), _ENDING_GRACE)
            except Exception as exc:
                self._log_once("brain-close", "brain did not close cleanly: %s", exc)
        if self._play_tasks:
            await asyncio.gather(*self._play_tasks, return_exceptions=True)

    # ------------------------------------------------------------------ from the Call

    def caller_turn(self, turn: CallerTurn) -> None:
        self._spec_put = False
        self._put(b.CallerTurn(turn.text, confidence=turn.confidence))

    def speculate(self, text: str, confidence: float | None = None, *, voice: bool = True) -> None:
        """The caller paused after ``text``: start the brain on it, its reply unheard (voiced
        ahead if ``voice``: the turn is likely to end at the settle time; else held)."""
        if not self.speculates or self._task is None or self._closed:
            return
        if self._spec_put:
            self._put(_Unspeculate())
        self._spec_put = True
        self._put(_Speculative(text, confidence, voice))

    def unspeculate(self) -> None:
        """The caller went on: the speculative reply is unwanted."""
        if self._spec_put:
            self._spec_put = False
            self._put(_Unspeculate())

    def digit(self, digit: str) -> None:
        self._put(b.CallerDigit(digit))

    def line_interrupted(self, cut: LineInterrupted) -> None:
        self._put(b.Interrupted(cut.heard_text, round(cut.heard_ms)))

    def partial(self, text: str) -> None:
        """An unfinalised transcript, for a brain that takes them (``[relay] partialPrompts``)."""
        self._put(b.CallerTurn(text, final=False))

    def _put(self, ev: b.BrainInput | _Speculative | _Unspeculate) -> None:
        if self._task is not None and not self._closed:
            self._inputs.put_nowait(ev)

    # ------------------------------------------------------------------ the brain

    async def _run_brain(self, started: b.CallStarted) -> None:
        brain = self.brain
        assert brain is not None
        try:
            await brain.start(started, self._emit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("call %s: brain failed to start", self.host.label)
            await self._emit(b.Fallback(f"start: {type(exc).__name__}"))
        while True:
            item = await self._inputs.get()
            if item is None:
                return
            if isinstance(item, _Speculative):
                await self._retract()  # a previous one not withdrawn yet
                self._spec_text = item.text
                self._held = []
                self._spec_voice = item.voice
                if item.voice:
                    self.host.call.lines.speculate()
                self.speculations += 1
                ev: b.BrainInput = b.CallerTurn(item.text, confidence=item.confidence)
            elif isinstance(item, _Unspeculate):
                await self._retract()
                continue
            else:
                ev = item
            if isinstance(ev, b.CallerTurn) and self._spec_text is None:
                self.host.call.turn_handed(clock())
            elif isinstance(ev, b.CallerTurn) and ev is not item:
                pass  # the speculative turn itself
            elif isinstance(ev, b.CallerTurn):
                # The confirmed turn, with a speculation in flight: the same words release its
                # held reply; others retract it and the whole turn goes to the brain.
                spec = self._spec_text
                if normalise(ev.text) == normalise(spec or ""):
                    self.host.call.turn_handed(clock())
                    await self._release()
                    continue
                await self._retract()
                self.host.call.turn_handed(clock())
            try:
                await brain.handle(ev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken brain must not leave the caller in silence
                if "handle" not in self._logged:
                    self._logged.add("handle")
                    log.exception("call %s: brain failed a turn", self.host.label)
                await self._emit(b.Fallback(f"handle: {type(exc).__name__}"))

    async def _retract(self) -> None:
        """Withdraw the speculative turn: the brain cancels its reply and forgets the turn;
        what it emitted (held) is dropped."""
        if self._spec_text is None:
            return
        assert self.brain is not None
        try:
            await self.brain.handle(b.Retract())
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log_once("retract", "brain failed to retract a speculative turn")
        self._spec_text = None
        self._held = None
        self.retracted += 1
        self.host.call.lines.retract(clock())
        self.host.fed()

    async def _release(self) -> None:
        """The speculative turn is confirmed: what it held goes to the Call, the rest follows."""
        held, self._held = self._held, None
        self._spec_text = None
        self.confirmed += 1
        self.host.call.lines.confirm(clock())
        self.host.fed()
        for out in held or ():
            await self._apply(out)

    async def _emit(self, out: b.BrainOutput) -> None:
        """The brain's ``emit``: executed; while its turn is speculative, what it says becomes
        a speculative reply (until anything else is held: order is kept) and the rest is held."""
        held = self._held
        if held is not None and (held or not self._spec_voice or not isinstance(out, b.SayText)):
            held.append(out)
            return
        await self._apply(out)

    async def _apply(self, out: b.BrainOutput) -> None:
        """Execute one brain output on the Call."""
        host = self.host
        call = host.call
        now = clock()
        try:
            if isinstance(out, b.SayText):
                call.replies.say(
                    out.token,
                    now,
                    last=out.last,
                    interruptible=out.interruptible,
                    preemptible=out.preemptible,
                    lang=out.lang,
                )
            elif isinstance(out, b.PlayAudio):
                call.replies.close(now)
                self._spawn(self._play(out))
            elif isinstance(out, b.SendDigits):
                call.replies.close(now)
                from hotline.core.dtmf import dtmf_tones

                try:
                    tones = dtmf_tones(out.digits)
                except ValueError as exc:
                    self._log_once("digits", "brain sent bad digits: %s", exc)
                else:
                    call.lines.play_ulaw(tones, now, label=f"[digits {len(out.digits)}]")
            elif isinstance(out, b.SetLanguage):
                self._set_language(out)
            elif isinstance(out, b.EndCall):
                call.replies.close(now)
                self.handoff_data = out.handoff_data
                log.info("call %s: the brain ends the call (%s)", host.label, out.reason)
                desk = host.hub.handoff
                if out.handoff_data is not None and (desk is None or not desk.configured):
                    # For a person, and no one is configured: a line that promises nobody,
                    # after what the brain said (its Connect action hangs up).
                    call.finish(now, host.hub.script.no_handoff)
                else:
                    speaking = call.is_speaking(now)
                    call.finish(now, None if speaking else host.hub.script.goodbye)
            elif isinstance(out, b.Fallback):
                self._fallback(call, out.reason, now)
            else:  # pragma: no cover - exhaustive
                raise TypeError(f"not a brain output: {type(out).__name__}")
        except CallStateError:
            pass  # the call is closing or over: nothing more to say
        host.fed()

    def _set_language(self, out: b.SetLanguage) -> None:
        """A ``language`` message: the voice speaks what is queued from now on in its new
        language (ElevenLabs takes ``language_code`` per connection: the call's speech then
        goes through a socket opened in that language, :class:`hotline.server.speech.CallSpeech`);
        the recogniser reopens in its new one (the listener's)."""
        tts = out.tts_language
        if tts and tts != self.host.call.lines.language:
            self.host.call.lines.speak_in(tts)
            log.info("call %s: voice language now %s", self.host.label, tts)
        if out.transcription_language and self._hear_in is not None and not self._closed:
            self._hear_in(out.transcription_language)

    def _fallback(self, call: Call, reason: str, now: float) -> None:
        self.fallbacks += 1
        self.host.hub.metrics.brain_fallbacks.labels(_reason_label(reason)).inc()
        self._log_once(
            f"fallback:{reason}", "brain failed (%s): the fallback line is spoken", reason
        )
        call.replies.close(now)
        if call.state is not CallState.ACTIVE:
            return
        uid = call.lines.reply_open(now)
        call.lines.reply_text(uid, self.host.hub.script.brain_error, now)
        call.lines.reply_close(uid, now)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._play_tasks.add(task)
        task.add_done_callback(self._play_tasks.discard)

    async def _play(self, out: b.PlayAudio) -> None:
        from hotline.server.play import fetch_ulaw

        call = self.host.call
        try:
            ulaw = await fetch_ulaw(out.url)
        except PlayError as exc:
            self._log_once("play", "brain's audio could not be played: %s", exc)
            return
        loops = out.loop if out.loop > 0 else 1000
        loops = max(1, min(loops, MAX_PLAY_LOOP_BYTES // max(len(ulaw), 1)))
        try:
            call.replies.play(
                ulaw * loops,
                clock(),
                interruptible=out.interruptible,
                preemptible=out.preemptible,
            )
        except (CallStateError, ValueError):
            return
        self.host.fed()

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind in self._logged or len(self._logged) > 32:
            return
        self._logged.add(kind)
        log.warning("call %s: " + message, self.host.label, *args)


def _reason_label(reason: str) -> str:
    """A bounded metric label from a Fallback reason (its first word)."""
    head = reason.split(":", 1)[0].split()[0] if reason.strip() else "unknown"
    return head[:32]
