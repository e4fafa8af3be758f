/* WebSocket client-to-server frames (RFC 6455 section 5.2), the common case only: the media
 * stream's direct path (hotline/server/media_ws.py) hands every frame this accepts straight to
 * the call, and everything else to websockets' own parser, which is where every close code
 * comes from.
 *
 * hl_ws_frame_scan() looks at the frame that starts at buf[0] and returns
 *    1  a complete frame the fast path takes: FIN set, RSV1-3 clear, opcode text (1) or
 *       binary (2), masked (a client must mask), payload length <= max_payload; *f is filled;
 *    0  not enough bytes yet to tell, or to hold the whole frame: wait for more;
 *   -1  any other frame (control, continuation, a first fragment, RSV bits, unmasked, a
 *       64-bit length with the top bit set, over max_payload): not ours.
 * The length may be encoded in more bytes than it needs; like websockets, we accept that.
 */
#include "hotline_kernels.h"

#include <string.h>

int hl_ws_frame_scan(const uint8_t *buf, size_t n, uint64_t max_payload, hl_ws_frame *f)
{
    if (n < 2)
        return 0;
    uint8_t b0 = buf[0], b1 = buf[1];
    unsigned opcode = b0 & 0x0F;
    if ((b0 & 0xF0) != 0x80 || (opcode != 1 && opcode != 2) || !(b1 & 0x80))
        return -1;
    uint64_t len = b1 & 0x7F;
    size_t header = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((uint64_t)buf[2] << 8) | buf[3];
        header = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        if (buf[2] & 0x80)
            return -1;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | buf[i];
        header = 10;
    }
    if (len > max_payload)
        return -1;
    if ((uint64_t)(n - header) < 4 + len)
        return 0;
    f->opcode = (int)opcode;
    f->mask_off = header;
    f->payload_off = header + 4;
    f->payload_len = (size_t)len;
    return 1;
}

void hl_ws_unmask(const uint8_t *src, size_t n, const uint8_t mask[4], uint8_t *dst)
{
    uint32_t m32;
    memcpy(&m32, mask, 4);
    uint64_t m64 = ((uint64_t)m32 << 32) | m32;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ mask[i & 3];
}
