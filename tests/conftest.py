"""Suite-wide pytest hooks: the header names what the codec was built against."""

from __future__ import annotations

import platform


def pytest_report_header() -> list[str]:
    lines = [f"python {platform.python_version()} ({platform.machine()})"]
    try:
        import hotline
        import hotline.codec as codec

        lines.append(
            f"hotline {hotline.__version__} from {hotline.__file__}; "
            f"libmpg123 {codec.mpg123_version()}"
        )
    except ImportError as exc:  # the suite will fail loudly on its own; say why up front
        lines.append(f"hotline.codec not importable: {exc}")
    try:
        import Cython

        lines.append(f"Cython {Cython.__version__}")
    except ImportError:
        lines.append("Cython not installed (testing an installed wheel)")
    return lines
