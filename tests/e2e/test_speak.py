"""``hotline call --speak`` end to end: the caller simulator asks questions aloud (eSpeak NG in
real-time 20 ms frames) of a real server on 127.0.0.1 whose embedded local ear (pocketsphinx
behind Scribe's protocol) transcribes them and whose script brain answers with the intent's
line; the report carries the caller-side voice to voice and the server's split per question."""

from __future__ import annotations

from pathlib import Path

from hotline.server.settings import ListenSettings
from hotline.sim.caller import place_call
from hotline.sim.options import CallOptions
from hotline.sim.speech import caller_speech_frames
from tests.support import marks
from tests.support.aio import arun
from tests.support.server import ADMIN_TOKEN, AUTH_TOKEN, running_server

# The turn's end within 40 ms of the last speech frame, on the caller simulator's wall clock.
pytestmark = marks.wall_clock

SCRIPT = """
greeting = "Hello, this is the test line."
invalid_digit = "That key does nothing."
goodbye = "Goodbye."
goodbye_digit = "0"
fallback = "Sorry, I did not catch that."
brain_error = "Sorry, trouble on my end."

[menu]
1 = "News."

[intents.tour]
phrases = ["tour", "tour dates", "dates"]
say = "The tour starts in Portland in April."

[intents.album]
phrases = ["album", "new album"]
say = "The new album is called Paper Lanterns."
"""

QUESTIONS = {
    "What are the tour dates?": "The tour starts in Portland in April.",
    "Tell me about the new album": "The new album is called Paper Lanterns.",
}


def test_spoken_questions_are_answered_with_their_intent_lines(tmp_path: Path) -> None:
    arun(lambda: spoken_questions(tmp_path), 120)


async def spoken_questions(tmp_path: Path) -> None:
    script = tmp_path / "script.toml"
    script.write_text(SCRIPT)
    async with running_server(script_path=str(script), listen=ListenSettings(stt="local")) as run:
        opts = CallOptions(
            url=run.base,
            auth_token=AUTH_TOKEN,
            speak=tuple(QUESTIONS),
            hangup_after_replies=True,
            server_split=True,
            admin_token=ADMIN_TOKEN,
            max_seconds=90,
        )
        report = await place_call(opts)
    assert report.ok, report.errors
    assert report.ended_by == "caller_stop"
    assert [t.text for t in report.turns] == list(QUESTIONS)
    for turn, line in zip(report.turns, QUESTIONS.values(), strict=True):
        assert turn.reply_text == line, (turn.heard_as, turn.reply_text)
        assert turn.ended_ms is not None and turn.first_reply_ms is not None
        # The caller stopped speaking at its last speech frame (eSpeak's tail is not speech).
        spoken_ms = len(caller_speech_frames(turn.text)) * 20
        assert turn.spoke_at_ms < turn.ended_ms <= turn.spoke_at_ms + spoken_ms + 40
        assert turn.voice_to_voice_ms is not None and turn.voice_to_voice_ms > 0
        assert turn.reply_audio_ms > 1000 and turn.reply_speech_ms > 500
        split = turn.server
        assert split is not None
        assert set(split) >= {"silence", "recogniser", "dispatch", "voice", "total", "hotline"}
        # The server's own total runs from the end of speech it detected to its first frame
        # out: never longer than what the caller measured plus the network's few ms.
        assert 0 < split["hotline"] < split["total"]
        assert split["silence"] > 0
