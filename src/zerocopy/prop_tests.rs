//! Property tests of the zero-copy bookkeeping: the mapping of the kernel's wrapping,
//! inclusive notification ranges to sends (`zerocopy::notify`), the decoding of
//! `sock_extended_err`, and the buffer table (`zerocopy::table`), driven together the way
//! the library drives them, against a simple reference model.
//!
//! Default: `BLIGHT_PROPTEST_CASES` cases per property (2000 unless set), a few seconds.
//! Long run: `BLIGHT_PROPTEST_CASES=200000 cargo test --release --lib prop_tests`.
use super::notify::{Notification, PendingSend, PendingSends};
use super::table::{BufferTable, Freed, UnknownId};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::c_void;

fn cases() -> u32 {
    std::env::var("BLIGHT_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// One step of a run.
#[derive(Clone, Debug)]
enum Op {
    /// A new buffer sent in `chunks` sends (0: all copied, no send to complete).
    Send { chunks: u8 },
    /// A notification for ids `base + off ..= base + off + len` (wrapping), where `base`
    /// is the id of the oldest send still tracked by the model: realistic ranges, which
    /// may overlap, repeat, run past what was sent or start before it.
    Notify { off: i64, len: u32 },
    /// A notification with arbitrary raw ids.
    NotifyRaw { first: u32, last: u32 },
    /// The caller releases the buffer with this index (modulo the buffers so far),
    /// possibly for the second time.
    Release { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5).prop_map(|chunks| Op::Send { chunks }),
        4 => (-8i64..64, prop_oneof![0u32..4, 0u32..64, Just(u32::MAX), any::<u32>()])
            .prop_map(|(off, len)| Op::Notify { off, len }),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(first, last)| Op::NotifyRaw { first, last }),
        3 => any::<usize>().prop_map(|pick| Op::Release { pick }),
    ]
}

/// First notification id: often next to the 2^32 wrap.
fn start_id() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), (u32::MAX - 70)..=u32::MAX, any::<u32>()]
}

/// Frees recorded by the table's free_fn: (buffer index, size).
type FreeLog = RefCell<Vec<(usize, usize)>>;

unsafe extern "C" fn record_free(data: *mut u8, size: usize, user: *mut c_void) {
    let log = &*(user as *const FreeLog);
    log.borrow_mut().push((data as usize, size));
}

/// The reference model of one socket and its buffers.
struct Model {
    /// Per send (index = send number): its notification id, buffer, completed yet.
    sends: Vec<(u32, usize, bool)>,
    /// Per buffer: table id, chunks sent, chunks completed, released, freed.
    buffers: Vec<Buf>,
    next_id: u32,
}

struct Buf {
    table_id: u64,
    chunks: u32,
    completed: u32,
    released: bool,
    freed: bool,
}

/// Whether `id` lies in the inclusive wrapping range `first..=last`.
fn in_range(id: u32, first: u32, last: u32) -> bool {
    id.wrapping_sub(first) <= last.wrapping_sub(first)
}

struct Harness<'a> {
    model: Model,
    pending: PendingSends,
    table: BufferTable,
    log: &'a FreeLog,
    frees_checked: usize,
    total_completed: usize,
}

impl<'a> Harness<'a> {
    fn new(start: u32, log: &'a FreeLog) -> Self {
        Harness {
            model: Model { sends: vec![], buffers: vec![], next_id: start },
            pending: PendingSends::default(),
            table: BufferTable::default(),
            log,
            frees_checked: 0,
            total_completed: 0,
        }
    }

    /// Runs what the table freed and checks each free against the model: exactly once,
    /// and only after release and every completion.
    fn run_frees(&mut self, freed: impl IntoIterator<Item = Freed>) -> Result<(), TestCaseError> {
        for f in freed {
            f.run();
        }
        let log = self.log.borrow();
        for &(data, size) in &log[self.frees_checked..] {
            // `data` carries the buffer index + 1 (never null), `size` its chunk count.
            let b = data - 1;
            let buf = &mut self.model.buffers[b];
            prop_assert!(!buf.freed, "buffer {} freed twice", b);
            prop_assert!(buf.released, "buffer {} freed before its release", b);
            prop_assert_eq!(buf.completed, buf.chunks, "buffer {} freed with sends in flight", b);
            prop_assert_eq!(size, buf.chunks as usize + 1000);
            buf.freed = true;
        }
        self.frees_checked = log.len();
        Ok(())
    }

