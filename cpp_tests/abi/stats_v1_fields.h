/* SPDX-License-Identifier: MIT
 * FROZEN: the fields of struct blight_zerocopy_stats as libblight_socket 1.0 published it
 * (include/blight_socket.h of 1.0.0), in order. Never edit this list: later versions only
 * append fields, and stats_abi_test checks that each of these stays where it was.
 * X(type, name) for each field. */
#define BLIGHT_STATS_V1_FIELDS(X) \
    X(uint64_t, zerocopy_sends)    \
    X(uint64_t, zerocopy_bytes)    \
    X(uint64_t, kernel_copied_sends) \
    X(uint64_t, kernel_copied_bytes) \
    X(uint64_t, splice_sends)      \
    X(uint64_t, splice_bytes)      \
    X(uint64_t, copied_sends)      \
    X(uint64_t, copied_bytes)      \
    X(uint64_t, enobufs_retries)   \
    X(uint64_t, completed_sends)   \
    X(uint64_t, abandoned_sends)   \
    X(uint64_t, pending_sends)     \
    X(uint32_t, path)              \
    X(uint32_t, held_sends)
