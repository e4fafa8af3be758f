/*
 * The one float -> int16 conversion of the C kernels (private to csrc/).
 *
 * NaN -> 0, saturated to [-32768, 32767], rounded to nearest, ties to even. The rounding adds and
 * subtracts 1.5 * 2^23: for |v| <= 2^22 the sum lies in [2^23, 2^24), where a float's spacing
 * is 1, so the sum is v rounded to an integer in the default rounding mode (what lrintf() does,
 * without a library call, and vectorisable). This relies on IEEE single arithmetic as written:
 * no -ffast-math / -fassociative-math (which would fold it to v), and no FMA contraction of a
 * preceding product into the addition (setup.py builds with -ffp-contract=off).
 */
#ifndef HOTLINE_ROUND_H
#define HOTLINE_ROUND_H

#include <stdint.h>

static inline int16_t hl_round_s16(float v)
{
    /* comparisons rather than fminf/fmaxf: those are library calls unless NaN can be ignored */
    v = v == v ? v : 0.f;
    v = v > 32767.f ? 32767.f : v;
    v = v < -32768.f ? -32768.f : v;
    v = (v + 12582912.0f) - 12582912.0f;
    return (int16_t)(int32_t)v;
}

#endif /* HOTLINE_ROUND_H */
