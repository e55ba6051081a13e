/* The statistics struct can grow within SONAME .so.1 (docs/GUIDE.md, "ABI policy"):
 *  - the 1.0 fields stay where they were (checked at compile time against a frozen copy,
 *    abi/stats_v1_fields.h);
 *  - a caller built against 1.0's header (stats_abi_old_caller.c: its own copy of the 1.0
 *    struct, 1.0's plain function) still works, and nothing beyond its struct is written;
 *  - a caller with a smaller, older struct passed with its size to the _sized function
 *    gets its fields, and nothing beyond them is written;
 *  - a caller compiled against a newer header (a bigger struct) gets every field this
 *    library knows, zeros in the others, nothing written past its size;
 *  - the header's macro passes this header's size, and a size under the 1.0 struct's is
 *    -EINVAL with nothing written.
 * Single-threaded (it also runs under qemu-user in the cross builds). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "abi/stats_v1_fields.h"
#include "blight_socket.h"
#include "stats_abi_old_caller.h"

#define FIELD(type, name) type name;
struct stats_v1 {
    BLIGHT_STATS_V1_FIELDS(FIELD)
};
#undef FIELD

/* Every 1.0 field keeps its offset and size. */
#define SAME_PLACE(type, name)                                                                       \
    _Static_assert(offsetof(struct blight_zerocopy_stats, name) == offsetof(struct stats_v1, name) && \
                       sizeof(((struct blight_zerocopy_stats *)0)->name) == sizeof(type),             \
                   "blight_zerocopy_stats." #name " moved: fields may only be appended");
BLIGHT_STATS_V1_FIELDS(SAME_PLACE)
#undef SAME_PLACE
_Static_assert(sizeof(struct stats_v1) == BLIGHT_ZEROCOPY_STATS_SIZE_V1, "the 1.0 struct's size");
_Static_assert(sizeof(struct blight_zerocopy_stats) >= BLIGHT_ZEROCOPY_STATS_SIZE_V1, "the struct only grows");

static int failures;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "stats_abi_test:%d: check failed: %s\n", __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static int all_bytes(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != v) return 0;
    }
    return 1;
}

