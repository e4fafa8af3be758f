"""The README is where people read: it must name every setting and endpoint the code has, and
nothing the code no longer has."""

from __future__ import annotations

import enum
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="README is not shipped in the wheel")

#: The heading of the second variable table (under "## Configuration").
STANDIN_HEADING = "### Stand-in and test knobs"
_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", re.MULTILINE)


def test_two_commands_are_at_the_top() -> None:
    head = README.read_text().split("## The audio path")[0]
    assert "make demo" in head and "make test" in head


def _variable_tables() -> dict[str, dict[str, str]]:
    """The README's two variable tables: ``user`` and ``standin``, variable -> default cell."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    user, standin = section.split(STANDIN_HEADING, 1)
    standin = standin.split("\n### ", 1)[0]
    tables = {}
    for name, text in (("user", user), ("standin", standin)):
        rows = _ROW.findall(text)
        assert len(rows) == len(dict(rows)), f"a variable is listed twice in the {name} table"
        tables[name] = dict(rows)
    return tables


def test_every_environment_variable_is_in_its_table_and_no_other() -> None:
    from hotline.server.settings import ENV_VARS

    tables = _variable_tables()
    for table, documented in tables.items():
        declared = {name for name, row in ENV_VARS.items() if row.table.value == table}
        lacking, extra = sorted(declared - set(documented)), sorted(set(documented) - declared)
        assert not lacking, f"README's {table} table lacks {lacking}"
        assert not extra, f"README's {table} table lists {extra}, not declared there"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_documented_defaults_are_the_declared_ones() -> None:
    from hotline.server.env import Var
    from hotline.server.settings import ListenSettings, RecordsSettings, Settings

    cells = {name: cell for table in _variable_tables().values() for name, cell in table.items()}
    checked = 0
    for settings_type in (Settings, ListenSettings, RecordsSettings):
        for f in fields(settings_type):
            rows = [v for v in f.metadata.values() if isinstance(v, Var)]
            if not rows or f.default is MISSING or f.default in (None, ()):
                continue  # no default of its own (unset, derived, or from another variable)
            row = rows[0]
            assert f"`{_shown(f.default)}`" in cells[row.env], (row.env, cells[row.env])
            checked += 1
    assert checked >= 20


def _paths(routes: list[Any]) -> set[str]:
    """Every route's path; FastAPI >= 0.16x keeps an included router whole (``original_router``)."""
    out: set[str] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        out |= _paths(inner.routes) if inner is not None else {getattr(route, "path", "")}
    return out


def test_every_route_is_documented() -> None:
    import hotline.server
    from hotline.server.app import create_app
    from hotline.server.settings import Settings

    app = create_app(Settings(twilio_auth_token="t", public_url="https://example.test"))
    paths = _paths(list(app.router.routes))
    paths -= {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", ""}
    assert {"/voice", "/media-stream", "/calls/{call_sid}/say"} <= paths  # the walk found them
    text = README.read_text().replace("{CallSid}", "{call_sid}")
    missing = sorted(p for p in paths if f"{p}`" not in text)
    assert not missing, f"README's endpoint table lacks {missing}"
    listed = (hotline.server.__doc__ or "").replace("{CallSid}", "{call_sid}")
    missing = sorted(p for p in paths if not re.search(rf"[ ,]{re.escape(p)}(\s|,)", listed))
    assert not missing, f"hotline/server/__init__.py's route list lacks {missing}"
