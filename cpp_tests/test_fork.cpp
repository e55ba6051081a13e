// fork() without exec (issue 13): the child starts with an empty registry. The sends in
// flight are the parent's: the child sees none of them (its copies of the buffers are its
// own), frees what it releases at once, and sends on its own; the parent's sends complete
// for the parent as before.
#include <gtest/gtest.h>

#include "zc_util.h"

using namespace zc_test;

TEST(Fork, ChildStartsWithAnEmptyRegistryAndTheParentsSendsStayItsOwn) {
    ASSERT_EQ(blight_set_zerocopy_threshold(kDefaultThreshold), 0);
    Pair p = unix_pair();
    const size_t n = 64 << 10;
    FreeCounter fc;
    // Spliced, and not read yet: in flight in the parent.
    blight_buffer_id_t kept = send_new(p.a.get(), n, 30, 0, fc, false);
    blight_buffer_id_t released = send_new(p.a.get(), n, 30, n, fc, true);
    ASSERT_GE(blight_buffer_in_flight(kept), 1);
    ASSERT_GE(blight_buffer_in_flight(released), 1);
    ASSERT_GE(stats_of(p.a.get()).pending_sends, 2u);

    ChildResult res = run_in_child([&] {
        blight_zerocopy_stats s{};
        ZC_CHILD_CHECK(blight_get_zerocopy_stats(-1, &s) == 0 && s.pending_sends == 0 && s.held_sends == 0);
        ZC_CHILD_CHECK(blight_get_zerocopy_stats(p.a.get(), &s) == 0 && s.pending_sends == 0 && s.splice_bytes == 0);
        // Counted complete in the child: released ones are freed by the next call.
        ZC_CHILD_CHECK(blight_buffer_in_flight(kept) == 0);
        ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 0) == 0);
        ZC_CHILD_CHECK(fc.calls == 1);
        ZC_CHILD_CHECK(blight_release_buffer(kept) == 0);
        ZC_CHILD_CHECK(fc.calls == 2);
        ZC_CHILD_CHECK(blight_release_buffer(released) == -ENOENT);
        // The child's own zero-copy sends work, on a socket of its own.
        Pair q = unix_pair();
        FreeCounter fc2;
        send_new(q.a.get(), n, 31, 0, fc2);
        ZC_CHILD_CHECK(read_exactly(q.b.get(), n) == pattern(n, 31));
        for (int i = 0; i < 200 && fc2.calls == 0; i++) blight_process_zerocopy_completions(q.a.get(), 10);
        ZC_CHILD_CHECK(fc2.calls == 1);
        ZC_CHILD_CHECK(blight_get_zerocopy_stats(q.a.get(), &s) == 0 && s.splice_bytes > 0);
        return 0;
    }, 30s);
    EXPECT_TRUE(res.ok()) << res.describe();

    // The parent's sends are untouched by the child: still in flight until the peer reads.
    EXPECT_GE(blight_buffer_in_flight(kept), 1);
    EXPECT_EQ(fc.calls, 0);
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
    EXPECT_EQ(read_exactly(p.b.get(), 2 * n), pattern(2 * n, 30));
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 1 && blight_buffer_in_flight(kept) == 0; }));
    EXPECT_EQ(blight_release_buffer(kept), 0);
    EXPECT_EQ(fc.calls, 2);
    EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
}
