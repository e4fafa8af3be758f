"""The call script: what the hotline says, and what each key press does.

A script is TOML::

    greeting = "Hi, you've reached ... Press 1 for ..., or 0 to end the call."
    invalid_digit = "Sorry, that key doesn't do anything yet."
    goodbye = "Thanks for calling. Bye!"
    goodbye_digit = "0"               # optional: this key says the goodbye, then hangs up

    [menu]                            # DTMF key -> line; keys 0-9, "*", "#", "A"-"D"
    1 = "Tour dates: ..."             # shorthand for { say = "..." }
    3 = { say = "...", hangup = true }

    [voice_settings]                  # optional ElevenLabs voice settings for every utterance
    stability = 0.5                   # 0..1; also similarity_boost, style (0..1),
    speed = 1.0                       # use_speaker_boost (bool), speed (0.7..1.2)

    # Spoken intents (the offline "script brain"): what the caller says -> a line.
    fallback = "Sorry, I didn't catch that."       # optional: nothing matched
    brain_error = "Sorry, I'm having trouble."     # optional: any brain failed a turn
    reconnect = "Sorry about that, I'm back."      # optional: said instead of the greeting
                                                   # when a dropped stream is resumed
    no_handoff = "Sorry, no one can take ..."      # optional: a caller asked for a person and
                                                   # none is configured (then the call ends)
    handoff_failed = "Sorry, I couldn't ..."       # optional: HOTLINE_HANDOFF_URL failed
    returning_greeting = "Welcome back! ..."       # optional: said instead of the greeting
                                                   # to a caller the call records know
    end_confidence = 0.5                           # optional: a goodbye intent ends the
                                                   # call only on words the recogniser is
                                                   # this sure of (0..1)
    handoff_confidence = 0.2                       # optional: the same for a handoff intent
    filler = "One moment."                         # optional: said once when the brain is
                                                   # slow to answer a turn ([turns] filler_ms)

    [turns]                           # optional: turn taking (hotline.core.turns.TurnConfig);
    pause_ms = 200                    # the environment's HOTLINE_TURN_* / HOTLINE_BARGE_IN_*
    fallback_ms = 2500                # override these. Also: silence_ms (silence only),
    barge_in = "pause"                # settle_ms, threshold, speculate, guard_ms, resume_ms,
    backchannels = ["yeah", "okay"]   # filler_ms, stop_phrases, unfinished_words,
                                      # min_confidence

    [intents.tour]                    # the name is for logs and metrics only
    phrases = ["tour", "tour dates", "concert"]   # words or phrases, matched whole-word
    say = "Wren is on the road ..."   # the reply; or, instead of say:
    # action = "goodbye"              #   say the goodbye line, then hang up
    # action = "repeat"               #   say the last line again
    # action = "handoff"              #   say ``say``, then end the call for a person
    #                                 #   (EndCall with handoff_data)

    [relay]                           # optional: a ConversationRelay app's <ConversationRelay>
    welcomeGreeting = "Hi! How can I help?"        #   attributes, same names (relay brain)
    welcomeGreetingInterruptible = "any"           # none, dtmf, speech, any (true/false)
    language = "en-US"                # sets both of these:
    ttsLanguage = "en-US"             #   the voice's language
    transcriptionLanguage = "en-US"   #   the recogniser's language (and prompt.lang)
    dtmfDetection = true              # keys go to the app as dtmf messages (default false)
    interruptible = "any"             # what cuts the app's speech: none, dtmf, speech, any
    partialPrompts = false            # unfinalised speech goes as prompt with last: false
    hints = "Wren Calloway, Paper Lanterns"        # comma-separated: recogniser key terms
    [relay.parameters]                # <Parameter name value> -> setup.customParameters;
    caller_phone = "{{From}}"         #   {{Field}} is that field of the /voice webhook

    [llm]                             # optional: persona and limits for the LLM brain
    system_prompt = "You are ..."
    max_history_turns = 8             # caller+reply pairs kept (1..100)
    max_reply_tokens = 150            # 1..4096
    temperature = 0.7                 # 0..2
    first_token_timeout_s = 3.0       # (0, 60]
    total_timeout_s = 15.0            # (0, 300], at least first_token_timeout_s

Intent matching (:meth:`CallScript.match_intent`) works on the final transcript, normalised:
lowercase, every run of non-letters/digits becomes one space. A phrase matches when its
normalised words occur in the transcript as whole words, in order and adjacent. The match
with the most words wins, then the most characters, then the intent declared first; so the
result depends only on the text.

:func:`load_script` validates everything up front and raises :class:`hotline.errors.ConfigError`
naming the line (when it can be found) and the field. :func:`default_script` is the built-in
artist hotline (``hotline/core/default_script.toml``).

In the loaded :class:`CallScript`, ``menu`` also holds the goodbye key (as an entry with
``hangup=True``), so ``script.entry_for(digit)`` is all a call needs.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, NoReturn

from hotline.core.twilio import DTMF_DIGITS
from hotline.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DEBUG_SCRIPT",
    "DEBUG_SENTENCE",
    "CallScript",
    "Intent",
    "IntentAction",
    "Interruptible",
    "LlmSettings",
    "MenuEntry",
    "RelaySettings",
    "default_script",
    "load_script",
    "normalise",
]

DEFAULT_FALLBACK = "Sorry, I didn't catch that. You can also press 9 to hear the options."
DEFAULT_BRAIN_ERROR = "Sorry, I'm having a little trouble right now. Could you say that again?"
DEFAULT_RECONNECT = "Sorry about that, I'm back."
DEFAULT_NO_HANDOFF = (
    "Sorry, there's no one I can put you through to right now. Thanks for calling, goodbye."
)
DEFAULT_HANDOFF_FAILED = "Sorry, I couldn't put you through to a person."
DEFAULT_FILLER = "One moment."
#: The recogniser's confidence (0..1) a goodbye intent's words need; see the script brain.
DEFAULT_END_CONFIDENCE = 0.5
#: ... and a handoff intent's: lower, since a handoff on junk passes the caller to a person
#: where a goodbye on junk hangs up on them, and the grammar ear rates a fifth of the handoff
#: phrases it heard right below 0.5 (``python -m benchmarks.bench_confidence``).
DEFAULT_HANDOFF_CONFIDENCE = 0.2
DEFAULT_SYSTEM_PROMPT = (
    "You answer a telephone hotline. Reply in one to three short spoken sentences, "
    "with no lists, markup or emoji. When the caller wants to end the call, call end_call."
)

#: Longest line accepted (characters); phone lines should be far shorter.
MAX_LINE_CHARS = 2000

_TOP_KEYS = frozenset(
    {
        "greeting",
        "menu",
        "goodbye",
        "goodbye_digit",
        "invalid_digit",
        "voice_settings",
        "fallback",
        "brain_error",
        "reconnect",
        "no_handoff",
        "handoff_failed",
        "returning_greeting",
        "filler",
        "intents",
        "llm",
        "relay",
        "turns",
        "end_confidence",
        "handoff_confidence",
    }
)
#: [turns] keys: TurnConfig's fields (judge is the shell's: whether a model is loaded).
_TURN_KEYS = frozenset(
    {
        "silence_ms",
        "pause_ms",
        "fallback_ms",
        "settle_ms",
        "threshold",
        "speculate",
        "final_timeout_ms",
        "barge_in",
        "guard_ms",
        "resume_ms",
        "filler_ms",
        "min_confidence",
        "backchannels",
        "stop_phrases",
        "unfinished_words",
    }
)
_INTENT_KEYS = frozenset({"phrases", "say", "action", "examples"})
_MAX_PHRASES = 200
_NON_WORD = re.compile(r"[\W_]+")
_ENTRY_KEYS = frozenset({"say", "hangup"})
_UNIT_SETTINGS = ("stability", "similarity_boost", "style")
_SPEED_RANGE = (0.7, 1.2)


@dataclass(frozen=True, slots=True)
class MenuEntry:
    """What one key does: say ``say``, then hang up if ``hangup`` (once its audio played)."""

    say: str
    hangup: bool = False


class IntentAction(enum.Enum):
    """What a matched intent does."""

    SAY = "say"  #: say the intent's line
    GOODBYE = "goodbye"  #: say the script's goodbye line, then hang up
    REPEAT = "repeat"  #: say the last line said again
    HANDOFF = "handoff"  #: say the line, then end the call with handoff data for a person


@dataclass(frozen=True, slots=True)
class Intent:
    """One spoken intent: normalised ``phrases`` -> ``action`` (``say`` for SAY/HANDOFF).

    ``terms`` are the phrases as written (for speech-recognition biasing); ``examples`` are
    whole sentences callers say for this intent (``examples = [...]``), given to a recogniser
    that needs complete phrases to listen for (the local ear's grammar)."""

    name: str
    phrases: tuple[str, ...]
    action: IntentAction
    say: str | None = None
    terms: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """Persona and limits of the LLM brain (``[llm]`` in the script)."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_history_turns: int = 8
    max_reply_tokens: int = 150
    temperature: float = 0.7
    first_token_timeout_s: float = 3.0
    total_timeout_s: float = 15.0


class Interruptible(enum.Enum):
    """What caller input cuts off the hotline's speech (``<ConversationRelay interruptible>``)."""

    NONE = "none"
    DTMF = "dtmf"
    SPEECH = "speech"
    ANY = "any"

    @property
    def by_speech(self) -> bool:
        """The caller's voice cuts it."""
        return self in (Interruptible.SPEECH, Interruptible.ANY)

    @property
    def by_digit(self) -> bool:
        """A key press cuts it."""
        return self in (Interruptible.DTMF, Interruptible.ANY)


#: ``{{Field}}`` in a ``[relay.parameters]`` value: that field of the ``/voice`` webhook.
_WEBHOOK_FIELD = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9]*)\s*\}\}")
_LANG_TAG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$|^multi$")
#: Twilio caps a <Parameter>'s name and value together below 500 characters.
_MAX_PARAMETER_CHARS = 499
_MAX_PARAMETERS = 32


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """The ``[relay]`` table: a ConversationRelay app's ``<ConversationRelay>`` attributes
    (same names, same defaults as Twilio's), applied when ``HOTLINE_BRAIN=relay``.

    Attributes:
        welcome_greeting: said when the call starts (None: nothing; the app speaks first).
        welcome_greeting_interruptible: what may cut the welcome greeting.
        tts_language: the voice's language (``ttsLanguage``, else ``language``).
        transcription_language: the recogniser's (``transcriptionLanguage``, else
            ``language``); ``prompt.lang`` reports it.
        dtmf_detection: keys are sent to the app as ``dtmf`` messages.
        interruptible: what cuts the app's speech (a ``text``'s ``interruptible`` overrides
            it for speech).
        partial_prompts: unfinalised speech is sent as ``prompt`` with ``last: false``.
        hints: recogniser key terms (``hints``, comma-separated).
        parameters: ``setup.customParameters``; ``{{Field}}`` in a value names a field of the
            ``/voice`` webhook (:meth:`custom_parameters`).
    """

    welcome_greeting: str | None = None
    welcome_greeting_interruptible: Interruptible = Interruptible.ANY
    tts_language: str = "en-US"
    transcription_language: str = "en-US"
    dtmf_detection: bool = False
    interruptible: Interruptible = Interruptible.ANY
    partial_prompts: bool = False
    hints: tuple[str, ...] = ()
    parameters: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )

    def webhook_fields(self) -> tuple[str, ...]:
        """The webhook fields the parameters name, in order, each once."""
        names = (m.group(1) for v in self.parameters.values() for m in _WEBHOOK_FIELD.finditer(v))
        return tuple(dict.fromkeys(names))

    def custom_parameters(self, webhook: Mapping[str, str]) -> dict[str, str]:
        """The parameters with each ``{{Field}}`` replaced by ``webhook[Field]`` ("" if the
        webhook did not send it), as Twilio would have put the app's ``<Parameter>``s."""
        return {
            name: _WEBHOOK_FIELD.sub(lambda m: webhook.get(m.group(1), ""), value)
            for name, value in self.parameters.items()
        }


