"""The server's own voice-to-voice split, read from its ``/metrics`` as deltas.

hotline observes every caller turn's split into ``hotline_voice_to_voice_seconds{stage=...}``
(stages: silence, recogniser, dispatch, model, to_tts, voice, playout, plus total and hotline).
Two scrapes taken around a stretch of a call give, per stage, the sum and count of what was
observed in between; with one call on the server that is exactly that call's turns.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

__all__ = ["V2V_METRIC", "V2vSnapshot", "parse_v2v", "scrape_v2v", "split_between"]

V2V_METRIC = "hotline_voice_to_voice_seconds"

#: stage -> (sum of seconds, count), plus per-stage cumulative buckets (le -> count).
V2vSnapshot = dict[str, tuple[float, float, dict[float, float]]]


def parse_v2v(text: str) -> V2vSnapshot:
    """The voice-to-voice histogram of one ``/metrics`` page (empty if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: V2vSnapshot = {}
    for family in text_string_to_metric_families(text):
        if family.name != V2V_METRIC:
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage")
            if stage is None:
                continue
            total, count, buckets = out.get(stage, (0.0, 0.0, {}))
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] = sample.value
            out[stage] = (total, count, buckets)
    return out


async def scrape_v2v(client: httpx.AsyncClient, base: str) -> V2vSnapshot | None:
    """One scrape of ``{base}/metrics``; None if the server could not be read."""
    try:
        r = await client.get(base.rstrip("/") + "/metrics", timeout=5.0)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        return parse_v2v(r.text)
    except ValueError:
        return None


def split_between(
    before: Mapping[str, tuple[float, float, Mapping[float, float]]] | None,
    after: Mapping[str, tuple[float, float, Mapping[float, float]]] | None,
) -> tuple[dict[str, float], int] | None:
    """Mean ms per stage of the turns observed between two scrapes, and how many turns.

    None when either scrape is missing or no turn was observed in between."""
    if before is None or after is None:
        return None
    turns = 0
    out: dict[str, float] = {}
    for stage, (total, count, _) in after.items():
        b_total, b_count, _ = before.get(stage, (0.0, 0.0, {}))
        n = count - b_count
        if n <= 0:
            continue
        out[stage] = (total - b_total) / n * 1000.0
        if stage == "total":
            turns = int(n)
    if not turns:
        return None
    return out, turns
