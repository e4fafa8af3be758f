"""A storm of interrupting lines on one multi-stream-input socket, against the faithful
stand-in (a closed, flushed context goes on generating and counts until its late final):
no ``max_active_conversations`` 1008, every line either heard or cleanly cancelled."""

from __future__ import annotations

import asyncio
import dataclasses

from hotline.core.events import TTSAudio, TTSFinal
from hotline.server.tts_multi import MultiTTS
from hotline.tts_standin.server import StandInConfig, TTSStandIn
from tests.scale.test_multi import Collect, bad, config, settle
from tests.support.aio import arun

#: Long enough that a cancelled line's generation outlives the next few interruptions.
WORDS = "and the band played on through the night while the rain kept falling on the roof"


def test_ten_interrupting_lines_in_two_seconds_never_trip_the_limit() -> None:
    async def main() -> None:
        cfg = StandInConfig(first_chunk_delay=0.15, realtime_factor=4.0, cache=False)
        async with TTSStandIn(cfg) as voice:
            tts = MultiTTS(dataclasses.replace(config(voice), timeout=8.0), label="CA-storm")
            outcomes: list[str] = []
            heard: list[Collect] = []
            tasks: list[asyncio.Task[None]] = []
            for i in range(10):  # a new line every 0.2 s, each interrupting the last
                out = Collect()
                heard.append(out)
                tasks.append(
                    asyncio.create_task(tts.synthesize(f"Line {i}, {WORDS} {i}.", out, bad))
                )
                await asyncio.sleep(0.2)
                if i < 9:
                    tasks[-1].cancel()  # barge-in: close_context, its audio now unwanted
            for task in tasks:
                try:
                    await task
                    outcomes.append("heard")
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
            assert outcomes[:9] == ["cancelled"] * 9 and outcomes[9] == "heard", outcomes
            last = heard[9].events
            assert any(isinstance(e, TTSAudio) for e in last)
            assert isinstance(last[-1], TTSFinal)  # the whole last line, to its final
            assert voice.stats.errors_sent == 0, "the stand-in refused a context (1008)"
            assert voice.stats.connections == 1 and tts.stats.reconnects == 0
            print(
                f"\nslot waits {tts.stats.slot_waits}, forgotten {tts.stats.contexts_forgotten}, "
                f"late messages dropped {tts.stats.late_messages_dropped}"
            )
            await tts.aclose()
            await settle(voice)

    arun(main, timeout=60)


def test_storm_of_interrupting_says_through_a_call() -> None:
    """The same storm end to end: ten ``say`` with ``interrupt`` in 2 s on uncached lines
    (no phrase cache), through a real server, its local voice and the caller simulator."""
    import httpx

    from hotline.sim.call_report import CallReport
    from hotline.sim.caller import place_call
    from hotline.sim.options import CallOptions
    from tests.support.server import ADMIN, AUTH_TOKEN, running_server

    async def main() -> None:
        async with running_server(cache_bytes=0, tts_timeout=8.0) as run:
            live: list[CallReport] = []
            opts = CallOptions(
                url=run.base, auth_token=AUTH_TOKEN, max_seconds=40, on_started=live.append
            )
            call = asyncio.create_task(place_call(opts))
            while not live or not live[0].media_frames:
                await asyncio.sleep(0.02)
            sid = opts.call_sid
            async with httpx.AsyncClient(base_url=run.base, headers=ADMIN) as client:
                for i in range(10):
                    body = {"text": f"Storm line {i}, {WORDS} {i}.", "interrupt": True}
                    r = await client.post(f"/calls/{sid}/say", json=body)
                    assert r.status_code == 202, r.text
                    await asyncio.sleep(0.2)
                last = f"u{r.json()['utterance_id']}-end"
                while not any(u.mark == last for u in live[0].utterances):  # heard to its end
                    assert not call.done(), call.result().errors
                    await asyncio.sleep(0.05)
                await client.post(f"/calls/{sid}/hangup")
            report = await call
            assert report.errors == [] and report.protocol_violations == 0, report.errors
            # Every line heard to its mark, or cut by a clear (cleanly cancelled); never
            # silence from a failed line.
            assert all(u.mark or u.cleared for u in report.utterances), report.utterances
            voice = run.voice
            assert voice.stats.errors_sent == 0, "max_active_conversations (1008)"
            stats = run.hub.speech.multi_stats()
            assert stats.reconnects == 0
            async with httpx.AsyncClient(base_url=run.base) as client:
                metrics = (await client.get("/metrics")).text
            assert 'hotline_elevenlabs_errors_total{kind="contexts"}' not in metrics

    arun(main, timeout=90)
