"""Print a pip constraints file pinning every runtime dependency to its declared minimum.

pip has no "lowest" resolution, so CI installs ``pip install -c <this output> .`` to test the
floors ``pyproject.toml`` declares: each ``name>=X`` runtime dependency becomes ``name==X``
(extras dropped; a dependency whose environment marker does not apply to the running Python
is left out). A runtime dependency without a ``>=`` floor is an error: every one must declare
a minimum that works.

Usage: ``python scripts/floors.py [pyproject.toml] > floors.txt``
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_REQ = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*(?:;(?P<marker>.*))?$"
)


def _marker_applies(marker: str | None) -> bool:
    if not marker or not marker.strip():
        return True
    try:
        from packaging.markers import Marker
    except ModuleNotFoundError:  # pip vendors packaging
        from pip._vendor.packaging.markers import Marker
    return bool(Marker(marker.strip()).evaluate())


def floors(pyproject: Path) -> list[str]:
    """``name==floor`` for each runtime dependency that applies here.

    Raises:
        SystemExit: a runtime dependency declares no ``>=`` minimum.
    """
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = []
    for dep in deps:
        m = _REQ.match(dep)
        if m is None:
            raise SystemExit(f"floors: cannot parse dependency {dep!r}")
        if not _marker_applies(m.group("marker")):
            continue
        floor = next(
            (
                p.strip()[2:].strip()
                for p in m.group("spec").split(",")
                if p.strip().startswith(">=")
            ),
            None,
        )
        if not floor:
            raise SystemExit(f"floors: runtime dependency {dep!r} declares no >= minimum")
        out.append(f"{m.group('name')}=={floor}")
    return out


def main(argv: list[str]) -> int:
    path = (
        Path(argv[1])
        if len(argv) > 1
        else Path(__file__).resolve().parent.parent / "pyproject.toml"
    )
    print("\n".join(floors(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
