"""Every exception hotline raises on purpose, and :func:`assert_never`.

    HotlineError
     ├── ProtocolError(ValueError)     sans-I/O: a malformed Twilio, ElevenLabs or STT message
     │    ├── TwilioProtocolError
     │    ├── ElevenLabsProtocolError
     │    ├── RelayProtocolError        an invalid ConversationRelay message from the app
     │    ├── LlmProtocolError          a malformed Chat Completions stream chunk
     │    └── SttProtocolError          a malformed speech-to-text message (Scribe, Deepgram) or misuse
     ├── CodecError(ValueError)        sans-I/O: bad arguments or unusable audio
     │    └── DecoderError             libmpg123 could not recover
     ├── CallStateError(RuntimeError)  sans-I/O: a Call method used in a state that forbids it
     │                                 (``say`` after hang-up); defined in hotline.core.callstate
     ├── TTSError                      the TTS service failed an utterance (error message, close,
     │                                 timeout); the call goes on
     ├── BrainError                    a brain (LLM, relay app) failed one turn; the shell speaks
     │                                 the script's ``brain_error`` line and the call goes on
     ├── PlayError                     an audio URL (ConversationRelay ``play``) could not be
     │                                 fetched or decoded
     ├── SynthesisError(ValueError)    the local voice (eSpeak NG) could not synthesise: unknown
     │                                 voice, parameter out of range, or an engine failure
     └── ConfigError(ValueError)       bad settings or configuration objects; raised at start-up
                                       (and by the core's config classes: VadConfig, TurnConfig,
                                       ElevenLabs query options, the call script)

What arrives from outside makes the sans-I/O layers (``codec``, ``core``) raise ProtocolError or
CodecError; the server catches them, logs once and drops the offending input. A caller's own
mistake raises CallStateError, ConfigError, or a plain ValueError for a bad argument (cache
size, DTMF digits, pacing parameters), and the codec's objects raise RuntimeError when two
threads use one at once: bugs, not traffic, so the shell does not catch them.
"""

from __future__ import annotations

from typing import NoReturn


class HotlineError(Exception):
    """Base class of every exception hotline raises on purpose."""


class ProtocolError(HotlineError, ValueError):
    """A wire message did not match the protocol; the message is dropped."""


class TwilioProtocolError(ProtocolError):
    """A malformed or unexpected Twilio Media Streams message."""


class ElevenLabsProtocolError(ProtocolError):
    """A malformed or unexpected ElevenLabs WebSocket message."""


class RelayProtocolError(ProtocolError):
    """An invalid ConversationRelay message from the app (Twilio's error 64107)."""


class LlmProtocolError(ProtocolError):
    """A Chat Completions stream chunk that cannot be used."""


class BrainError(HotlineError):
    """A brain failed one turn (HTTP error, timeout, broken stream, app gone)."""


class PlayError(HotlineError):
    """An audio URL could not be fetched (status, size, timeout) or decoded."""


class SttProtocolError(ProtocolError):
    """A malformed or unexpected speech-to-text message (ElevenLabs Scribe, Deepgram), or misuse."""


class CodecError(HotlineError, ValueError):
    """Audio or arguments the codec cannot use."""


class DecoderError(CodecError):
    """libmpg123 reported an error it cannot recover from."""


class TTSError(HotlineError):
    """The text-to-speech service failed one utterance."""


class SynthesisError(HotlineError, ValueError):
    """eSpeak NG could not synthesise the request (bad voice or parameter, engine failure)."""


class ConfigError(HotlineError, ValueError):
    """Invalid configuration, reported at start-up."""


def assert_never(value: NoReturn) -> NoReturn:
    """The end of an exhaustive dispatch: mypy proves it unreachable, a bug raises here.

    Raises:
        AssertionError: always (``value`` is a member of the union no branch handled).
    """
    raise AssertionError(f"unhandled: {value!r}")
