"""Reports of a scenario run: a table for the terminal, JUnit XML (for CI), JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from hotline.sim.scenario.runner import ScenarioResult

__all__ = ["dumps", "junit_xml", "report_json", "suite_passed", "table"]


def _by_scenario(results: list[ScenarioResult]) -> dict[str, list[ScenarioResult]]:
    groups: dict[str, list[ScenarioResult]] = defaultdict(list)
    for r in results:
        groups[r.path or r.name].append(r)
    return groups


def table(results: list[ScenarioResult], *, verbose: bool = False) -> str:
    """One row per scenario (its pass rate over the repeats, its slowest reply), then every
    failed check with what the caller got instead."""
    rows = [("scenario", "passed", "rate", "worst latency", "time")]
    for runs in _by_scenario(results).values():
        ok = sum(r.passed for r in runs)
        lat = [s.latency_ms for r in runs for s in r.steps if s.latency_ms is not None]
        rows.append(
            (
                runs[0].name,
                f"{ok}/{len(runs)}",
                f"{ok / len(runs):.0%}",
                f"{max(lat):.0f} ms" if lat else "-",
                f"{sum(r.seconds for r in runs) / len(runs):.1f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        failed = r.failures()
        if not failed and not verbose:
            continue
        lines.append("")
        lines.append(f"{'FAIL' if failed else 'pass'} {r.name} (run {r.run}, call {r.call_sid})")
        for c in r.checks if verbose else failed:
            where = "call" if c.step is None else f"step {c.step}"
            mark = {True: "ok  ", False: "FAIL", None: "skip"}[c.ok]
            lines.append(f"  {mark} {where}: {c.what}: {c.detail}")
    total = len(results)
    passed = sum(r.passed for r in results)
    lines.append("")
    lines.append(f"{passed}/{total} scenario calls passed")
    return "\n".join(lines)


def junit_xml(results: list[ScenarioResult]) -> str:
    """One ``testsuite`` (``hotline-scenarios``), one ``testcase`` per scenario call."""
    suite = ET.Element(
        "testsuite",
        name="hotline-scenarios",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
        errors="0",
        skipped="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        name = r.name if r.run == 1 else f"{r.name} [run {r.run}]"
        case = ET.SubElement(
            suite, "testcase", classname=r.path or "scenario", name=name, time=f"{r.seconds:.3f}"
        )
        failed = r.failures()
        if failed:
            first = failed[0]
            fail = ET.SubElement(
                case, "failure", message=f"{first.what}: {first.detail}"[:500], type="expectation"
            )
            fail.text = "\n".join(
                f"{'call' if c.step is None else f'step {c.step}'}: {c.what}: {c.detail}"
                for c in failed
            )
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(
            f"step {s.index} {s.step}: heard {s.heard!r}; latency "
            + ("-" if s.latency_ms is None else f"{s.latency_ms:.0f} ms")
            for s in r.steps
        )
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def suite_passed(results: list[ScenarioResult], min_pass_rate: float = 1.0) -> bool:
    """Every scenario passed at least ``min_pass_rate`` of its runs (``--repeat``: speech is
    noisy, a caller's ear can mishear a line that was right)."""
    return all(
        sum(r.passed for r in runs) >= min_pass_rate * len(runs) - 1e-9
        for runs in _by_scenario(results).values()
    )


def report_json(results: list[ScenarioResult], min_pass_rate: float = 1.0) -> dict[str, Any]:
    """Every call's checks and steps, and each scenario's pass rate."""
    rates = {
        runs[0].name: {"passed": sum(r.passed for r in runs), "runs": len(runs)}
        for runs in _by_scenario(results).values()
    }
    return {
        "passed": suite_passed(results, min_pass_rate),
        "min_pass_rate": min_pass_rate,
        "scenarios": rates,
        "calls": [r.as_dict() for r in results],
    }


def dumps(results: list[ScenarioResult], min_pass_rate: float = 1.0) -> str:
    return json.dumps(report_json(results, min_pass_rate), indent=2)
