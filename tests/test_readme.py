"""The README is where people read: it must name every setting and endpoint the code has."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="README is not shipped in the wheel")


def test_two_commands_are_at_the_top() -> None:
    head = README.read_text().split("## The audio path")[0]
    assert "make demo" in head and "make test" in head


def test_every_environment_variable_is_documented() -> None:
    from hotline.server.settings import ENV_VARS

    text = README.read_text()
    missing = [name for name in ENV_VARS if f"`{name}`" not in text]
    assert not missing, f"README's configuration table lacks {missing}"


def test_every_route_is_documented() -> None:
    from starlette.routing import BaseRoute

    from hotline.server.app import create_app
    from hotline.server.settings import Settings

    app = create_app(Settings(twilio_auth_token="t", public_url="https://example.test"))
    text = README.read_text().replace("{CallSid}", "{call_sid}")
    routes: list[BaseRoute] = list(app.router.routes)
    paths = {getattr(r, "path", "") for r in routes}
    paths -= {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", ""}
    missing = sorted(p for p in paths if f"{p}`" not in text)
    assert not missing, f"README's endpoint table lacks {missing}"