int main(void) {
    /* Something to count: a 64 KiB zero-copy send over AF_UNIX (spliced or copied), read
     * by the peer and completed. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    enum { N = 64 * 1024 };
    unsigned char *data = malloc(N), *got = malloc(N);
    CHECK(data != NULL && got != NULL);
    memset(data, 0x5C, N);
    blight_buffer_id_t id = 0;
    CHECK(blight_send_zerocopy(sv[0], data, N, NULL, NULL, &id) == 0 && id != 0);
    CHECK(blight_recv_blocking_into(sv[1], got, N) == 0);
    CHECK(memcmp(data, got, N) == 0);
    CHECK(blight_process_zerocopy_completions(sv[0], 1000) >= 0);
    CHECK(blight_buffer_in_flight(id) == 0);
    CHECK(blight_release_buffer(id) == 0);

    /* The reference: this header's struct, through the macro. */
    struct blight_zerocopy_stats now;
    memset(&now, 0xA5, sizeof now);
    CHECK(blight_get_zerocopy_stats(sv[0], &now) == 0);
    CHECK(now.splice_bytes + now.copied_bytes + now.zerocopy_bytes == N);
    CHECK(now.pending_sends == 0 && now.held_sends == 0);

    /* The same through the function of that name (the 1.0 fields). */
    struct blight_zerocopy_stats fn;
    memset(&fn, 0xA5, sizeof fn);
    CHECK((blight_get_zerocopy_stats)(sv[0], &fn) == 0);
    CHECK(memcmp(&fn, &now, BLIGHT_ZEROCOPY_STATS_SIZE_V1) == 0);
    CHECK(all_bytes((const unsigned char *)&fn + BLIGHT_ZEROCOPY_STATS_SIZE_V1,
                    sizeof fn - BLIGHT_ZEROCOPY_STATS_SIZE_V1, 0xA5));

    /* A binary built against 1.0. */
    struct old_caller_result old;
    CHECK(old_caller_stats(sv[0], &old) == 0);
    CHECK(old.struct_size == BLIGHT_ZEROCOPY_STATS_SIZE_V1);
    CHECK(old.canary_intact);
    CHECK(old.splice_bytes == now.splice_bytes && old.copied_bytes == now.copied_bytes &&
          old.zerocopy_bytes == now.zerocopy_bytes && old.completed_sends == now.completed_sends &&
          old.path == now.path && old.held_sends == now.held_sends);

    /* A smaller, older struct with its size (the 1.0 one), a canary behind it. */
    struct {
        struct stats_v1 s;
        unsigned char canary[64];
    } small;
    memset(&small, 0xA5, sizeof small);
    CHECK(blight_get_zerocopy_stats_sized(sv[0], (struct blight_zerocopy_stats *)&small.s, sizeof small.s) == 0);
    CHECK(memcmp(&small.s, &now, sizeof small.s) == 0);
    CHECK(all_bytes(small.canary, sizeof small.canary, 0xA5));

    /* A newer, bigger struct: three fields this library does not know, then a canary. */
    struct newer_caller {
        struct blight_zerocopy_stats s;
        uint64_t future[3];
        unsigned char canary[64];
    } big;
    memset(&big, 0xA5, sizeof big);
    size_t big_size = offsetof(struct newer_caller, canary);
    CHECK(blight_get_zerocopy_stats_sized(sv[0], (struct blight_zerocopy_stats *)&big, big_size) == 0);
    CHECK(memcmp(&big.s, &now, sizeof now) == 0);
    CHECK(all_bytes((const unsigned char *)big.future, sizeof big.future, 0));
    CHECK(all_bytes(big.canary, sizeof big.canary, 0xA5));

    /* The process totals, the same ways. */
    struct blight_zerocopy_stats total;
    CHECK(blight_get_zerocopy_stats(-1, &total) == 0);
    CHECK(total.splice_bytes + total.copied_bytes + total.zerocopy_bytes >= N);
    CHECK(old_caller_stats(-1, &old) == 0 && old.canary_intact);

    /* Sizes under the 1.0 struct, and NULL: -EINVAL, nothing written. */
    memset(&small, 0xA5, sizeof small);
    CHECK(blight_get_zerocopy_stats_sized(sv[0], (struct blight_zerocopy_stats *)&small.s,
                                          BLIGHT_ZEROCOPY_STATS_SIZE_V1 - 1) == -EINVAL);
    CHECK(blight_get_zerocopy_stats_sized(sv[0], (struct blight_zerocopy_stats *)&small.s, 8) == -EINVAL);
    CHECK(blight_get_zerocopy_stats_sized(sv[0], (struct blight_zerocopy_stats *)&small.s, 0) == -EINVAL);
    CHECK(all_bytes((const unsigned char *)&small, sizeof small, 0xA5));
    CHECK(blight_get_zerocopy_stats_sized(sv[0], NULL, sizeof now) == -EINVAL);
    CHECK(blight_get_zerocopy_stats(sv[0], NULL) == -EINVAL);
    CHECK((blight_get_zerocopy_stats)(sv[0], NULL) == -EINVAL);
    CHECK(blight_get_zerocopy_stats_sized(-2, &now, sizeof now) == -EBADF);

    CHECK(blight_forget_socket(sv[0]) == 0);
    close(sv[0]);
    close(sv[1]);
    free(data);
    free(got);
    if (failures) {
        fprintf(stderr, "stats_abi_test: %d checks failed\n", failures);
        return 1;
    }
    printf("stats_abi_test: passed (struct %zu bytes, 1.0 struct %d bytes)\n", sizeof(struct blight_zerocopy_stats),
           BLIGHT_ZEROCOPY_STATS_SIZE_V1);
    return 0;
}
