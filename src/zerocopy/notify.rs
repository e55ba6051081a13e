//! Zero-copy completion notifications: decoding `sock_extended_err` and mapping the
//! kernel's inclusive, wrapping 32-bit ranges of send counters to the sends they complete.
//!
//! Pure logic, no system calls: unit-tested and fuzzed without sockets.
use std::collections::VecDeque;

/// One notification: the kernel is done with sends `first..=last` (wrapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub first: u32,
    pub last: u32,
    /// `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel copied the data instead (always the case
    /// on loopback, and on devices without scatter-gather).
    pub copied: bool,
}

impl Notification {
    /// Decodes one control message, or `None` if it is not a zero-copy completion
    /// (timestamps, ICMP errors, a real socket error with `ee_errno != 0`).
    pub fn decode(level: i32, kind: i32, err: &libc::sock_extended_err) -> Option<Notification> {
        let is_recverr = (level == libc::SOL_IP && kind == libc::IP_RECVERR)
            || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
        if !is_recverr || err.ee_errno != 0 || err.ee_origin != crate::sys::SO_EE_ORIGIN_ZEROCOPY {
            return None;
        }
        Some(Notification {
            first: err.ee_info,
            last: err.ee_data,
            copied: err.ee_code & crate::sys::SO_EE_CODE_ZEROCOPY_COPIED != 0,
        })
    }
}

/// `SO_EE_ORIGIN_*` of `<linux/errqueue.h>` whose `ee_errno` is an error of the socket
/// itself: a local error (`ip_local_error`, e.g. `EMSGSIZE`) and ICMP/ICMPv6 errors (with
/// `IP_RECVERR`). Timestamps (`SO_EE_ORIGIN_TIMESTAMPING`, `ee_errno == ENOMSG`), `SO_TXTIME`
/// drops and zero-copy completions are reports, not errors.
const ERROR_ORIGINS: [u8; 3] = [1, 2, 3];

/// What one error-queue control message means to the zero-copy path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMessage {
    Completion(Notification),
    /// A real error of the socket (its errno), which reading the queue consumed.
    Error(i32),
    /// Anything else (timestamps, ancillary data of other options): ignored.
    Other,
}

impl QueueMessage {
    pub fn classify(level: i32, kind: i32, err: &libc::sock_extended_err) -> QueueMessage {
        let is_recverr = (level == libc::SOL_IP && kind == libc::IP_RECVERR)
            || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
        if !is_recverr {
            // Not a sock_extended_err at all (SO_TIMESTAMP and the like ride along).
            return QueueMessage::Other;
        }
        if let Some(n) = Notification::decode(level, kind, err) {
            return QueueMessage::Completion(n);
        }
        if err.ee_errno != 0 && ERROR_ORIGINS.contains(&err.ee_origin) {
            return QueueMessage::Error(err.ee_errno as i32);
        }
        QueueMessage::Other
    }
}

/// A send whose completion the kernel has not reported yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSend {
    pub buffer: u64,
    pub bytes: usize,
}

#[derive(Debug)]
struct Slot {
    send: PendingSend,
    done: bool,
}

/// Sends in flight on one socket, in notification-id order.
///
/// The front slot has id `front_id`; slot `i` has id `front_id + i` (wrapping). Completed
/// slots are popped from the front, so completing a send is O(1) whatever the number in
/// flight, and out-of-order notifications leave `done` slots behind the first pending one.
#[derive(Debug, Default)]
pub struct PendingSends {
    front_id: u32,
    slots: VecDeque<Slot>,
    waiting: usize,
}

impl PendingSends {
    /// Sends not yet reported complete.
    pub fn len(&self) -> usize {
        self.waiting
    }

    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Makes room for one more [`push`](Self::push) (false: out of memory).
    pub fn reserve_one(&mut self) -> bool {
        self.slots.try_reserve(1).is_ok()
    }

    /// Records the send that got notification id `id`; ids must be consecutive.
    pub fn push(&mut self, id: u32, send: PendingSend) {
        if self.slots.is_empty() {
            self.front_id = id;
        }
        debug_assert_eq!(id, self.front_id.wrapping_add(self.slots.len() as u32), "notification ids are consecutive");
        self.slots.push_back(Slot { send, done: false });
        self.waiting += 1;
    }

