/* Runs upstream's four C socket tests (test_blight_recv, test_blight_wait_for_read,
 * test_blight_recv_blocking, test_blight_send_blocking) from oxide's
 * tests/libblight_protocol/test.c, unmodified: that file is included as it is, with its
 * own TEST macro and counters. Upstream's main.cpp, which runs all of test.c, needs a
 * display server and D-Bus; these four need neither. Exit status: the number of
 * failures. Build: see run.sh. */
#include "test.c"

/* Defined by upstream's main.cpp; only test_blight_event_from_buffer, not run here,
 * calls it. */
blight_input_buffer_t* create_test_input_buffer(void) { return NULL; }

int main(void) {
  fprintf(stderr, "********* Start testing of upstream's C socket tests *********\n");
  TEST(test_blight_recv, true);
  TEST(test_blight_wait_for_read, true);
  TEST(test_blight_recv_blocking, true);
  TEST(test_blight_send_blocking, true);
  fprintf(
    stderr,
    "Totals: %d passed, %d failed, %d skipped\n",
    total_tests - failed_tests - skipped_tests,
    failed_tests,
    skipped_tests
  );
  return failed_tests;
}