def normalise(text: str) -> str:
    """Lowercase; every run of characters other than letters and digits becomes one space."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


@dataclass(frozen=True, slots=True)
class CallScript:
    """A validated call script (immutable).

    Attributes:
        greeting: spoken when the stream starts.
        menu: DTMF key -> :class:`MenuEntry`, including the goodbye key if any.
        goodbye: spoken before the hotline hangs up.
        goodbye_digit: the key that says the goodbye and hangs up, or None.
        invalid_digit: spoken for a key with no entry.
        voice_settings: ElevenLabs ``voice_settings`` for every utterance, or None.
        filler: said once when the brain is slow to answer a turn.
        turns: the ``[turns]`` table, checked: :class:`~hotline.core.turns.TurnConfig` field ->
            value (the environment overrides each).
    """

    greeting: str
    menu: Mapping[str, MenuEntry]
    goodbye: str
    goodbye_digit: str | None
    invalid_digit: str
    voice_settings: Mapping[str, float | bool] | None = None
    fallback: str = DEFAULT_FALLBACK
    brain_error: str = DEFAULT_BRAIN_ERROR
    intents: tuple[Intent, ...] = ()
    llm: LlmSettings = LlmSettings()
    reconnect: str = DEFAULT_RECONNECT
    relay: RelaySettings = RelaySettings()
    no_handoff: str = DEFAULT_NO_HANDOFF
    handoff_failed: str = DEFAULT_HANDOFF_FAILED
    #: Said instead of the greeting to a returning caller (None: the greeting).
    returning_greeting: str | None = None

    def returning(self) -> CallScript:
        """This script for a caller the call records know: ``returning_greeting`` (if the
        script has one) takes the greeting's place."""
        if self.returning_greeting is None:
            return self
        return dataclasses.replace(self, greeting=self.returning_greeting)

    filler: str = DEFAULT_FILLER
    #: A goodbye intent's words need at least this confidence (0..1; unknown passes).
    end_confidence: float = DEFAULT_END_CONFIDENCE
    #: A handoff intent's words need at least this confidence (0..1; unknown passes).
    handoff_confidence: float = DEFAULT_HANDOFF_CONFIDENCE
    turns: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))

    def resumed(self) -> CallScript:
        """This script for a call whose stream dropped and came back: the ``reconnect``
        line takes the greeting's place (the rest of the call is unchanged)."""
        return dataclasses.replace(self, greeting=self.reconnect)

    def match_intent(self, transcript: str) -> Intent | None:
        """The intent the caller's (final) transcript asks for, or None.

        Deterministic: the phrase with the most words wins, then the longest, then the
        intent declared first (see the module docstring)."""
        text = f" {normalise(transcript)} "
        if not text.strip():
            return None
        best: tuple[int, int, int] | None = None
        found: Intent | None = None
        for order, intent in enumerate(self.intents):
            for phrase in intent.phrases:
                if f" {phrase} " in text:
                    rank = (phrase.count(" ") + 1, len(phrase), -order)
                    if best is None or rank > best:
                        best, found = rank, intent
        return found

    def keyterms(self) -> tuple[str, ...]:
        """Words and phrases to bias speech recognition with: the ``[relay]`` hints, then the
        intent phrases as written, in order, the first spelling of each normalised phrase
        only."""
        seen: dict[str, str] = {}
        for hint in self.relay.hints:
            seen.setdefault(normalise(hint), hint)
        for intent in self.intents:
            for phrase, term in zip(intent.phrases, intent.terms, strict=True):
                seen.setdefault(phrase, term)
        return tuple(seen.values())

    def ending_phrases(self) -> tuple[str, ...]:
        """The phrases of the intents that end the call (goodbye, handoff): the turns whose
        words must be confident (:class:`hotline.core.script_brain.ScriptBrain`)."""
        return tuple(
            dict.fromkeys(
                p
                for intent in self.intents
                if intent.action in (IntentAction.GOODBYE, IntentAction.HANDOFF)
                for p in intent.phrases
            )
        )

    def caller_phrases(self) -> tuple[str, ...]:
        """The intents' example sentences, in order, each once (for phrase-level biasing)."""
        return tuple(dict.fromkeys(e for intent in self.intents for e in intent.examples))

    def entry_for(self, digit: str) -> MenuEntry:
        """The entry for *digit*; an unmapped key says ``invalid_digit`` and stays on the line."""
        entry = self.menu.get(digit)
        return entry if entry is not None else MenuEntry(self.invalid_digit)

    @property
    def goodbye_entry(self) -> MenuEntry:
        """The goodbye as an entry that hangs up (for a hang-up requested from outside)."""
        return MenuEntry(self.goodbye, hangup=True)


