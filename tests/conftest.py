"""Suite-wide pytest hooks: the header names what the codec was built against, and a missing
compiled codec stops the run (no test may pass on a fallback). Tests run in a scratch working
directory: what a server keeps there by default (its call records' SQLite file, their spool) is
never the repository's, nor shared between test runs."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _scratch_working_directory() -> Iterator[None]:
    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="hotline-tests-cwd-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(home)


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