    /// Completes every pending send whose id is in `first..=last` (wrapping), calling
    /// `on_complete` once for each; ids already completed or never sent are ignored.
    /// Returns how many sends it completed.
    pub fn complete(&mut self, first: u32, last: u32, mut on_complete: impl FnMut(PendingSend)) -> usize {
        if self.slots.is_empty() {
            return 0;
        }
        // Offsets from the front slot, as signed distances: a range that starts before the
        // front (already completed ids) has a negative start. Fewer than 2^31 sends are
        // ever in flight, so the signed reading is unambiguous.
        let start = first.wrapping_sub(self.front_id) as i32;
        let span = last.wrapping_sub(first); // inclusive range of span + 1 ids
        let end = (start as i64) + span as i64; // inclusive
        if end < 0 {
            return 0;
        }
        let lo = start.max(0) as usize;
        let last_slot = self.slots.len() - 1;
        if lo > last_slot {
            return 0;
        }
        let hi = (end as u64).min(last_slot as u64) as usize;
        let mut completed = 0;
        for slot in self.slots.range_mut(lo..=hi) {
            if !slot.done {
                slot.done = true;
                completed += 1;
                on_complete(slot.send);
            }
        }
        self.waiting -= completed;
        while self.slots.front().is_some_and(|s| s.done) {
            self.slots.pop_front();
            self.front_id = self.front_id.wrapping_add(1);
        }
        completed
    }

