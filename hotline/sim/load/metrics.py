"""hotline's ``/metrics`` (Prometheus text) parsed, diffed over a run, and summarised."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from hotline.sim.load.consts import (
    _COUNTERS,
    _HISTOGRAMS,
)


@dataclass
class Scrape:
    """The parts of one /metrics scrape the report uses."""

    histograms: dict[str, dict[float, float]] = field(default_factory=dict)  # name -> le -> count
    sums: dict[str, float] = field(default_factory=dict)  # histogram name -> _sum
    counters: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> labels -> value
    process_cpu_s: float | None = None
    process_rss_bytes: float | None = None
    names: set[str] = field(default_factory=set)


def parse_metrics(text: str) -> Scrape:
    """Parse Prometheus text exposition into histogram buckets and labelled counters."""
    from prometheus_client.parser import text_string_to_metric_families

    out = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            out.names.add(name)
            if name.endswith("_bucket") and "le" in labels:
                base = name[: -len("_bucket")]
                le = math.inf if labels["le"] in ("+Inf", "Inf") else float(labels["le"])
                out.histograms.setdefault(base, {})[le] = value
            elif name.endswith("_sum") and name[: -len("_sum")] in _HISTOGRAMS:
                out.sums[name[: -len("_sum")]] = value
            elif name == "process_cpu_seconds_total":
                out.process_cpu_s = value
            elif name == "process_resident_memory_bytes":
                out.process_rss_bytes = value
            elif name in _COUNTERS:
                key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                out.counters.setdefault(name, {})[key] = value
    return out


def _diff_buckets(
    after: Mapping[float, float], before: Mapping[float, float]
) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding the
    q-th observation. ``buckets`` maps upper bound -> cumulative count (``inf`` included).
    Returns None without observations; the highest finite bound if it lands in ``+Inf``."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def _counter_diff(after: Scrape, before: Scrape | None, name: str) -> dict[str, float]:
    now = after.counters.get(name, {})
    then = before.counters.get(name, {}) if before is not None else {}
    return {k: v - then.get(k, 0.0) for k, v in now.items() if v - then.get(k, 0.0)}


def _hist_summary(after: Scrape, before: Scrape | None, name: str) -> dict[str, float | None]:
    buckets = after.histograms.get(name)
    if buckets is None:
        return {"count": None, "p50_ms": None, "p99_ms": None, "mean_ms": None}
    if before is not None and name in before.histograms:
        buckets = _diff_buckets(buckets, before.histograms[name])
    count = buckets.get(math.inf, 0.0)
    total = after.sums.get(name, 0.0) - (before.sums.get(name, 0.0) if before else 0.0)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 3)

    return {
        "count": count,
        "p50_ms": ms(histogram_quantile(0.5, buckets)),
        "p99_ms": ms(histogram_quantile(0.99, buckets)),
        "mean_ms": ms(total / count) if count else None,
    }


# ----------------------------------------------------------------------------- spawning


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 3)
