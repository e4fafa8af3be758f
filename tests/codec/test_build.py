"""How the extension was built, checked on the built module itself, and its stubs.

Bit-exact output (the transcoder tests compare bytes) depends on compile flags: no FMA
contraction, no fast-math. setup.py records the flags it passed into the binary
(``build_info()``), so this checks the build that is actually imported, not a file that may
not have produced it. The stubs (hotline/codec/_codec.pyi) are checked against the module by
scripts/stubtest.sh, in ``make lint`` and on every wheel CI builds.
"""

from __future__ import annotations

from hotline.codec import build_info


def test_built_without_fp_contraction_or_fast_math() -> None:
    args = build_info()["compile_args"]
    assert isinstance(args, list) and "-std=c11" in args
    contract = [a for a in args if a.startswith("-ffp-contract=")]
    assert contract and contract[-1] == "-ffp-contract=off"  # the last one is the one in force
    unsafe = ("-ffast-math", "-Ofast", "-funsafe-math-optimizations", "-fassociative-math")
    assert not [a for a in args if a in unsafe]
