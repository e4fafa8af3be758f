"""Choosing and running a brain for one call (:func:`hotline.server.listen.new_brain` calls
:func:`make_brain`).

``HOTLINE_BRAIN`` picks it: ``script`` (default, offline), ``llm`` (``HOTLINE_LLM_URL``,
``HOTLINE_LLM_API_KEY``, ``HOTLINE_LLM_MODEL``) or ``relay`` (``HOTLINE_RELAY_URL``, signed
with the Twilio auth token). The listener passes the values in; nothing here reads the
environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.core.brain import Brain, BrainInput, CallStarted, Emit
from hotline.core.script import CallScript
from hotline.core.script_brain import ScriptBrain
from hotline.errors import assert_never
from hotline.server.settings import BrainKind

if TYPE_CHECKING:
    import openai

__all__ = ["SansIOBrain", "make_brain"]


class SansIOBrain:
    """Runs the sans-I/O :class:`ScriptBrain` as a :class:`Brain` (emits in order)."""

    def __init__(
        self,
        script: CallScript,
        *,
        handoff: bool = True,
        end_confidence: float | None = None,
        handoff_confidence: float | None = None,
    ) -> None:
        self.core = ScriptBrain(
            script,
            handoff=handoff,
            end_confidence=end_confidence,
            handoff_confidence=handoff_confidence,
        )
        self._emit: Emit | None = None

    #: The shell may send speculative turns (its replies are held until confirmed).
    speculates = True

    async def start(self, ev: CallStarted, emit: Emit) -> None:
        self._emit = emit

    async def handle(self, ev: BrainInput) -> None:
        if self._emit is None:
            return
        for out in self.core.respond(ev):
            await self._emit(out)

    async def aclose(self) -> None:
        self._emit = None


def make_brain(
    kind: BrainKind,
    script: CallScript,
    *,
    llm_url: str | None = None,
    llm_api_key: str = "",
    llm_model: str = "gpt-4o-mini",
    llm_legacy_max_tokens: bool = False,
    relay_url: str | None = None,
    twilio_auth_token: str | None = None,
    caller: str = "",
    handoff: bool = False,
    end_confidence: float | None = None,
    handoff_confidence: float | None = None,
    llm_client: openai.AsyncOpenAI | None = None,
) -> Brain:
    """A new brain for one call.

    ``handoff``: a person can take a handed-off call (``HOTLINE_HANDOFF_URL`` or
    ``HOTLINE_HANDOFF_NUMBER``): the script's handoff intent says its line, the LLM gets
    ``transfer_to_human``. ``end_confidence`` / ``handoff_confidence``: the script brain's
    (``HOTLINE_END_CONFIDENCE`` / ``HOTLINE_HANDOFF_CONFIDENCE``; None: the script's).
    ``llm_client``: the process's ``AsyncOpenAI`` (the brain borrows it; None: the brain opens
    its own from ``llm_url`` and closes it with the call).

    Raises:
        ValueError: ``llm``/``relay`` without its URL.
    """
    if kind is BrainKind.SCRIPT:
        return SansIOBrain(
            script,
            handoff=handoff,
            end_confidence=end_confidence,
            handoff_confidence=handoff_confidence,
        )
    if kind is BrainKind.LLM:
        from hotline.server.brain_llm import LlmBrain, make_client

        if llm_client is None and not llm_url:
            raise ValueError("the llm brain needs HOTLINE_LLM_URL")
        own = llm_client is None
        client = llm_client
        if client is None:
            client = make_client(llm_url or "", llm_api_key, timeout=script.llm.total_timeout_s)
        return LlmBrain(
            script,
            client,
            model=llm_model,
            legacy_max_tokens=llm_legacy_max_tokens,
            handoff=handoff,
            owns_client=own,
        )
    if kind is BrainKind.RELAY:
        from hotline.server.brain_relay import RelayBrain

        if not relay_url:
            raise ValueError("the relay brain needs HOTLINE_RELAY_URL")
        return RelayBrain(
            relay_url, script, auth_token=twilio_auth_token, caller=caller, handoff=handoff
        )
    assert_never(kind)
