/*
 * MPEG audio layer III frame sync: splits a byte stream into whole, validated layer III frames
 * before libmpg123 sees it. See hotline_kernels.h for the contract.
 *
 * Why not leave resync to libmpg123: once its parser has locked onto a junk header (layer I/II,
 * free format, another rate), it can reject the valid frames that follow as incompatible and
 * skip a whole utterance; and it cannot tell us how much it skipped. Here junk never reaches
 * the decoder, and what is dropped here is counted: junk_bytes, and meta_bytes for ID3v2 tags.
 * (What libmpg123 itself drops after a stall, see _codec.pyx, is counted only as a resync.)
 *
 * ID3v2: "ID3" plus a plausible syncsafe size is easily produced by junk, and believing it
 * skips that many bytes of whatever follows, valid speech included. So a tag is believed
 * without question only where a stream starts (nothing consumed since init/reset); anywhere
 * else only when a confirmed frame follows it (a header whose successor confirms it, or a
 * complete last frame at the end), which needs the tag and that frame in the buffer at once:
 * a larger tag there is scanned as junk (its bytes counted as junk, the audio after it kept).
 */
#include <string.h>

#include "hotline_kernels.h"

/* Layer III bitrates in kb/s by MPEG-1 / MPEG-2 (and 2.5) and index 1..14 (0 = free format and
 * 15 = bad are not accepted). */
