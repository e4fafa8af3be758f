"""Suite-wide pytest hooks: the header names what the codec was built against, and a missing
compiled codec stops the run (no test may pass on a fallback)."""

from __future__ import annotations

import platform

import pytest


def pytest_configure(config: pytest.Config) -> None:
    try:
        import hotline.codec  # noqa: F401
    except ImportError as exc:
        raise pytest.UsageError(
            f"hotline.codec is not importable ({exc}): build it first (make build)"
        ) from exc


def pytest_report_header() -> list[str]:
    lines = [f"python {platform.python_version()} ({platform.machine()})"]
    try:
        import hotline
        import hotline.codec as codec

        lines.append(
            f"hotline {hotline.__version__} from {hotline.__file__}; "
            f"libmpg123 {codec.mpg123_version()}"
        )
    except ImportError as exc:  # pytest_configure has already stopped the run
        lines.append(f"hotline.codec not importable: {exc}")
    try:
        import Cython

        lines.append(f"Cython {Cython.__version__}")
    except ImportError:
        lines.append("Cython not installed (testing an installed wheel)")
    return lines
