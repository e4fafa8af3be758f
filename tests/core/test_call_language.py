"""The voice's language, sans-I/O: which language each utterance is spoken in
(:attr:`StartTTS.language`), by ConversationRelay's precedence (``language`` < ``ttsLanguage`` <
the latest ``language`` message < a token's ``lang``), and ElevenLabs' ``language_code`` for a
tag and a model."""

from __future__ import annotations

import pytest

from hotline.core.actions import CancelTTS, StartTTS, TTSClose, TTSText
from hotline.core.call import Call
from hotline.core.elevenlabs import language_code, takes_language
from hotline.core.events import TTSFinal
from tests.core.test_call import audio, mark_msg
from tests.core.test_call_listen import finish_greeting, listening


def started(call: Call) -> list[StartTTS]:
    return [a for a in call.actions() if isinstance(a, StartTTS)]


def play_out(call: Call, uid: int, now: float) -> None:
    """Utterance ``uid``'s TTS ends and its end mark comes back: the next one may start."""
    call.receive_tts(uid, audio(100), now)
    call.receive_tts(uid, TTSFinal(), now)
    call.pump(now)
    call.data_to_send()
    call.receive_text(mark_msg(f"u{uid}-end"), now + 0.2)


def test_the_calls_own_voice_until_a_language_message() -> None:
    call = listening()
    assert call.lines.language is None  # the greeting was StartTTS(1, ..., language=None)
    finish_greeting(call)
    call.replies.say("Wren plays Portland.", 1.0, last=True)
    assert started(call) == [StartTTS(2, "Wren plays Portland.", streaming=True)]


def test_a_language_message_holds_for_every_line_queued_after_it() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Before.", 1.0, last=True)  # queued before the switch
    call.lines.speak_in("es-ES")
    call.replies.say("Hola.", 1.1, last=True)
    call.say("Adiós.", 1.2)  # any line, not only the brain's
    assert started(call) == [StartTTS(2, "Before.", streaming=True)]  # keeps its language
    play_out(call, 2, 1.5)
    assert started(call) == [StartTTS(3, "Hola.", streaming=True, language="es-ES")]
    play_out(call, 3, 2.0)
    assert started(call) == [StartTTS(4, "Adiós.", language="es-ES")]
    call.lines.speak_in(None)  # back to the call's own voice
    call.replies.say("Back.", 3.0, last=True)
    play_out(call, 4, 2.5)
    assert started(call) == [StartTTS(5, "Back.", streaming=True)]


def test_a_tokens_lang_beats_the_session_language_for_its_reply() -> None:
    call = listening()
    finish_greeting(call)
    call.lines.speak_in("es-ES")
    call.replies.say("Bonjour ", 1.0, last=False, lang="fr-FR")
    call.replies.say("à tous.", 1.1, last=True)  # no lang: the reply goes on in French
    assert call.actions() == [
        StartTTS(2, "Bonjour ", streaming=True, language="fr-FR"),
        TTSText(2, "à tous."),
        TTSClose(2),
    ]
    call.replies.say("Hola.", 1.2, last=True)  # the next reply: the session's language
    play_out(call, 2, 1.5)
    assert started(call) == [StartTTS(3, "Hola.", streaming=True, language="es-ES")]
    assert call.lines.language == "es-ES"  # a token's lang never changes the session's


def test_a_token_in_another_language_ends_the_reply_and_opens_one_in_its_own() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Hello, ", 1.0, last=False, lang="en-US")
    call.replies.say("hola, ", 1.1, last=False, lang="es-ES")  # another voice: another reply
    call.replies.say("amigos.", 1.2, last=True)
    assert call.actions() == [
        StartTTS(2, "Hello, ", streaming=True, language="en-US"),
        TTSClose(2),  # what was said so far plays out in English
    ]
    play_out(call, 2, 1.5)
    assert call.actions()[:2] == [
        StartTTS(3, "hola, amigos.", streaming=True, language="es-ES"),
        TTSClose(3),
    ]
    assert call.replies.open is None


def test_the_same_lang_on_every_token_is_one_reply() -> None:
    call = listening()
    finish_greeting(call)
    for token in ("Uno ", "dos ", "tres."):
        call.replies.say(token, 1.0, last=token.endswith("."), lang="es-ES")
    assert call.actions() == [
        StartTTS(2, "Uno ", streaming=True, language="es-ES"),
        TTSText(2, "dos "),
        TTSText(2, "tres."),
        TTSClose(2),
    ]


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("es-ES", "es"),
        ("es-MX", "es"),
        ("FR", "fr"),
        ("pt_BR", "pt"),
        ("fil-PH", "fil"),
        ("en-US", "en"),
        ("multi", None),
        ("", None),
        (None, None),
        ("x-klingon", None),
        ("ñu-ES", None),
    ],
)
def test_language_code_is_the_tags_primary_subtag(tag: str | None, code: str | None) -> None:
    assert language_code(tag) == code


def test_only_flash_and_turbo_v2_5_take_a_language_code() -> None:
    assert takes_language("eleven_flash_v2_5") and takes_language("eleven_turbo_v2_5")
    assert not takes_language("eleven_multilingual_v2")
    assert not takes_language("eleven_flash_v2")


def test_a_preemptible_reply_split_by_language_does_not_cut_its_own_first_part() -> None:
    call = listening()
    finish_greeting(call)
    call.replies.say("Hello, ", 1.0, last=False, preemptible=True, lang="en-US")
    call.replies.say("hola.", 1.1, last=True, preemptible=True, lang="es-ES")
    assert call.actions() == [
        StartTTS(2, "Hello, ", streaming=True, language="en-US"),
        TTSClose(2),
    ]  # no CancelTTS: the first part plays out
    play_out(call, 2, 1.5)
    assert started(call) == [StartTTS(3, "hola.", streaming=True, language="es-ES")]
    call.replies.say("Next.", 2.0, last=True)  # a new reply: it may cut the preemptible one
    assert any(isinstance(a, CancelTTS) for a in call.actions())
