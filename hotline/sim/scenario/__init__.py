"""Scenario tests for a line (``hotline test``): what callers say and what they must hear,
written down in TOML and checked over Twilio's own wire protocol.

``model`` (the format), ``audio`` (the caller's audio: eSpeak, recorded WAVs, coughs, noise),
``driver`` (the call, step by step, on the caller simulator's stream), ``ear`` (the caller's
ear: what it heard, as words), ``checks`` (each expectation judged), ``judge`` (the optional
LLM judge), ``runner`` (run and judge scenarios), ``report`` (table, JUnit XML, JSON),
``serve`` (an offline hotline for ``--spawn-server``), ``cli`` (``hotline test``) and
``pytest_plugin`` (a deployer's own suite).
"""