    fn send(&mut self, chunks: u8) {
        let b = self.model.buffers.len();
        let table_id = self
            .table
            .register(
                (b + 1) as *mut u8,
                chunks as usize + 1000,
                Some(record_free),
                self.log as *const _ as *mut c_void,
            )
            .unwrap();
        self.model.buffers.push(Buf { table_id, chunks: chunks as u32, completed: 0, released: false, freed: false });
        for _ in 0..chunks {
            let nid = self.model.next_id;
            self.model.next_id = nid.wrapping_add(1);
            let send_no = self.model.sends.len();
            self.model.sends.push((nid, b, false));
            // `bytes` tags the send with its number, so the model knows which one completed.
            self.pending.push(nid, PendingSend { buffer: table_id, bytes: send_no });
            self.table.send_started(table_id);
        }
    }

    fn notify(&mut self, first: u32, last: u32, exact: bool) -> Result<(), TestCaseError> {
        let expected: HashSet<usize> = self
            .model
            .sends
            .iter()
            .enumerate()
            .filter(|(_, (id, _, done))| !done && in_range(*id, first, last))
            .map(|(i, _)| i)
            .collect();
        let mut got = Vec::new();
        let n = self.pending.complete(first, last, |s| got.push(s));
        prop_assert_eq!(n, got.len(), "returned count differs from callbacks");
        let mut freed = Vec::new();
        let mut seen = HashSet::new();
        for s in &got {
            let send_no = s.bytes;
            prop_assert!(send_no < self.model.sends.len(), "completed a send never made");
            let (id, b, done) = self.model.sends[send_no];
            prop_assert!(!done, "send {} (id {}) completed twice", send_no, id);
            prop_assert!(seen.insert(send_no));
            prop_assert!(in_range(id, first, last), "send id {} outside range {}..={}", id, first, last);
            prop_assert_eq!(s.buffer, self.model.buffers[b].table_id);
            self.model.sends[send_no].2 = true;
            self.model.buffers[b].completed += 1;
            freed.extend(self.table.send_completed(s.buffer));
        }
        if exact {
            let got_set: HashSet<usize> = got.iter().map(|s| s.bytes).collect();
            prop_assert_eq!(got_set, expected, "range {}..={}", first, last);
        }
        self.total_completed += n;
        let outstanding = self.model.sends.iter().filter(|s| !s.2).count();
        prop_assert_eq!(self.pending.len(), outstanding, "pending count");
        self.run_frees(freed)
    }

    fn release(&mut self, pick: usize) -> Result<(), TestCaseError> {
        if self.model.buffers.is_empty() {
            prop_assert_eq!(self.table.release(0).unwrap_err(), UnknownId);
            return Ok(());
        }
        let b = pick % self.model.buffers.len();
        let id = self.model.buffers[b].table_id;
        match self.table.release(id) {
            Ok(freed) => {
                prop_assert!(!self.model.buffers[b].released, "second release of {} accepted", b);
                self.model.buffers[b].released = true;
                self.run_frees(freed)?;
            }
            Err(UnknownId) => prop_assert!(self.model.buffers[b].released, "first release of {} refused", b),
        }
        let buf = &self.model.buffers[b];
        let in_flight = self.table.in_flight(id);
        if buf.freed {
            prop_assert_eq!(in_flight, None);
        } else {
            prop_assert_eq!(in_flight, Some(buf.chunks - buf.completed));
        }
        Ok(())
    }

    /// The oldest send the model still tracks as pending, or the next id.
    fn base(&self) -> u32 {
        self.model.sends.iter().find(|s| !s.2).map_or(self.model.next_id, |s| s.0)
    }

