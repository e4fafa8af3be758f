"""railway.json names the build Railway uses and drains deploys long enough for hotline's own drain."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hotline.server.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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


BUILDERS = {"DOCKERFILE", "RAILPACK", "NIXPACKS"}


def test_railway_json_names_its_builder_and_the_file_exists() -> None:
    build = json.loads(RAILWAY.read_text())["build"]
    assert build["builder"] in BUILDERS, build
    root = RAILWAY.parent
    if (root / "Dockerfile").exists():
        # Railway builds a root Dockerfile whatever the builder setting says: naming any other
        # builder would be a setting Railway silently overrides.
        assert build["builder"] == "DOCKERFILE"
    if build["builder"] == "DOCKERFILE":
        assert (root / build["dockerfilePath"]).is_file(), build["dockerfilePath"]
    if build["builder"] == "NIXPACKS":
        assert (root / "nixpacks.toml").is_file()


def _final_stage(dockerfile: Path) -> list[str]:
    """The instructions of the last stage (continuation lines joined)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def test_the_named_dockerfile_runs_hotline_as_pid_1_unprivileged_with_railways_proxy_setting() -> (
    None
):
    build = json.loads(RAILWAY.read_text())["build"]
    stage = _final_stage(RAILWAY.parent / build["dockerfilePath"])
    users = [ln.split(None, 1)[1] for ln in stage if ln.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    cmd = json.loads(next(ln for ln in reversed(stage) if ln.upper().startswith("CMD "))[4:])
    assert "exec hotline serve" in cmd[-1]  # PID 1 gets SIGTERM and drains
    # The Railway build trusts Railway's edge as nixpacks.toml's variables do; only there.
    assert "ARG RAILWAY_ENVIRONMENT_ID" in stage
    env = next(ln for ln in stage if "HOTLINE_TRUSTED_PROXIES=" in ln)
    nixpacks = tomllib.loads((RAILWAY.parent / "nixpacks.toml").read_text())["variables"]
    assert env == (
        "ENV HOTLINE_TRUSTED_PROXIES=${RAILWAY_ENVIRONMENT_ID:+"
        + nixpacks["HOTLINE_TRUSTED_PROXIES"]
        + "}"
    )
