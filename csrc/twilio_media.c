/* Twilio Media Streams inbound fast path: recognise one `media` message and find its fields
 * without building Python objects, so the shell pays one compiled call per 20 ms frame.
 *
 * hl_twilio_media_scan() accepts only what it can prove json.loads() + the full parser
 * (hotline/core/twilio.py) would accept with the same result, and returns 0 ("defer") for
 * everything else, including every malformed message: errors always come from the full
 * parser. Accepted: one JSON object, JSON whitespace anywhere between tokens, keys in any order
 * but each at most once and no others:
 *
 *   top level:  "event":"media", "sequenceNumber", "media":{...}, "streamSid"
 *   media:      "track", "chunk", "timestamp", "payload"
 *
 * Strings must be printable ASCII without '"' or '\\' (no escapes). Numbers are a string of
 * 1-19 ASCII digits or a JSON integer literal of 1-19 digits without leading zeros. The payload
 * must be canonical strict base64 (length % 4 == 0, 0-2 '=' at the end only).
 */
#include "hotline_kernels.h"

#include <string.h>

enum { K_EVENT = 1, K_SEQ = 2, K_MEDIA = 4, K_SID = 8 };
enum { M_TRACK = 1, M_CHUNK = 2, M_TS = 4, M_PAYLOAD = 8 };

/* base64 alphabet value + 1; 0 = not in the alphabet */
static const unsigned char B64[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static inline int b64val(unsigned char c)
{
    return (int)B64[c] - 1;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A plain string at s[i] == '"': sets its body span, returns the index after the closing quote,
 * or 0 if it is not a plain string (escape, control or non-ASCII byte, unterminated). */
static size_t plain_string(const char *s, size_t i, size_t n, size_t *off, size_t *len)
{
    if (i >= n || s[i] != '"')
        return 0;
    size_t j = i + 1;
    while (j < n) {
        unsigned char c = (unsigned char)s[j];
        if (c == '"') {
            *off = i + 1;
            *len = j - i - 1;
            return j + 1;
        }
        if (c < 0x20 || c > 0x7e || c == '\\')
            return 0;
        j++;
    }
    return 0;
}

/* A number field: a string of 1-19 digits, or an integer literal of 1-19 digits without leading
 * zeros. Returns the index after it, or 0. */
static size_t number(const char *s, size_t i, size_t n, uint64_t *out)
{
    size_t off, len, end;
    if (i < n && s[i] == '"') {
        end = plain_string(s, i, n, &off, &len);
        if (!end)
            return 0;
    } else {
        off = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        len = i - off;
        end = i;
        if (len > 1 && s[off] == '0')
            return 0;
    }
    if (len == 0 || len > 19)
        return 0;
    uint64_t v = 0;
    for (size_t k = 0; k < len; k++) {
        char c = s[off + k];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10u + (uint64_t)(c - '0');
    }
    *out = v;
    return end;
}

static int key_is(const char *s, size_t off, size_t len, const char *name)
{
    size_t k = strlen(name);
    return len == k && memcmp(s + off, name, k) == 0;
}

/* Canonical strict base64 -> decoded length, or (size_t)-1. */
static size_t b64_check(const char *s, size_t n)
{
    if (n % 4)
        return (size_t)-1;
    if (n == 0)
        return 0;
    size_t pad = 0;
    if (s[n - 1] == '=') {
        pad = 1;
        if (s[n - 2] == '=')
            pad = 2;
    }
    for (size_t i = 0; i < n - pad; i++)
        if (b64val((unsigned char)s[i]) < 0)
            return (size_t)-1;
    return n / 4 * 3 - pad;
}

int hl_twilio_media_scan(const char *s, size_t n, hl_twilio_media *m)
{
    unsigned seen = 0, mseen = 0;
    size_t off, len, i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{')
        return 0;
    i = skip_ws(s, i + 1, n);
    for (;;) {
        size_t e = plain_string(s, i, n, &off, &len);
        if (!e)
            return 0;
        i = skip_ws(s, e, n);
        if (i >= n || s[i] != ':')
            return 0;
        i = skip_ws(s, i + 1, n);
        unsigned bit;
        if (key_is(s, off, len, "event")) {
            bit = K_EVENT;
            size_t vo, vl;
            e = plain_string(s, i, n, &vo, &vl);
            if (!e || !key_is(s, vo, vl, "media"))
                return 0;
        } else if (key_is(s, off, len, "sequenceNumber")) {
            bit = K_SEQ;
            e = number(s, i, n, &m->sequence_number);
        } else if (key_is(s, off, len, "streamSid")) {
            bit = K_SID;
            e = plain_string(s, i, n, &m->sid_off, &m->sid_len);
        } else if (key_is(s, off, len, "media")) {
            bit = K_MEDIA;
            if (i >= n || s[i] != '{')
                return 0;
            i = skip_ws(s, i + 1, n);
            for (;;) {
                e = plain_string(s, i, n, &off, &len);
                if (!e)
                    return 0;
                i = skip_ws(s, e, n);
                if (i >= n || s[i] != ':')
                    return 0;
                i = skip_ws(s, i + 1, n);
                unsigned mbit;
                if (key_is(s, off, len, "track")) {
                    mbit = M_TRACK;
                    e = plain_string(s, i, n, &m->track_off, &m->track_len);
                } else if (key_is(s, off, len, "chunk")) {
                    mbit = M_CHUNK;
                    e = number(s, i, n, &m->chunk);
                } else if (key_is(s, off, len, "timestamp")) {
                    mbit = M_TS;
                    e = number(s, i, n, &m->timestamp);
                } else if (key_is(s, off, len, "payload")) {
                    mbit = M_PAYLOAD;
                    e = plain_string(s, i, n, &m->payload_off, &m->payload_len);
                } else {
                    return 0;
                }
                if (!e || (mseen & mbit))
                    return 0;
                mseen |= mbit;
                i = skip_ws(s, e, n);
                if (i < n && s[i] == ',') {
                    i = skip_ws(s, i + 1, n);
                    continue;
                }
                if (i < n && s[i] == '}') {
                    e = i + 1;
                    break;
                }
                return 0;
            }
        } else {
            return 0;
        }
        if (!e || (seen & bit))
            return 0;
        seen |= bit;
        i = skip_ws(s, e, n);
        if (i < n && s[i] == ',') {
            i = skip_ws(s, i + 1, n);
            continue;
        }
        if (i < n && s[i] == '}') {
            i = skip_ws(s, i + 1, n);
            break;
        }
        return 0;
    }
    if (i != n || seen != (K_EVENT | K_SEQ | K_MEDIA | K_SID) ||
        mseen != (M_TRACK | M_CHUNK | M_TS | M_PAYLOAD))
        return 0;
    size_t dn = b64_check(s + m->payload_off, m->payload_len);
    if (dn == (size_t)-1)
        return 0;
    m->decoded_len = dn;
    return 1;
}

void hl_b64_decode_checked(const char *s, size_t n, uint8_t *out)
{
    /* s is canonical base64 (b64_check passed): trailing bits of the last group are dropped,
     * as binascii.a2b_base64 does. */
    size_t o = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
        out[o++] = (uint8_t)(v >> 16);
        if (s[i + 2] == '=')
            break;
        v |= (uint32_t)b64val((unsigned char)s[i + 2]) << 6;
        out[o++] = (uint8_t)(v >> 8);
        if (s[i + 3] == '=')
            break;
        v |= (uint32_t)b64val((unsigned char)s[i + 3]);
        out[o++] = (uint8_t)v;
    }
}
