"""LLM brain latency against the OpenAI-compatible stand-in (real uvicorn, official client).

    python -m benchmarks.bench_brain_llm [--turns 30] [--token-delay 0.02] [--json]

Per turn, from the brain's own :class:`TurnTiming` (monotonic clock): request sent -> first
piece emitted, and -> last piece emitted. With ``--token-delay 0`` this is hotline's overhead
(openai client, SSE parsing, chunk parser, phrase cutter, one HTTP round trip on loopback);
with a delay, "first piece" shows the phrase cutter waiting for the first phrase boundary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys

import uvicorn

from benchmarks.common import versions
from hotline.core.brain import BrainOutput, CallerTurn, CallStarted
from hotline.core.script import default_script
from hotline.server.brain_llm import LlmBrain, make_client
from hotline.sim.llm_server import StandIn, listening_socket

REPLY = (
    "We play Portland on the twelfth, Seattle on the fourteenth, and Vancouver. Tickets are online!"
)


async def measure(turns: int, token_delay: float) -> dict[str, float]:
    standin = StandIn(default=REPLY, token_delay=token_delay)
    sock = listening_socket(0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(standin.app(), log_config=None, log_level="warning", ws="none")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    brain = LlmBrain(default_script(), make_client(f"http://127.0.0.1:{port}/v1", "k"), model="m")

    async def emit(o: BrainOutput) -> None:
        pass

    await brain.start(CallStarted("CA1", "MZ1"), emit)
    for n in range(turns + 1):
        await brain.handle(CallerTurn(f"question {n}"))
        await brain.wait_idle()
    await brain.aclose()
    server.should_exit = True
    await task
    timings = brain.timings[1:]  # the first turn opens the connection
    first = [(t.first_token or 0) - t.request_sent for t in timings]
    last = [(t.last_token or 0) - t.request_sent for t in timings]
    return {
        "token_delay_s": token_delay,
        "first_piece_p50_ms": 1000 * statistics.median(first),
        "first_piece_max_ms": 1000 * max(first),
        "last_piece_p50_ms": 1000 * statistics.median(last),
        "pieces_per_turn": statistics.mean(t.pieces for t in timings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--token-delay", type=float, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    delays = [args.token_delay] if args.token_delay is not None else [0.0, 0.02]
    results = [asyncio.run(measure(args.turns, d)) for d in delays]
    if args.json:
        json.dump({"versions": versions(), "results": results}, sys.stdout, indent=2)
        print()
        return
    for r in results:
        print(
            f"token delay {r['token_delay_s'] * 1000:4.0f} ms: first piece p50 "
            f"{r['first_piece_p50_ms']:6.1f} ms (max {r['first_piece_max_ms']:6.1f}), "
            f"last piece p50 {r['last_piece_p50_ms']:7.1f} ms, {r['pieces_per_turn']:.1f} pieces/turn"
        )


if __name__ == "__main__":
    main()
