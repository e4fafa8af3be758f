"""Build the one compiled module, ``hotline.codec._codec``.

Static metadata lives in pyproject.toml; this file only declares the extension,
because it needs pkg-config to find libmpg123.

Environment switches:
  HOTLINE_MPG123_CFLAGS / HOTLINE_MPG123_LIBS  override pkg-config entirely
  HOTLINE_DEBUG=1      -O0 -g, Cython linetrace and bounds checks
  HOTLINE_SANITIZE=1   AddressSanitizer + UBSan (run with LD_PRELOAD=$(gcc -print-file-name=libasan.so))
  HOTLINE_ANNOTATE=1   write Cython's annotated HTML next to the .pyx
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup

INSTALL_HINT = (
    "hotline needs libmpg123 to build: install it with "
    "`apt-get install libmpg123-dev pkg-config` (Debian/Ubuntu) or the nix package `mpg123`, "
    "or set HOTLINE_MPG123_CFLAGS and HOTLINE_MPG123_LIBS."
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def _mpg123_flags() -> tuple[list[str], list[str]]:
    cflags = os.environ.get("HOTLINE_MPG123_CFLAGS")
    libs = os.environ.get("HOTLINE_MPG123_LIBS")
    if cflags is not None or libs is not None:
        return shlex.split(cflags or ""), shlex.split(libs or "-lmpg123")
    if shutil.which("pkg-config") is None:
        sys.exit("error: pkg-config not found. " + INSTALL_HINT)
    try:
        cflags = subprocess.check_output(
            ["pkg-config", "--cflags", "libmpg123"], text=True, stderr=subprocess.DEVNULL
        )
        libs = subprocess.check_output(
            ["pkg-config", "--libs", "libmpg123"], text=True, stderr=subprocess.DEVNULL
        )
    except subprocess.CalledProcessError:
        sys.exit("error: pkg-config cannot find libmpg123. " + INSTALL_HINT)
    return shlex.split(cflags), shlex.split(libs)


def _mpg123_version() -> str:
    """Build-time libmpg123 version for mpg123_version() when the library cannot say (< 1.32)."""
    v = os.environ.get("HOTLINE_MPG123_VERSION")
    if v is None and shutil.which("pkg-config") is not None:
        try:
            v = subprocess.check_output(
                ["pkg-config", "--modversion", "libmpg123"], text=True, stderr=subprocess.DEVNULL
            ).strip()
        except subprocess.CalledProcessError:
            v = None
    return "".join(c for c in (v or "") if c.isalnum() or c in ".-+")


def _extensions() -> list[Extension]:
    from Cython.Build import cythonize

    cflags, libs = _mpg123_flags()
    include_dirs = ["csrc"] + [f[2:] for f in cflags if f.startswith("-I")]
    extra_compile = [f for f in cflags if not f.startswith("-I")]
    library_dirs = [f[2:] for f in libs if f.startswith("-L")]
    libraries = [f[2:] for f in libs if f.startswith("-l")]
    extra_link = [f for f in libs if not f.startswith(("-L", "-l"))]

    debug = _flag("HOTLINE_DEBUG")
    macros: list[tuple[str, str | None]] = [
        ("NPY_NO_DEPRECATED_API", None),
        ("HOTLINE_MPG123_PKGVERSION", f'"{_mpg123_version()}"'),
    ]
    directives = {
        "language_level": 3,
        "embedsignature": True,
        "binding": False,
        "cdivision": True,
        "autotestdict": False,  # no doctests in the module: no __test__ dict (stubtest)
    }
    if debug:
        extra_compile += ["-O0", "-g3"]
        macros.append(("CYTHON_TRACE_NOGIL", "1"))
        directives.update(linetrace=True, boundscheck=True, wraparound=True)
    else:
        extra_compile += ["-O3", "-fno-math-errno", "-fno-trapping-math"]
    if _flag("HOTLINE_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
        extra_compile += san
        extra_link += san
    # Bit-exactness: the output bytes are pinned by tests, so the float arithmetic must be the
    # one written in csrc/: no FMA contraction (GCC's default outside ISO C mode, and a target
    # with FMA would fuse the resampler's multiply-adds and the scale before hl_round_s16's
    # rounding), and never -ffast-math. Stated here rather than left to -std=c11's defaults.
    extra_compile += ["-std=c11", "-ffp-contract=off", "-Wall", "-Wno-unused-function"]
    # What this build was compiled with, for hotline.codec.build_info() (and its test).
    recorded = " ".join(extra_compile).replace("\\", "\\\\").replace('"', '\\"')
    macros.append(("HOTLINE_BUILD_CFLAGS", f'"{recorded}"'))

    ext = Extension(
        "hotline.codec._codec",
        sources=[
            "hotline/codec/_codec.pyx",
            "csrc/ulaw.c",
            "csrc/resample.c",
            "csrc/mp3sync.c",
            "csrc/twilio_media.c",
            "csrc/ws_frames.c",
        ],
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        libraries=libraries,
        define_macros=macros,
        extra_compile_args=extra_compile,
        extra_link_args=extra_link,
        depends=[
            "csrc/hotline_kernels.h",
            "csrc/hl_round.h",
            "hotline/codec/_mpg123.pxd",
            "hotline/codec/_kernels.pxd",
        ],
    )
    return cythonize(
        [ext],
        compiler_directives=directives,
        annotate=_flag("HOTLINE_ANNOTATE"),
        build_dir=None,
    )


setup(ext_modules=_extensions())
