"""The Railway build's environment gives the settings Railway's edge needs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from starlette.requests import HTTPConnection

from hotline.server.security import client_address, parse_trusted_proxies
from hotline.server.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NIXPACKS = Path(__file__).resolve().parent.parent.parent / "nixpacks.toml"
pytestmark = pytest.mark.skipif(not NIXPACKS.exists(), reason="deploy files are not in the wheel")


def test_railway_variables_key_the_limiter_by_the_client_behind_its_edge() -> None:
    variables = tomllib.loads(NIXPACKS.read_text())["variables"]
    settings = Settings.from_env(dict(variables, RAILWAY_PUBLIC_DOMAIN="x.up.railway.app"))
    assert settings.trusted_proxies == ("*",)
    trusted = parse_trusted_proxies(",".join(settings.trusted_proxies))
    # What Railway's edge forwards (client first, then its own rotating hop), from an
    # internal peer address.
    headers = [(b"x-forwarded-for", b"203.0.113.7, 152.233.33.162")]
    conn = HTTPConnection({"type": "http", "client": ("100.64.0.9", 1), "headers": headers})
    assert client_address(conn, trusted) == "203.0.113.7"