    /// The sends not yet reported complete, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &PendingSend> {
        self.slots.iter().filter(|s| !s.done).map(|s| &s.send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(buffer: u64) -> PendingSend {
        PendingSend { buffer, bytes: 100 }
    }

    /// A zero-copy notification of sends `first..=last`, as the kernel fills it.
    fn zerocopy_report(first: u32, last: u32) -> libc::sock_extended_err {
        // SAFETY: plain data.
        let mut ee: libc::sock_extended_err = unsafe { std::mem::zeroed() };
        ee.ee_origin = crate::sys::SO_EE_ORIGIN_ZEROCOPY;
        ee.ee_info = first;
        ee.ee_data = last;
        ee
    }

    fn queue(first_id: u32, buffers: &[u64]) -> PendingSends {
        let mut q = PendingSends::default();
        for (i, b) in buffers.iter().enumerate() {
            q.push(first_id.wrapping_add(i as u32), send(*b));
        }
        q
    }

    fn complete(q: &mut PendingSends, first: u32, last: u32) -> Vec<u64> {
        let mut out = vec![];
        q.complete(first, last, |s| out.push(s.buffer));
        out
    }

    #[test]
    fn single_ids_in_order() {
        let mut q = queue(0, &[1, 2, 3]);
        assert_eq!(complete(&mut q, 0, 0), vec![1]);
        assert_eq!(complete(&mut q, 1, 1), vec![2]);
        assert_eq!(complete(&mut q, 2, 2), vec![3]);
        assert!(q.is_empty());
    }

    #[test]
    fn one_range_covers_many_buffers() {
        let mut q = queue(10, &[1, 1, 2, 3, 3, 3]);
        assert_eq!(complete(&mut q, 10, 15), vec![1, 1, 2, 3, 3, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn partial_ranges_and_out_of_order() {
        let mut q = queue(0, &[1, 2, 3, 4, 5]);
        assert_eq!(complete(&mut q, 3, 4), vec![4, 5]);
        assert_eq!(q.len(), 3);
        assert_eq!(complete(&mut q, 1, 1), vec![2]);
        assert_eq!(complete(&mut q, 0, 0), vec![1]);
        assert_eq!(complete(&mut q, 2, 2), vec![3]);
        assert!(q.is_empty());
        assert_eq!(q.slots.len(), 0);
    }

    #[test]
    fn duplicates_and_overlaps_complete_once() {
        let mut q = queue(0, &[1, 2, 3, 4]);
        assert_eq!(complete(&mut q, 0, 1), vec![1, 2]);
        assert_eq!(complete(&mut q, 0, 1), Vec::<u64>::new());
        assert_eq!(complete(&mut q, 1, 2), vec![3]);
        assert_eq!(complete(&mut q, 2, 3), vec![4]);
        assert!(q.is_empty());
    }

    #[test]
    fn wraps_at_2_pow_32() {
        let mut q = queue(u32::MAX - 2, &[1, 2, 3, 4, 5, 6]);
        // ids: MAX-2, MAX-1, MAX, 0, 1, 2
        assert_eq!(complete(&mut q, u32::MAX - 1, 1), vec![2, 3, 4, 5]);
        assert_eq!(complete(&mut q, u32::MAX - 2, u32::MAX - 2), vec![1]);
        assert_eq!(complete(&mut q, 2, 2), vec![6]);
        assert!(q.is_empty());
        // The next sends continue after the wrap.
        q.push(3, send(7));
        assert_eq!(complete(&mut q, 3, 3), vec![7]);
    }

    #[test]
    fn range_beyond_what_was_sent_is_clamped() {
        let mut q = queue(5, &[1, 2]);
        assert_eq!(complete(&mut q, 0, u32::MAX), vec![1, 2]);
        let mut q = queue(5, &[1, 2]);
        assert_eq!(complete(&mut q, 7, 100), Vec::<u64>::new());
        assert_eq!(complete(&mut q, 0, 4), Vec::<u64>::new());
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn empty_queue_ignores_everything() {
        let mut q = PendingSends::default();
        assert_eq!(complete(&mut q, 0, 10), Vec::<u64>::new());
    }

    #[test]
    fn iter_lists_only_pending() {
        let mut q = queue(0, &[1, 2, 3]);
        complete(&mut q, 1, 1);
        let left: Vec<u64> = q.iter().map(|s| s.buffer).collect();
        assert_eq!(left, vec![1, 3]);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn classify_tells_completions_errors_and_the_rest_apart() {
        let mut ee = zerocopy_report(3, 5);
        let c = QueueMessage::classify(libc::SOL_IPV6, libc::IPV6_RECVERR, &ee);
        assert_eq!(c, QueueMessage::Completion(Notification { first: 3, last: 5, copied: false }));
        // ICMP port unreachable with IP_RECVERR.
        ee.ee_origin = 2;
        ee.ee_errno = libc::ECONNREFUSED as u32;
        assert_eq!(
            QueueMessage::classify(libc::SOL_IP, libc::IP_RECVERR, &ee),
            QueueMessage::Error(libc::ECONNREFUSED)
        );
        // A TX timestamp: ENOMSG from SO_EE_ORIGIN_TIMESTAMPING is a report, not an error.
        ee.ee_origin = 4;
        ee.ee_errno = libc::ENOMSG as u32;
        assert_eq!(QueueMessage::classify(libc::SOL_IP, libc::IP_RECVERR, &ee), QueueMessage::Other);
        // An SO_TIMESTAMP control message: its bytes are a timeval, whatever they look like.
        ee.ee_origin = 2;
        ee.ee_errno = 1_795_447_299;
        assert_eq!(QueueMessage::classify(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &ee), QueueMessage::Other);
    }

    #[test]
    fn decode_accepts_ipv4_and_ipv6_only_zerocopy() {
        let mut ee = zerocopy_report(4, 9);
        let n = Notification::decode(libc::SOL_IP, libc::IP_RECVERR, &ee).unwrap();
        assert_eq!(n, Notification { first: 4, last: 9, copied: false });
        ee.ee_code = crate::sys::SO_EE_CODE_ZEROCOPY_COPIED;
        assert!(Notification::decode(libc::SOL_IPV6, libc::IPV6_RECVERR, &ee).unwrap().copied);
        assert!(Notification::decode(libc::SOL_SOCKET, libc::IP_RECVERR, &ee).is_none());
        ee.ee_errno = libc::ECONNREFUSED as u32;
        assert!(Notification::decode(libc::SOL_IP, libc::IP_RECVERR, &ee).is_none());
        ee.ee_errno = 0;
        ee.ee_origin = libc::SO_EE_ORIGIN_TIMESTAMPING;
        assert!(Notification::decode(libc::SOL_IP, libc::IP_RECVERR, &ee).is_none());
    }
}
