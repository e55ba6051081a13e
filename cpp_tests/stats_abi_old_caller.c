/* A caller built against libblight_socket 1.0's header: its own copy of the 1.0 struct
 * (abi/stats_v1_fields.h, frozen) and 1.0's declaration of blight_get_zerocopy_stats, a
 * plain function (1.0 had no macro and no _sized function). It must keep working with
 * every later library of SONAME .so.1: the library writes exactly the 1.0 struct, no byte
 * beyond it. This file does not include blight_socket.h. */
#include <stdint.h>
#include <string.h>

#include "abi/stats_v1_fields.h"

#define FIELD(type, name) type name;
struct blight_zerocopy_stats {
    BLIGHT_STATS_V1_FIELDS(FIELD)
};
#undef FIELD

int blight_get_zerocopy_stats(int fd, struct blight_zerocopy_stats *stats);

#include "stats_abi_old_caller.h"

int old_caller_stats(int fd, struct old_caller_result *out) {
    /* The struct, then a canary the library must not touch. */
    union {
        struct {
            struct blight_zerocopy_stats s;
            unsigned char canary[64];
        } l;
        unsigned char bytes[sizeof(struct blight_zerocopy_stats) + 64];
    } buf;
    memset(&buf, 0xA5, sizeof buf);
    out->rc = blight_get_zerocopy_stats(fd, &buf.l.s);
    out->struct_size = sizeof buf.l.s;
    out->canary_intact = 1;
    for (size_t i = 0; i < sizeof buf.l.canary; i++) {
        if (buf.l.canary[i] != 0xA5) out->canary_intact = 0;
    }
    out->splice_bytes = buf.l.s.splice_bytes;
    out->copied_bytes = buf.l.s.copied_bytes;
    out->zerocopy_bytes = buf.l.s.zerocopy_bytes;
    out->completed_sends = buf.l.s.completed_sends;
    out->path = buf.l.s.path;
    out->held_sends = buf.l.s.held_sends;
    return out->rc;
}
