"""railway.json drains deploys: Railway waits long enough for hotline's own drain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotline.server.settings import Settings

RAILWAY = Path(__file__).resolve().parent.parent.parent / "railway.json"
pytestmark = pytest.mark.skipif(not RAILWAY.exists(), reason="deploy files are not in the wheel")


def test_railway_waits_past_hotlines_drain_timeout() -> None:
    deploy = json.loads(RAILWAY.read_text())["deploy"]
    # JSON numbers: Railway's parser refuses strings (railwayapp/docs#1243).
    assert isinstance(deploy["drainingSeconds"], int)
    assert isinstance(deploy["overlapSeconds"], int)
    drain = Settings.from_env({}).drain_timeout
    assert deploy["drainingSeconds"] >= drain + 10  # SIGKILL only after hotline's drain
    assert deploy["healthcheckPath"] == "/health"
