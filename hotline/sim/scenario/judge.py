"""The optional LLM judge: an OpenAI-compatible Chat Completions model reads the call (what the
caller said, what it heard) and a rubric, and answers PASS or FAIL with a reason. Fuzzy
expectations only: a scenario never relies on it alone (:mod:`hotline.sim.scenario.model`
refuses one that would)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JudgeConfig", "Verdict", "judge"]

SYSTEM = (
    "You judge a recorded phone call between a caller and an automated phone line, against a "
    "rubric. Answer with PASS or FAIL as the first word, then one short sentence saying why."
)


@dataclass(frozen=True)
class JudgeConfig:
    url: str  # base URL, e.g. https://api.openai.com/v1
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Verdict:
    ok: bool | None  # None: no verdict (the judge failed or answered something else)
    reason: str


async def judge(config: JudgeConfig, rubric: str, conversation: str) -> Verdict:
    """Ask the judge; never raises (a failed request is a verdict of None with the reason)."""
    import httpx

    body = {
        "model": config.model,
        "temperature": 0,
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Rubric: {rubric}\n\nThe call:\n{conversation}"},
        ],
    }
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    url = config.url.rstrip("/") + "/chat/completions"
    try:
        async with httpx.AsyncClient(timeout=config.timeout) as http:
            r = await http.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return Verdict(None, f"judge unreachable: {type(exc).__name__}")
    if r.status_code != 200:
        return Verdict(None, f"judge answered HTTP {r.status_code}")
    try:
        content = r.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Verdict(None, "judge answer is not a chat completion")
    if not isinstance(content, str):
        return Verdict(None, "judge answered no text")
    text = content.strip()
    first = text.split(maxsplit=1)[0].strip(".:,!").upper() if text else ""
    reason = text[len(first) :].strip(" .:,-") if first else ""
    if first == "PASS":
        return Verdict(True, reason or "pass")
    if first == "FAIL":
        return Verdict(False, reason or "fail")
    return Verdict(None, f"judge answered neither PASS nor FAIL: {text[:80]!r}")
