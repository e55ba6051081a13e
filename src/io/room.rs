//! How a small write waits for room the first time it finds its socket full: briefly, on
//! the sender's own timer, or at once in `poll` until the peer has read three quarters of
//! the queue. Which of the two is decided by what the last such wait showed.
//!
//! Why it matters: the kernel wakes a sender asleep in `poll(POLLOUT)` from inside its
//! peer's `recv`, once the queue has drained to a quarter (AF_UNIX's `unix_writable`). On a
//! receiver that only just keeps up (oxide's small messages) the receiver is the side that
//! sets the message rate, and it pays for every wake-up of the sender. Measured here with
//! raw send loops and no library at all, a sender that polls at once moves 1-2.6 % fewer
//! 12 + 64-byte messages per second than one that naps like upstream's `short_pause()`
//! (docs/BENCHMARKS.md, "The wait for room"). But a nap is wrong for a queue that drains
//! sooner than the nap lasts (larger writes, a fast receiver): the receiver runs dry, and
//! then the sender pays to wake it. So the short wait is a `ppoll` that the peer's wake-up
//! still ends early, and it is used only while the queue has lately taken longer to drain
//! than the short wait lasts.
use crate::sys;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// The short wait's request, upstream's `short_pause()`.
const SHORT_WAIT: Duration = Duration::from_micros(5);

/// How long the short wait lasts in practice: its request plus Linux's default timer slack
/// (50 us), which stretches every sleep of a thread that is not real-time.
const SHORT_WAIT_LASTS: Duration = Duration::from_micros(55);

/// The largest write that may wait briefly. Larger writes (bulk data) fill a socket with
/// few big buffers that drain sooner than the short wait lasts; they poll at once.
const SMALL_WRITE: usize = 4096;

/// Whether the short wait has lately ended on its timer (the queue outlasted it), for any
/// socket of the process. A hint between two correct ways to wait, nothing more: shared
/// and racy by design, wrong at worst for one wait.
static SHORT_WAIT_PAYS: AtomicBool = AtomicBool::new(true);

/// Whether a write of `len` bytes may wait briefly when it finds the socket full.
pub(crate) fn small_write(len: usize) -> bool {
    len <= SMALL_WRITE
}

/// The first wait for room of a small write: waits up to the short wait for `fd` to take
/// more, if that has paid lately, and returns whether it waited (false: wait in `poll` now
/// and report how long that took with [`learn`]). Whatever `ppoll` reports (room, a
/// timeout, a hang-up, an error), the caller tries the send again: the send says what
/// happened, and a second `EAGAIN` waits in `poll`, where every event is handled.
pub(crate) fn wait_briefly(fd: RawFd) -> bool {
    if !SHORT_WAIT_PAYS.load(Relaxed) {
        return false;
    }
    if let Ok(revents) = sys::ppoll(fd, libc::POLLOUT, SHORT_WAIT) {
        if woken_by_room(revents) {
            SHORT_WAIT_PAYS.store(false, Relaxed);
        }
    }
    true
}

/// Records how long a small write's first wait in `poll` took: a queue that outlasted the
/// short wait makes the next first wait short again.
pub(crate) fn learn(poll_wait: Duration) {
    SHORT_WAIT_PAYS.store(outlasts_short_wait(poll_wait), Relaxed);
}

/// The short wait ended with room: the queue drained to a quarter before the timer.
fn woken_by_room(revents: libc::c_short) -> bool {
    revents & libc::POLLOUT != 0
}

fn outlasts_short_wait(poll_wait: Duration) -> bool {
    poll_wait > SHORT_WAIT_LASTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_writes_are_oxides_messages_not_bulk_data() {
        assert!(small_write(12));
        assert!(small_write(4096));
        assert!(!small_write(4097));
        assert!(!small_write(64 * 1024));
    }

    #[test]
    fn room_before_the_timer_means_poll_next_time() {
        assert!(woken_by_room(libc::POLLOUT));
        assert!(woken_by_room(libc::POLLOUT | libc::POLLERR));
        assert!(!woken_by_room(0), "a timeout: the queue outlasted the short wait");
        assert!(!woken_by_room(libc::POLLHUP));
    }

    #[test]
    fn a_poll_wait_longer_than_the_short_wait_makes_it_short_again() {
        assert!(outlasts_short_wait(Duration::from_micros(200)));
        assert!(outlasts_short_wait(Duration::from_millis(100)));
        assert!(!outlasts_short_wait(Duration::from_micros(20)));
        assert!(!outlasts_short_wait(SHORT_WAIT_LASTS));
    }
}
