//! A smoke test of every path over real sockets, through the C ABI, so that `cargo test`
//! exercises sockets too. The full socket suite (GoogleTest through the installed header:
//! errors, faults, threads, sanitizers) runs under ctest: `./scripts/test-all.sh`.
//!
//! Single-threaded (every message fits in the socket before it is read), so that it also
//! runs under qemu-user, which cannot start threads here (scripts/test.d/26-cross-arm.sh).
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

extern crate blight_socket;

#[repr(C)]
#[derive(Default, Debug)]
struct Stats {
    counters: [u64; 12],
    path: u32,
    held_sends: u32,
}
const SPLICE_BYTES: usize = 5;
const COPIED_BYTES: usize = 7;
const ZEROCOPY_BYTES: usize = 1;

type FreeFn = unsafe extern "C" fn(*mut u8, usize, *mut c_void);
extern "C" {
    fn blight_send_blocking(fd: c_int, data: *const u8, size: isize) -> c_int;
    fn blight_recv_blocking_into(fd: c_int, buf: *mut u8, size: isize) -> c_int;
    fn blight_send_zerocopy(
        fd: c_int,
        data: *const u8,
        size: isize,
        f: Option<FreeFn>,
        user: *mut c_void,
        id: *mut u64,
    ) -> c_int;
    fn blight_process_zerocopy_completions(fd: c_int, timeout: c_int) -> c_int;
    fn blight_release_buffer(id: u64) -> c_int;
    fn blight_get_zerocopy_stats(fd: c_int, stats: *mut Stats) -> c_int;
    fn blight_forget_socket(fd: c_int) -> c_int;
}

unsafe extern "C" fn count_free(_data: *mut u8, _size: usize, user: *mut c_void) {
    (*(user as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
}

fn unix_pair() -> (c_int, c_int) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn set_buffers(fd: c_int) {
    let size: c_int = 1 << 20;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        let p = &size as *const c_int as *const c_void;
        assert_eq!(unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, p, 4) }, 0);
    }
}

fn tcp_pair() -> (c_int, c_int) {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set_buffers(listener.as_raw_fd()); // inherited by the accepted socket
    let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    set_buffers(a.as_raw_fd());
    let (b, _) = listener.accept().unwrap();
    (a.into_raw_fd(), b.into_raw_fd())
}

fn recv_all(fd: c_int, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    assert_eq!(unsafe { blight_recv_blocking_into(fd, got.as_mut_ptr(), len as isize) }, 0);
    got
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Sends `data` zero-copy from `a`, then receives it on `b`; checks the bytes, the single
/// free once released and complete, and returns the socket's statistics.
fn zerocopy_round_trip(a: c_int, b: c_int, data: &[u8]) -> Stats {
    let frees = AtomicUsize::new(0);
    let user = &frees as *const AtomicUsize as *mut c_void;
    let mut id = 0;
    let rc = unsafe { blight_send_zerocopy(a, data.as_ptr(), data.len() as isize, Some(count_free), user, &mut id) };
    assert_eq!(rc, 0);
    assert_ne!(id, 0);
    assert!(recv_all(b, data.len()) == data, "received bytes differ");
    assert_eq!(unsafe { blight_release_buffer(id) }, 0);
    while frees.load(Ordering::SeqCst) == 0 {
        assert!(unsafe { blight_process_zerocopy_completions(a, 1000) } >= 0);
    }
    assert_eq!(unsafe { blight_release_buffer(id) }, -libc::ENOENT, "released twice");
    let mut st = Stats::default();
    assert_eq!(unsafe { blight_get_zerocopy_stats(a, &mut st) }, 0);
    assert_eq!(unsafe { blight_forget_socket(a) }, 0);
    unsafe { libc::close(a) };
    unsafe { libc::close(b) };
    assert_eq!(frees.load(Ordering::SeqCst), 1);
    st
}

#[test]
fn blocking_send_and_receive() {
    let (a, b) = unix_pair();
    let data = pattern(100_000, 1);
    assert_eq!(unsafe { blight_send_blocking(a, data.as_ptr(), data.len() as isize) }, 0);
    assert!(recv_all(b, data.len()) == data);
    unsafe { libc::close(a) };
    unsafe { libc::close(b) };
}

#[test]
fn splice_on_af_unix() {
    let (a, b) = unix_pair();
    let st = zerocopy_round_trip(a, b, &pattern(64 << 10, 2));
    // Spliced, but for a tail under the threshold that the pipe's capacity may leave.
    assert!(st.counters[SPLICE_BYTES] > 32 << 10, "{st:?}");
    assert_eq!(st.counters[SPLICE_BYTES] + st.counters[COPIED_BYTES], 64 << 10);
}

#[test]
fn small_messages_are_copied() {
    let (a, b) = unix_pair();
    let st = zerocopy_round_trip(a, b, &pattern(64, 3));
    assert_eq!(st.counters[COPIED_BYTES], 64);
}

#[test]
fn msg_zerocopy_on_tcp_loopback() {
    let (a, b) = tcp_pair();
    let st = zerocopy_round_trip(a, b, &pattern(256 << 10, 4));
    // Loopback: sent with MSG_ZEROCOPY, and (always, there) copied by the kernel.
    assert_eq!(st.counters[ZEROCOPY_BYTES] + st.counters[COPIED_BYTES], 256 << 10);
}
