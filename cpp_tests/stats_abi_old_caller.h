/* What stats_abi_old_caller.c (built as against 1.0) read, in types both sides know. */
#include <stddef.h>
#include <stdint.h>

struct old_caller_result {
    int rc;
    size_t struct_size;
    int canary_intact;
    uint64_t splice_bytes, copied_bytes, zerocopy_bytes, completed_sends;
    uint32_t path, held_sends;
};

int old_caller_stats(int fd, struct old_caller_result *out);
