"""The layers of hotline, checked on the AST of every module (no import is executed).

Rules (style guide, section 2):

1. ``server -> core -> codec``, never backwards. ``core`` and ``codec`` import none of the I/O
   frameworks (asyncio, fastapi, starlette, websockets, httpx, uvicorn, socket, ...), never
   read the environment, and never import the layers above them (server, tts_standin, ear,
   sim, cli);
   ``core`` reads no clock (``time``/``datetime``): the shell passes the time in.
2. ``turn`` (Silero VAD and the end-of-turn model) imports neither ``hotline.server`` nor
   ``hotline.sim``; the server may import it.
   ``tts_standin`` (the local voice: ElevenLabs' TTS protocol), ``records`` (call records in a
   database), ``ear`` (the local ear:
   Scribe's and Deepgram's protocols) and ``sim`` (the caller simulator and load generator) are
   peers of ``server``, not parts of it: none imports ``hotline.server`` (they talk to it over
   its real protocols). ``server`` imports nothing from ``sim``, and from ``ear`` only the
   process launcher ``hotline.ear.process``: the ear decodes in a process of its own.
3. No import cycle among hotline modules. Every import statement counts: module level,
   inside functions, and under ``if TYPE_CHECKING:`` (a cycle that only type-checks is
   still two modules that cannot be understood apart). ``from pkg import name`` counts as an
   import of ``pkg.name`` when that is a module, else of ``pkg``.
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
        "hotline.ear",
        "hotline.sim",
        "hotline.cli",
    ),
    "codec": (
        "hotline.core",
        "hotline.server",
        "hotline.tts_standin",
        "hotline.ear",
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


# ------------------------------------------------------------------ peers of the server

PEER_RULES = {
    "tts_standin": ("hotline.server",),
    "sim": ("hotline.server",),
    "server": ("hotline.sim",),
    # call records: the server hands them a record; they import nothing of it (nor of sim)
    "records": ("hotline.server", "hotline.sim"),
    # The learned parts of turn taking (Silero VAD, the end-of-turn model): the server and the
    # benchmarks use them; they use core and codec, never the server or the simulator.
    "turn": ("hotline.server", "hotline.sim"),
}


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every hotline module ``module`` (at ``path``) imports, with the line."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join((*base, node.module) if node.module else base)
            else:
                name = node.module or ""
            found.append((name, node.lineno))
            found += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
    return [(n, line) for n, line in found if n == "hotline" or n.startswith("hotline.")]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        deps = set()
        for name, _ in _imports(path, module):
            while name and name not in modules:  # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
        graph[module] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.mark.parametrize("layer", sorted(PEER_RULES))
def test_peers_of_the_server_stay_apart(layer: str) -> None:
    modules = _modules()
    assert any(m.startswith(f"hotline.{layer}.") for m in modules), layer
    problems = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for module, path in modules.items()
        if module.startswith(f"hotline.{layer}.") or module == f"hotline.{layer}"
        for name, line in _imports(path, module)
        for banned in PEER_RULES[layer]
        if name == banned or name.startswith(banned + ".")
    ]
    assert problems == [], "\n".join(problems)


def test_the_server_reaches_the_ear_only_through_its_launcher() -> None:
    """The ear is a peer of the server: it imports nothing of ``hotline.server``, and the server
    imports only ``hotline.ear.process`` (the ear decodes in a process of its own), which itself
    imports no other hotline module (no recogniser, no pocketsphinx in the server's process)."""
    modules = _modules()
    assert "hotline.ear.process" in modules
    problems = []
    for module, path in modules.items():
        for name, line in _imports(path, module):
            where = f"{path.relative_to(ROOT)}:{line}: imports {name}"
            if module.startswith("hotline.ear.") and name.startswith("hotline.server"):
                problems.append(where)
            if module.startswith("hotline.server") and (
                name in ("hotline.ear", "hotline.ear.__main__")
                or (name.startswith("hotline.ear.") and not name.startswith("hotline.ear.process"))
            ):
                problems.append(where)
            if module == "hotline.ear.process":
                problems.append(where)
    assert problems == [], "\n".join(problems)


def test_the_console_is_a_leaf_of_the_server() -> None:
    """The console (``hotline.server.console``) reads the server, the server does not read it:
    only ``app`` imports its views (to mount them) and only ``hub`` its turn log (a plain
    container the session feeds); the console imports nothing of the peers (sim, ear, voice)."""
    modules = _modules()
    assert "hotline.server.console.views" in modules
    allowed = {
        "hotline.server.app": "hotline.server.console.views",
        "hotline.server.hub": "hotline.server.console.turns",
    }
    problems = []
    for module, path in modules.items():
        inside = module.startswith("hotline.server.console")
        for name, line in _imports(path, module):
            if inside and name.startswith(("hotline.sim", "hotline.ear", "hotline.tts_standin")):
                problems.append(f"{module}:{line} imports {name}")
            if not inside and name.startswith("hotline.server.console"):
                if not name.startswith(allowed.get(module, "\0")):
                    problems.append(f"{module}:{line} imports {name}")
    assert problems == [], "\n".join(problems)


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph(_modules()))
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "hotline"
    pkg.mkdir()
    (pkg / "hub.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hotline.session import S\n"
    )
    (pkg / "session.py").write_text("from . import hub\n")
    modules = {"hotline.hub": pkg / "hub.py", "hotline.session": pkg / "session.py"}
    assert _cycles(_graph(modules)) == [["hotline.hub", "hotline.session"]]


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
        "import hotline.ear.server",
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