class _Checker:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """Best-effort line of a field: ``key =`` or a ``[table]`` header for it."""
        lines = self.text.splitlines()
        key = re.escape(path[-1])
        table = r"\.".join(re.escape(p) for p in path)
        assign = re.compile(rf"""^\s*(?:{key}|"{key}"|'{key}')\s*=""")
        header = re.compile(rf"""^\s*\[\s*{table}\s*\]""")
        for number, line in enumerate(lines, 1):
            if header.match(line):
                return number
        # An assignment: prefer one after the enclosing table's header, if any.
        start = 0
        if len(path) > 1:
            parent_table = r"\.".join(re.escape(p) for p in path[:-1])
            parent = re.compile(rf"""^\s*\[\s*{parent_table}\s*\]""")
            for number, line in enumerate(lines, 1):
                if parent.match(line):
                    start = number
                    break
        for number, line in enumerate(lines[start:], start + 1):
            if assign.match(line):
                return number
        return None

    def fail(self, path: tuple[str, ...], problem: str) -> NoReturn:
        line = self.line_of(path) if path else None
        where = f", line {line}" if line is not None else ""
        raise ConfigError(f"{self.source}{where}: {'.'.join(path)}: {problem}")

    def text_field(self, value: object, path: tuple[str, ...]) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_toml_type(value)}")
        if not value.strip():
            self.fail(path, "must not be empty")
        if len(value) > MAX_LINE_CHARS:
            self.fail(path, f"longer than {MAX_LINE_CHARS} characters")
        return value.strip()

    def digit(self, value: object, path: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in DTMF_DIGITS:
            self.fail(path, 'must be one key: 0-9, *, #, A-D (quote it: "0")')
        return value


def _toml_type(value: object) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        dict: "a table",
        list: "an array",
    }.get(type(value), type(value).__name__)


