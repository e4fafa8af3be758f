"""The sans-I/O layers stay sans-I/O: an AST check over hotline/core and hotline/codec.

Rules (style guide, section 2): ``server -> core -> codec``, never backwards. core and codec
import none of the I/O frameworks, never read the environment, and never import the layers
above them; core reads no clock (``time``/``datetime``): the shell passes the time in.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hotline"

FORBIDDEN_MODULES = {
    "asyncio",
    "fastapi",
    "starlette",
    "websockets",
    "httpx",
    "uvicorn",
    "socket",
    "anyio",
    "aiohttp",
    "trio",
}
# Layers above core/codec.
FORBIDDEN_HOTLINE = {
    "core": (
        "hotline.server",
        "hotline.tts_standin",
        "hotline.voice",
        "hotline.sim",
        "hotline.cli",
    ),
    "codec": (
        "hotline.core",
        "hotline.server",
        "hotline.tts_standin",
        "hotline.voice",
        "hotline.sim",
        "hotline.cli",
    ),
}
# core has no clocks either: the shell passes the time in (style guide, hotline/core).
CLOCK_MODULES = {"time", "datetime", "sched"}
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _sources(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py")) + sorted((PACKAGE / layer).rglob("*.pyi"))


def _violations(path: Path, layer: str) -> list[str]:
    rel = path.relative_to(ROOT)
    return _violations_in(path.read_text("utf-8"), rel, layer)


def _violations_in(source: str, rel: Path, layer: str) -> list[str]:
    tree = ast.parse(source, filename=str(rel))
    found: list[str] = []

    def check_module(name: str, line: int) -> None:
        top = name.split(".")[0]
        if top in FORBIDDEN_MODULES:
            found.append(f"{rel}:{line}: imports {name}")
        if layer == "core" and top in CLOCK_MODULES:
            found.append(f"{rel}:{line}: imports {name} (core takes the time as an argument)")
        for upper in FORBIDDEN_HOTLINE[layer]:
            if name == upper or name.startswith(upper + "."):
                found.append(f"{rel}:{line}: imports {name} (a layer above {layer})")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                parts = rel.with_suffix("").parts[: -node.level]
                module = ".".join((*parts, node.module) if node.module else parts)
            else:
                module = node.module or ""
            check_module(module, node.lineno)
            if module == "os":
                for alias in node.names:
                    if alias.name in ENV_NAMES:
                        found.append(f"{rel}:{node.lineno}: from os import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in ENV_NAMES:
            found.append(f"{rel}:{node.lineno}: uses .{node.attr}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ("__import__", "import_module") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    check_module(arg.value, node.lineno)
    return found


@pytest.mark.parametrize("layer", ["core", "codec"])
def test_sans_io_layers_import_no_io(layer: str) -> None:
    files = _sources(layer)
    assert files, f"no sources found under hotline/{layer}"
    problems = [p for f in files for p in _violations(f, layer)]
    assert problems == [], "\n".join(problems)


_PYX_IMPORT = re.compile(r"^\s*(?:c?import|from)\s+([\w.]+)", re.MULTILINE)


def test_cython_sources_import_no_io() -> None:
    problems = []
    for path in sorted((PACKAGE / "codec").glob("*.p[yx]*")):
        if path.suffix not in (".pyx", ".pxd", ".pxi"):
            continue
        text = path.read_text("utf-8")
        for match in _PYX_IMPORT.finditer(text):
            name = match.group(1)
            if name.split(".")[0] in FORBIDDEN_MODULES or name.startswith(
                FORBIDDEN_HOTLINE["codec"]
            ):
                problems.append(f"{path.relative_to(ROOT)}: imports {name}")
        if re.search(r"\bos\s*\.\s*(?:environ|getenv)\b|\bgetenv\s*\(", text):
            problems.append(f"{path.relative_to(ROOT)}: reads the environment")
    assert problems == [], "\n".join(problems)


# The checker itself must catch what it is meant to catch.


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import websockets.asyncio.client",
        "from starlette.websockets import WebSocket",
        "from fastapi import FastAPI",
        "import httpx as h",
        "import uvicorn",
        "from socket import socket",
        "import os\nx = os.environ['A']",
        "import os\nx = os.getenv('A')",
        "from os import environ",
        "from os import getenv as g",
        "from hotline.server import settings",
        "import hotline.voice.server",
        "from hotline.tts_standin import server",
        "from ..server import app",
        "import importlib\nimportlib.import_module('asyncio')",
        "__import__('socket')",
        "import time",
        "from datetime import datetime",
    ],
)
def test_checker_catches(source: str) -> None:
    assert _violations_in(source, Path("hotline/core/probe.py"), "core"), source


def test_checker_allows_ordinary_code() -> None:
    source = (
        "import json\nimport os.path\nfrom hotline.codec import Transcoder\nfrom . import events\n"
    )
    assert _violations_in(source, Path("hotline/core/probe.py"), "core") == []
    assert _violations_in("from hotline.core import twilio", Path("hotline/codec/x.py"), "codec")
