//! Zero-copy sends on `AF_UNIX` stream sockets, where `MSG_ZEROCOPY` is refused.
//!
//! `vmsplice` (without `SPLICE_F_GIFT`) puts references to the caller's pages into a
//! per-socket pipe, and `splice` moves them into the socket: the sender copies nothing.
//! The kernel then reads the caller's pages until the *receiver* has copied them out, and
//! says nothing when that happens. We infer it: `SIOCOUTQ` on an `AF_UNIX` socket is the
//! memory still charged to the sender (`sk_wmem_alloc`), which covers every byte the peer
//! has not consumed plus skb overhead. So with `written` bytes sent through this library,
//! at least `written - SIOCOUTQ` of them have been consumed, and a send ending at or
//! before that position no longer needs its pages.
use super::notify::PendingSend;
use super::socket_state::{Path, SendSide, SocketEntry};
use super::{run_frees, TABLE};
use crate::io;
use crate::sys;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Pipe capacity asked for (capped by `/proc/sys/fs/pipe-max-size`): the most one
/// `vmsplice` can take.
const PIPE_CAPACITY: usize = 1 << 20;

/// Takes the socket's pipe (creating it the first time); it goes back into `side` only
/// when empty, so a pipe that may hold stale page references is closed, never reused.
fn take_pipe(entry: &SocketEntry, side: &mut SendSide) -> std::io::Result<sys::Pipe> {
    if let Some(pipe) = side.pipe.take() {
        return Ok(pipe);
    }
    let pipe = sys::Pipe::new()?;
    let want = sys::pipe_max_size().unwrap_or(PIPE_CAPACITY).min(PIPE_CAPACITY);
    side.pipe_capacity = pipe.set_capacity(want).unwrap_or_else(|e| {
        log::debug!("fd {}: F_SETPIPE_SZ {want}: {e}; keeping the default pipe size", entry.fd);
        16 * 4096
    });
    Ok(pipe)
}

/// Moves (a prefix of) `data` into the socket with vmsplice + splice, while at least
/// `threshold` bytes remain; returns the bytes sent. Falls back to a copy (counted as
/// such) where the kernel refuses vmsplice or splice.
pub fn send(
    entry: &SocketEntry,
    side: &mut SendSide,
    id: u64,
    data: &[u8],
    threshold: usize,
) -> std::io::Result<usize> {
    // splice builds its own msghdr without MSG_NOSIGNAL: keep a closed peer's SIGPIPE away.
    let mut sigpipe = sys::SigpipeBlock::new();
    let mut off = 0;
    while data.len() - off >= threshold {
        let pipe = match take_pipe(entry, side) {
            Ok(p) => p,
            Err(e) => return refuse(entry, &data[off..], "pipe", e).map(|n| off + n),
        };
        let piece = &data[off..off + (data.len() - off).min(side.pipe_capacity)];
        let queued = match pipe.vmsplice_from(piece) {
            Ok(n) => n,
            Err(e) => return refuse(entry, &data[off..], "vmsplice", e).map(|n| off + n),
        };
        let mut moved = 0;
        while moved < queued {
            match io::retry_send(entry.fd, || pipe.splice_to(entry.fd, queued - moved)) {
                Ok(n) => {
                    moved += n;
                    let mut st = entry.state.lock();
                    st.spliced.written += n as u64;
                    let end = st.spliced.written;
                    st.spliced.pending.push_back((end, PendingSend { buffer: id, bytes: n }));
                    st.stats.splice_sends += 1;
                    st.stats.splice_bytes += n as u64;
                    TABLE.lock().send_started(id);
                }
                // `pipe` is dropped (closed) here with whatever it still holds.
                Err(e) if moved == 0 && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                    return refuse(entry, &data[off..], "splice", e).map(|n| off + n);
                }
                Err(e) => {
                    sigpipe.failed();
                    return Err(e);
                }
            }
        }
        side.pipe = Some(pipe);
        off += queued;
    }
    Ok(off)
}

/// The kernel refused the splice path on this socket: copy from now on, and this chunk too.
fn refuse(entry: &SocketEntry, data: &[u8], what: &str, e: std::io::Error) -> std::io::Result<usize> {
    log::debug!("fd {}: {what} refused ({e}); copying on this socket", entry.fd);
    entry.state.lock().path = Path::Copy;
    super::send::copy_send(entry, data)
}

/// Completes the spliced sends the peer has consumed; while some are pending and none is
/// consumed yet, waits up to `timeout_ms` (0: not at all, -1: forever) for the first.
///
/// There is no event for "the peer consumed bytes" that the sender can poll for, so the
/// wait re-reads `SIOCOUTQ` with a back-off from 50 µs doubling up to 2 ms.
///
/// `fd` is any descriptor of the entry's socket (`SIOCOUTQ` is per socket): the entry's
/// own, or a dup's when the entry's descriptor was closed.
pub fn complete_consumed(entry: &SocketEntry, fd: RawFd, timeout_ms: i32) -> std::io::Result<usize> {
    let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    let mut backoff = Duration::from_micros(50);
    loop {
        let mut freed = Vec::new();
        let (completed, pending) = {
            let mut st = entry.state.lock();
            if st.spliced.pending.is_empty() {
                return Ok(0);
            }
            // Read `written` before SIOCOUTQ, under the lock: every byte counted in it is
            // already in the socket, so `written - outq` never overstates consumption.
            let written = st.spliced.written;
            let outq = sys::ioctl_int(fd, sys::SIOCOUTQ)?.max(0) as u64;
            let consumed = written.saturating_sub(outq);
            let mut table = TABLE.lock();
            let mut n = 0;
            while st.spliced.pending.front().is_some_and(|(end, _)| *end <= consumed) {
                let (_, s) = st.spliced.pending.pop_front().expect("front exists");
                freed.extend(table.send_completed(s.buffer));
                n += 1;
            }
            st.stats.completed_sends += n as u64;
            (n, st.spliced.pending.len())
        };
        run_frees(freed);
        let now = Instant::now();
        match deadline {
            _ if completed > 0 || pending == 0 => return Ok(completed),
            Some(d) if now >= d => return Ok(0),
            Some(d) => std::thread::sleep(backoff.min(d - now)),
            None => std::thread::sleep(backoff),
        }
        backoff = (backoff * 2).min(Duration::from_millis(2));
    }
}