def load_script(text: str, *, source: str = "call script") -> CallScript:
    """Parse and validate a TOML call script.

    Args:
        text: the TOML document.
        source: how errors name the script (e.g. its file path).

    Raises:
        ConfigError: invalid TOML (with line and column), unknown keys, missing or empty
            lines, keys that are not DTMF digits, out-of-range voice settings.
    """
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from None
    check = _Checker(text, source)
    for key in doc:
        if key not in _TOP_KEYS:
            check.fail((key,), f"unknown key (expected one of {', '.join(sorted(_TOP_KEYS))})")
    for key in ("greeting", "goodbye", "invalid_digit"):
        if key not in doc:
            check.fail((key,), "missing")
    lines: dict[str, str] = {}
    for key in (
        "fallback",
        "brain_error",
        "reconnect",
        "no_handoff",
        "handoff_failed",
        "returning_greeting",
        "filler",
    ):
        if key in doc:
            lines[key] = check.text_field(doc[key], (key,))
    intents = _intents(check, doc.get("intents", {}))
    llm = _llm(check, doc["llm"]) if "llm" in doc else LlmSettings()
    relay = _relay(check, doc["relay"]) if "relay" in doc else RelaySettings()
    turns = _turns(check, doc["turns"]) if "turns" in doc else {}
    greeting = check.text_field(doc["greeting"], ("greeting",))
    goodbye = check.text_field(doc["goodbye"], ("goodbye",))
    invalid_digit = check.text_field(doc["invalid_digit"], ("invalid_digit",))

    raw_menu = doc.get("menu", {})
    if not isinstance(raw_menu, dict):
        check.fail(("menu",), f"expected a table, got {_toml_type(raw_menu)}")
    menu: dict[str, MenuEntry] = {}
    for key, value in raw_menu.items():
        path = ("menu", key)
        check.digit(key, path)
        if isinstance(value, str):
            menu[key] = MenuEntry(check.text_field(value, path))
            continue
        if not isinstance(value, dict):
            check.fail(path, f"expected a string or a table, got {_toml_type(value)}")
        for entry_key in value:
            if entry_key not in _ENTRY_KEYS:
                check.fail((*path, entry_key), "unknown key (expected say, hangup)")
        if "say" not in value:
            check.fail((*path, "say"), "missing")
        hangup = value.get("hangup", False)
        if not isinstance(hangup, bool):
            check.fail((*path, "hangup"), f"expected true or false, got {_toml_type(hangup)}")
        menu[key] = MenuEntry(check.text_field(value["say"], (*path, "say")), hangup)

    goodbye_digit: str | None = None
    if "goodbye_digit" in doc:
        goodbye_digit = check.digit(doc["goodbye_digit"], ("goodbye_digit",))
        if goodbye_digit in menu:
            check.fail(("goodbye_digit",), f"key {goodbye_digit} is also in [menu]")
        menu[goodbye_digit] = MenuEntry(goodbye, hangup=True)

    floors = {
        "end_confidence": DEFAULT_END_CONFIDENCE,
        "handoff_confidence": DEFAULT_HANDOFF_CONFIDENCE,
    }
    for key in floors:
        if key in doc:
            value = doc[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                check.fail((key,), "expected a number from 0 to 1")
            floors[key] = float(value)

    voice_settings: Mapping[str, float | bool] | None = None
    if "voice_settings" in doc:
        voice_settings = _voice_settings(check, doc["voice_settings"])

    return CallScript(
        greeting=greeting,
        menu=types.MappingProxyType(dict(sorted(menu.items()))),
        goodbye=goodbye,
        goodbye_digit=goodbye_digit,
        invalid_digit=invalid_digit,
        voice_settings=voice_settings,
        intents=intents,
        llm=llm,
        relay=relay,
        turns=types.MappingProxyType(turns),
        end_confidence=floors["end_confidence"],
        handoff_confidence=floors["handoff_confidence"],
        **lines,
    )


def _turns(check: _Checker, raw: object) -> dict[str, Any]:
    """The ``[turns]`` table, checked by building a TurnConfig from it."""
    from hotline.core.turns import BargeInMode, TurnConfig

    if not isinstance(raw, dict):
        check.fail(("turns",), f"expected a table, got {_toml_type(raw)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = ("turns", key)
        if key not in _TURN_KEYS:
            check.fail(path, f"unknown key (expected one of {', '.join(sorted(_TURN_KEYS))})")
        if key == "barge_in":
            try:
                value = BargeInMode(value)
            except ValueError:
                modes = ", ".join(m.value for m in BargeInMode)
                check.fail(path, f"expected one of {modes}")
        elif isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                check.fail(path, "expected an array of strings")
            value = tuple(v.strip().lower() for v in value)
        elif key in ("threshold", "min_confidence") and type(value) is int:
            value = float(value)
        out[key] = value
        try:
            TurnConfig(**{key: value})
        except (ConfigError, TypeError) as exc:
            check.fail(path, str(exc))
    try:
        TurnConfig(**out)
    except (ConfigError, TypeError) as exc:
        check.fail(("turns",), str(exc))
    return out


def _intents(check: _Checker, raw: object) -> tuple[Intent, ...]:
    if not isinstance(raw, dict):
        check.fail(("intents",), f"expected a table, got {_toml_type(raw)}")
    out: list[Intent] = []
    for name, value in raw.items():
        path = ("intents", name)
        if not isinstance(value, dict):
            check.fail(path, f"expected a table, got {_toml_type(value)}")
        for key in value:
            if key not in _INTENT_KEYS:
                check.fail((*path, key), "unknown key (expected phrases, say, action, examples)")
        phrases_raw = value.get("phrases")
        if not isinstance(phrases_raw, list) or not phrases_raw:
            check.fail((*path, "phrases"), "expected a non-empty array of strings")
        if len(phrases_raw) > _MAX_PHRASES:
            check.fail((*path, "phrases"), f"more than {_MAX_PHRASES} phrases")
        phrases: list[str] = []
        terms: list[str] = []
        for item in phrases_raw:
            if not isinstance(item, str):
                check.fail((*path, "phrases"), f"expected strings, got {_toml_type(item)}")
            phrase = normalise(item)
            if not phrase:
                check.fail((*path, "phrases"), f"phrase {item!r} has no letters or digits")
            if len(phrase) > 200:
                check.fail((*path, "phrases"), "phrase longer than 200 characters")
            if phrase not in phrases:
                phrases.append(phrase)
                terms.append(" ".join(item.split()))
        examples_raw = value.get("examples", [])
        if not isinstance(examples_raw, list) or len(examples_raw) > _MAX_PHRASES:
            check.fail((*path, "examples"), f"expected an array of at most {_MAX_PHRASES} strings")
        examples: list[str] = []
        for item in examples_raw:
            if not isinstance(item, str) or not normalise(item) or len(item) > 200:
                check.fail((*path, "examples"), "expected sentences of 1..200 characters")
            examples.append(" ".join(item.split()))
        action_raw = value.get("action", "say")
        try:
            action = IntentAction(action_raw)
        except (ValueError, TypeError):
            check.fail((*path, "action"), "expected one of say, goodbye, repeat, handoff")
        say: str | None = None
        if action in (IntentAction.SAY, IntentAction.HANDOFF):
            if "say" not in value:
                check.fail((*path, "say"), "missing")
            say = check.text_field(value["say"], (*path, "say"))
        elif "say" in value:
            check.fail((*path, "say"), f"not used with action {action.value!r}")
        out.append(Intent(name, tuple(phrases), action, say, tuple(terms), tuple(examples)))
    return tuple(out)


def _number(
    check: _Checker, value: object, path: tuple[str, ...], low: float, high: float
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        check.fail(path, f"expected a number, got {_toml_type(value)}")
    if not low <= value <= high:
        check.fail(path, f"must be within {low}..{high}")
    return float(value)


def _llm(check: _Checker, raw: object) -> LlmSettings:
    if not isinstance(raw, dict):
        check.fail(("llm",), f"expected a table, got {_toml_type(raw)}")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        path = ("llm", key)
        if key == "system_prompt":
            if not isinstance(value, str) or not value.strip():
                check.fail(path, "expected a non-empty string")
            if len(value) > 20_000:
                check.fail(path, "longer than 20000 characters")
            fields[key] = value.strip()
        elif key in ("max_history_turns", "max_reply_tokens"):
            high = 100 if key == "max_history_turns" else 4096
            if isinstance(value, bool) or not isinstance(value, int):
                check.fail(path, f"expected an integer, got {_toml_type(value)}")
            if not 1 <= value <= high:
                check.fail(path, f"must be within 1..{high}")
            fields[key] = value
        elif key == "temperature":
            fields[key] = _number(check, value, path, 0.0, 2.0)
        elif key in ("first_token_timeout_s", "total_timeout_s"):
            seconds = _number(check, value, path, 0.0, 60.0 if "first" in key else 300.0)
            if seconds <= 0:
                check.fail(path, "must be positive")
            fields[key] = seconds
        else:
            check.fail(
                path,
                "unknown key (expected system_prompt, max_history_turns, max_reply_tokens, "
                "temperature, first_token_timeout_s, total_timeout_s)",
            )
    settings = LlmSettings(**fields)
    if settings.total_timeout_s < settings.first_token_timeout_s:
        check.fail(("llm", "total_timeout_s"), "must be at least first_token_timeout_s")
    return settings


_RELAY_KEYS = (
    "welcomeGreeting",
    "welcomeGreetingInterruptible",
    "language",
    "ttsLanguage",
    "transcriptionLanguage",
    "dtmfDetection",
    "interruptible",
    "partialPrompts",
    "hints",
    "parameters",
)


def _interruptible(check: _Checker, value: object, path: tuple[str, ...]) -> Interruptible:
    if isinstance(value, bool):  # Twilio takes true (any) and false (none) too
        return Interruptible.ANY if value else Interruptible.NONE
    try:
        return Interruptible(value)
    except (ValueError, TypeError):
        check.fail(path, "expected one of none, dtmf, speech, any (or true, false)")


def _relay(check: _Checker, raw: object) -> RelaySettings:
    if not isinstance(raw, dict):
        check.fail(("relay",), f"expected a table, got {_toml_type(raw)}")
    fields: dict[str, Any] = {}
    langs: dict[str, str] = {}
    for key, value in raw.items():
        path = ("relay", key)
        if key == "welcomeGreeting":
            fields["welcome_greeting"] = check.text_field(value, path)
        elif key in ("welcomeGreetingInterruptible", "interruptible"):
            name = "welcome_greeting_interruptible" if key.startswith("welcome") else key
            fields[name] = _interruptible(check, value, path)
        elif key in ("language", "ttsLanguage", "transcriptionLanguage"):
            if not isinstance(value, str) or not _LANG_TAG.match(value):
                check.fail(path, 'expected a BCP-47 language tag such as "en-US"')
            langs[key] = value
        elif key in ("dtmfDetection", "partialPrompts"):
            if not isinstance(value, bool):
                check.fail(path, f"expected true or false, got {_toml_type(value)}")
            fields["dtmf_detection" if key == "dtmfDetection" else "partial_prompts"] = value
        elif key == "hints":
            if not isinstance(value, str) or len(value) > 5000:
                check.fail(path, "expected comma-separated phrases (at most 5000 characters)")
            hints = [" ".join(h.split()) for h in value.split(",")]
            fields["hints"] = tuple(dict.fromkeys(h for h in hints if normalise(h)))
        elif key == "parameters":
            fields["parameters"] = _relay_parameters(check, value)
        else:
            check.fail(path, f"unknown key (expected one of {', '.join(_RELAY_KEYS)})")
    language = langs.get("language", "en-US")
    fields["tts_language"] = langs.get("ttsLanguage", language)
    fields["transcription_language"] = langs.get("transcriptionLanguage", language)
    return RelaySettings(**fields)


def _relay_parameters(check: _Checker, raw: object) -> Mapping[str, str]:
    path = ("relay", "parameters")
    if not isinstance(raw, dict):
        check.fail(path, f"expected a table, got {_toml_type(raw)}")
    if len(raw) > _MAX_PARAMETERS:
        check.fail(path, f"more than {_MAX_PARAMETERS} parameters")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            check.fail((*path, name), f"expected a string, got {_toml_type(value)}")
        if not name.strip() or len(name) + len(value) > _MAX_PARAMETER_CHARS:
            check.fail((*path, name), "name and value must be 1..499 characters together")
        out[name] = value
    return types.MappingProxyType(out)


def _voice_settings(check: _Checker, raw: object) -> Mapping[str, float | bool]:
    if not isinstance(raw, dict):
        check.fail(("voice_settings",), f"expected a table, got {_toml_type(raw)}")
    out: dict[str, float | bool] = {}
    for key, value in raw.items():
        path = ("voice_settings", key)
        if key == "use_speaker_boost":
            if not isinstance(value, bool):
                check.fail(path, f"expected true or false, got {_toml_type(value)}")
            out[key] = value
            continue
        if key in _UNIT_SETTINGS:
            low, high = 0.0, 1.0
        elif key == "speed":
            low, high = _SPEED_RANGE
        else:
            check.fail(
                path,
                "unknown voice setting (expected stability, similarity_boost, "
                "style, use_speaker_boost, speed)",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            check.fail(path, f"expected a number, got {_toml_type(value)}")
        if not low <= value <= high:
            check.fail(path, f"must be within {low}..{high}")
        out[key] = float(value)
    return types.MappingProxyType(out)


@lru_cache(maxsize=1)
def default_script() -> CallScript:
    """The built-in artist hotline script (package data ``default_script.toml``)."""
    text = resources.files("hotline.core").joinpath("default_script.toml").read_text("utf-8")
    return load_script(text, source="default_script.toml")


#: The sentence of the ``/debug-websocket-voice`` call.
DEBUG_SENTENCE = "WebSocket is working! You should hear this message clearly."
#: The ``/debug-websocket-voice`` call: one sentence (every key says it too); the shell accepts
#: it with ``hangup_after_greeting=True``.
DEBUG_SCRIPT = CallScript(
    greeting=DEBUG_SENTENCE,
    menu=types.MappingProxyType({}),
    goodbye=DEBUG_SENTENCE,
    goodbye_digit=None,
    invalid_digit=DEBUG_SENTENCE,
)