    fn finish(&mut self, start: u32) -> Result<(), TestCaseError> {
        // Completing every id ever used (in one range, or each on its own) completes all.
        let used = self.model.sends.len() as u32;
        if used > 0 {
            self.notify(start, start.wrapping_add(used - 1), true)?;
        }
        prop_assert!(self.pending.is_empty());
        prop_assert_eq!(self.total_completed, self.model.sends.len(), "every send completed exactly once");
        for b in 0..self.model.buffers.len() {
            if !self.model.buffers[b].released {
                self.release(b)?;
            }
        }
        prop_assert!(self.table.is_empty(), "table still holds {} buffers", self.table.len());
        prop_assert!(self.model.buffers.iter().all(|b| b.freed), "a buffer was never freed");
        prop_assert_eq!(self.log.borrow().len(), self.model.buffers.len(), "one free per buffer");
        // Ids are never reused: all released ids are now unknown.
        for b in &self.model.buffers {
            prop_assert_eq!(self.table.release(b.table_id).unwrap_err(), UnknownId);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary interleavings of sends, notifications (overlapping, duplicate, out of
    /// order, out of range, across the 2^32 wrap) and releases.
    #[test]
    fn notifications_and_table(start in start_id(), ops in prop::collection::vec(op(), 0..200)) {
        let log = FreeLog::default();
        let mut h = Harness::new(start, &log);
        for op in ops {
            match op {
                Op::Send { chunks } => h.send(chunks),
                Op::Notify { off, len } => {
                    let first = h.base().wrapping_add(off as u32);
                    // Spans below 2^31 are what the kernel can produce: exact mapping.
                    let exact = len < (1 << 31);
                    h.notify(first, first.wrapping_add(len), exact)?;
                }
                // Any raw range: never completes an unsent id or twice; exact when its span
                // is plausible.
                Op::NotifyRaw { first, last } => h.notify(first, last, last.wrapping_sub(first) < (1 << 31))?,
                Op::Release { pick } => h.release(pick)?,
            }
        }
        h.finish(start)?;
    }

    /// Every send reported one id at a time, in a random order (the kernel may reorder),
    /// with duplicates: each completes once, and the queue ends empty.
    #[test]
    fn shuffled_single_ids(start in start_id(), chunks in prop::collection::vec(1u8..4, 1..60),
                           order in any::<u64>(),
                           dups in 0usize..20) {
        let log = FreeLog::default();
        let mut h = Harness::new(start, &log);
        for c in &chunks {
            h.send(*c);
        }
        let n = h.model.sends.len();
        let mut ids: Vec<u32> = (0..n as u32).map(|i| start.wrapping_add(i)).collect();
        // Fisher-Yates with a seeded xorshift.
        let mut x = order | 1;
        for i in (1..ids.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            ids.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for d in 0..dups.min(n) {
            let id = ids[d];
            ids.push(id);
        }
        for (k, id) in ids.iter().enumerate() {
            h.notify(*id, *id, true)?;
            if k % 7 == 0 {
                h.release(k)?;
            }
        }
        prop_assert!(h.pending.is_empty());
        h.finish(start)?;
    }

    /// Decoding accepts exactly the zero-copy completions of IPv4 and IPv6.
    #[test]
    fn decode_only_zerocopy(level in prop_oneof![Just(libc::SOL_IP), Just(libc::SOL_IPV6), Just(libc::SOL_SOCKET), any::<i32>()],
                            kind in prop_oneof![Just(libc::IP_RECVERR), Just(libc::IPV6_RECVERR), any::<i32>()],
                            errno in prop_oneof![Just(0u32), any::<u32>()],
                            origin in prop_oneof![Just(5u8), any::<u8>()],
                            code in any::<u8>(), info in any::<u32>(), data in any::<u32>()) {
        // SAFETY: plain data.
        let mut ee: libc::sock_extended_err = unsafe { std::mem::zeroed() };
        ee.ee_errno = errno;
        ee.ee_origin = origin;
        ee.ee_code = code;
        ee.ee_info = info;
        ee.ee_data = data;
        let ok_kind = (level == libc::SOL_IP && kind == libc::IP_RECVERR)
            || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
        let expect = ok_kind && errno == 0 && origin == 5;
        match Notification::decode(level, kind, &ee) {
            Some(n) => {
                prop_assert!(expect);
                prop_assert_eq!(n, Notification { first: info, last: data, copied: code & 1 != 0 });
            }
            None => prop_assert!(!expect),
        }
    }
}

/// Many sends in flight across the wrap, completed by one range that covers them all.
#[test]
fn one_range_across_the_wrap_completes_thousands() {
    let log = FreeLog::default();
    let start = u32::MAX - 5000;
    let mut h = Harness::new(start, &log);
    for i in 0..4000u32 {
        h.send((i % 4) as u8);
    }
    for b in (0..h.model.buffers.len()).step_by(2) {
        h.release(b).unwrap();
    }
    h.finish(start).unwrap();
}