static const uint16_t BITRATE[2][15] = {
    {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
    {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
};
static const uint32_t RATE[3] = {44100, 48000, 32000}; /* MPEG-1; /2 MPEG-2, /4 MPEG-2.5 */
/* Longest layer III frame: 144 * 320000 / 32000 + 1 (MPEG-1), 72 * 160000 / 8000 + 1 (2.5). */
#define MAX_FRAME 1441u

/* Frame length in bytes of a valid layer III header, or 0 when p does not start one. */
static uint32_t frame_len(const uint8_t *p)
{
    if (p[0] != 0xFF || (p[1] & 0xE0) != 0xE0)
        return 0;
    unsigned version = (p[1] >> 3) & 3; /* 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1 */
    unsigned layer = (p[1] >> 1) & 3;   /* 1: layer III */
    unsigned br = p[2] >> 4, sr = (p[2] >> 2) & 3, pad = (p[2] >> 1) & 1;
    if (version == 1 || layer != 1 || br == 0 || br == 15 || sr == 3 || (p[3] & 3) == 2)
        return 0; /* reserved version, not layer III, free format, bad bitrate/rate/emphasis */
    uint32_t rate = RATE[sr] >> (version == 3 ? 0 : version == 2 ? 1 : 2);
    uint32_t kbps = BITRATE[version == 3 ? 0 : 1][br];
    uint32_t slots = version == 3 ? 144u : 72u;
    return slots * kbps * 1000u / rate + pad;
}

/* Same stream: version, CRC flag, sample rate, mono-or-not and emphasis agree (the bitrate
 * may change: VBR; so may the stereo mode between stereo and joint stereo). */
static int compatible(const uint8_t *a, const uint8_t *b)
{
    return ((a[1] ^ b[1]) & 0x19) == 0 && ((a[2] ^ b[2]) & 0x0C) == 0 &&
           (((a[3] >> 6) == 3) == ((b[3] >> 6) == 3)) && ((a[3] ^ b[3]) & 0x03) == 0;
}

/* Length of an ID3v2 tag starting at p (header, body, footer), or 0 if p does not start one.
 * Needs 10 bytes. */
static uint32_t id3_len(const uint8_t *p)
{
    if (p[0] != 'I' || p[1] != 'D' || p[2] != '3' || p[3] == 0xFF || p[4] == 0xFF)
        return 0;
    /* Only ID3v2.2, 2.3 and 2.4 exist, and none defines the four low flag bits: anything else
     * is junk that happens to start with "ID3" (e.g. '{"' after it, which would otherwise read
     * as a 200 MB tag and swallow the stream that follows). */
    if (p[3] < 2 || p[3] > 4 || (p[5] & 0x0F))
        return 0;
    if ((p[6] | p[7] | p[8] | p[9]) & 0x80)
        return 0;
    uint32_t size = ((uint32_t)p[6] << 21) | ((uint32_t)p[7] << 14) | ((uint32_t)p[8] << 7) | p[9];
    return 10u + size + ((p[5] & 0x10) ? 10u : 0u);
}

int hl_mp3sync_init(hl_mp3sync *s, uint8_t *buf, size_t cap)
{
    /* below the minimum a pending frame + 4 bytes may not fit: push() would take nothing and
     * pull() would wait for ever */
    if (!s || !buf || cap < HL_MP3SYNC_MIN_CAP)
        return HL_EINVAL;
    memset(s, 0, sizeof *s);
    s->buf = buf;
    s->cap = cap;
    s->fresh = 1;
    return HL_OK;
}

void hl_mp3sync_reset(hl_mp3sync *s)
{
    s->len = s->pos = 0;
    s->in_sync = 0;
    s->lost = 0;
    s->skip = 0;
    s->frames = 0;
    s->fresh = 1;
}

size_t hl_mp3sync_push(hl_mp3sync *s, const uint8_t *in, size_t n)
{
    if (s->pos) { /* drop what is resolved */
        memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->pos = 0;
    }
    size_t take = s->cap - s->len;
    if (take > n)
        take = n;
    if (take)
        memcpy(s->buf + s->len, in, take);
    s->len += take;
    return take;
}

static void junk(hl_mp3sync *s, size_t n)
{
    if (n)
        s->fresh = 0;
    s->pos += n;
    s->junk_bytes += n;
}

/* The tag of length tl (> 0) at c, with left bytes from c buffered, away from the start of a
 * stream: 1 when a confirmed frame follows it, 0 when none does (or the check cannot fit in
 * the buffer: then it is junk), -1 when more input is needed to tell. */
static int tag_confirmed(const hl_mp3sync *s, const uint8_t *c, size_t left, uint32_t tl,
                         int final)
{
    if ((size_t)tl + MAX_FRAME + 4u > s->cap)
        return 0;
    if (left < (size_t)tl + 4u)
        return final ? 0 : -1;
    const uint8_t *h = c + tl;
    uint32_t fl = frame_len(h);
    if (!fl)
        return 0;
    if (left >= (size_t)tl + fl + 4u)
        return frame_len(h + fl) && compatible(h, h + fl);
    if (!final)
        return -1;
    return left >= (size_t)tl + fl; /* the end of the stream: a complete last frame */
}

/* (Re)gain sync at buffer index i: what lies before it is junk. Losing sync and finding the
 * next stream right there (a format change) is no resync; skipping junk to get there is. */
static void sync_at(hl_mp3sync *s, size_t i)
{
    junk(s, i - s->pos);
    if (s->lost && s->junk_bytes != s->lost_at)
        s->resyncs++;
    s->lost = 0;
    s->in_sync = 1;
    memcpy(s->last, s->buf + i, 4);
}

size_t hl_mp3sync_pull(hl_mp3sync *s, int final, size_t *off)
{
    for (;;) {
        if (s->skip) { /* inside an ID3v2 tag */
            size_t k = s->len - s->pos < s->skip ? s->len - s->pos : s->skip;
            s->pos += k;
            s->skip -= k;
            s->meta_bytes += k;
            if (k)
                s->fresh = 0;
            if (s->skip)
                return 0;
        }
        size_t avail = s->len - s->pos;
        const uint8_t *p = s->buf + s->pos;
        if (s->in_sync) {
            /* the next frame must start here and belong to the same stream; a header of
             * another stream (a new format, or junk that looks like one) must be confirmed
             * by its successor like after junk */
            uint32_t fl = avail >= 4 && compatible(s->last, p) ? frame_len(p) : 0;
            if (fl && fl <= avail) {
                /* a run of whole frames, each starting where the previous one ended */
                size_t q = s->pos;
                while (s->len - q >= 4) {
                    const uint8_t *h = s->buf + q;
                    uint32_t l = compatible(s->last, h) ? frame_len(h) : 0;
                    if (!l || l > s->len - q)
                        break;
                    memcpy(s->last, h, 4);
                    q += l;
                    s->frames++;
                }
                *off = s->pos;
                s->fresh = 0;
                size_t run = q - s->pos;
                s->pos = q;
                return run;
            }
            if (avail < 4 || fl) { /* the next frame is not complete yet */
                if (!final)
                    return 0;
                junk(s, avail); /* a truncated last frame */
                return 0;
            }
            s->in_sync = 0; /* no frame of this stream where one should start */
            s->lost = 1;
            s->lost_at = s->junk_bytes;
        }
        /* out of sync: find a header whose successor confirms it (or a tag) */
        size_t i = s->pos;
        for (;; i++) {
            size_t left = s->len - i;
            const uint8_t *c = s->buf + i;
            if (left >= 3 && c[0] == 'I' && c[1] == 'D' && c[2] == '3') {
                if (left < 10 && !final) {
                    junk(s, i - s->pos);
                    return 0; /* wait for the whole tag header */
                }
                uint32_t tl = left >= 10 ? id3_len(c) : 0;
                if (tl && !s->fresh) {
                    int ok = tag_confirmed(s, c, left, tl, final);
                    if (ok < 0) {
                        junk(s, i - s->pos);
                        return 0; /* wait for the tag and the frame after it */
                    }
                    if (!ok)
                        tl = 0; /* "ID3" in junk: scan on */
                }
                if (tl) {
                    junk(s, i - s->pos);
                    s->pos = i; /* junk() advanced pos to i */
                    s->skip = tl;
                    break; /* back to the top: skip the tag */
                }
            }
            if (left < 4) {
                if (final) {
                    junk(s, s->len - s->pos);
                    return 0;
                }
                junk(s, i - s->pos); /* keep what could still start a header */
                return 0;
            }
            uint32_t fl = frame_len(c);
            if (!fl)
                continue;
            if (left >= (size_t)fl + 4) {
                if (frame_len(c + fl) && compatible(c, c + fl)) {
                    sync_at(s, i);
                    break;
                }
                continue;
            }
            if (final) { /* cannot confirm: accept a complete last frame */
                if (left >= fl) {
                    sync_at(s, i);
                    break;
                }
                continue;
            }
            junk(s, i - s->pos); /* wait for the successor's header */
            return 0;
        }
    }
}
