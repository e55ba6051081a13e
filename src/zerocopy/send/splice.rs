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
//!
//! Completion of these sends lives in `completions` (`SIOCOUTQ`).
use super::super::completions::drain_for_wait;
use super::super::notify::PendingSend;
use super::super::socket_state::{SendSide, SocketEntry};
use super::super::table::TABLE;
use super::Outcome;
use crate::io;
use crate::sys;

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

/// Moves a prefix of `data` (at most one pipe's capacity) into the socket with vmsplice +
/// splice: the bytes sent, or [`Outcome::Refused`] with the bytes sent before the kernel
/// refused vmsplice or splice on this socket, or [`Outcome::CopyChunk`] while splicing
/// backs off after a transient failure.
pub(super) fn send(entry: &SocketEntry, side: &mut SendSide, id: u64, data: &[u8]) -> std::io::Result<Outcome> {
    if side.backoff.waiting() {
        return Ok(Outcome::CopyChunk);
    }
    // splice builds its own msghdr without MSG_NOSIGNAL: keep a closed peer's SIGPIPE away.
    let mut sigpipe = sys::SigpipeBlock::new();
    let pipe = match take_pipe(entry, side) {
        Ok(p) => p,
        Err(e) if transient(&e) => return Ok(back_off(entry, side, 0, "pipe", e)),
        Err(e) => return Ok(refuse(entry, 0, "pipe", e)),
    };
    let piece = &data[..data.len().min(side.pipe_capacity)];
    let queued = match pipe.vmsplice_from(piece) {
        Ok(n) => n,
        // EFAULT: memory vmsplice cannot pin (a device mapping): the next buffer may do.
        Err(e) if transient(&e) || e.raw_os_error() == Some(libc::EFAULT) => {
            return Ok(back_off(entry, side, 0, "vmsplice", e));
        }
        Err(e) => return Ok(refuse(entry, 0, "vmsplice", e)),
    };
    let mut moved = 0;
    while moved < queued {
        if !entry.state.lock().spliced.reserve_one() {
            // No room to record a splice: the pipe (dropped here) gives the pages back.
            let e = std::io::Error::from_raw_os_error(libc::ENOMEM);
            return Ok(back_off(entry, side, moved, "splice", e));
        }
        match io::retry_send(entry.fd, false, || pipe.splice_to(entry.fd, queued - moved), &drain_for_wait) {
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
                return Ok(refuse(entry, 0, "splice", e));
            }
            Err(e) => {
                sigpipe.failed();
                return Err(e);
            }
        }
    }
    side.pipe = Some(pipe);
    side.backoff.succeeded();
    Ok(Outcome::Sent(queued))
}

/// An error that says nothing about the socket: out of descriptors or memory for now.
fn transient(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN))
}

/// A transient failure after `sent` bytes: this chunk is copied, and splicing is tried
/// again after a back-off (10 ms doubling up to 5 s), never switched off for good by it.
fn back_off(entry: &SocketEntry, side: &mut SendSide, sent: usize, what: &str, e: std::io::Error) -> Outcome {
    let wait = side.backoff.failed();
    log::debug!("fd {}: {what} failed ({e}); copying, splicing again in {wait:?}", entry.fd);
    if sent > 0 {
        Outcome::Sent(sent)
    } else {
        Outcome::CopyChunk
    }
}

/// The kernel refused the splice path on this socket after `sent` bytes.
fn refuse(entry: &SocketEntry, sent: usize, what: &str, e: std::io::Error) -> Outcome {
    log::debug!("fd {}: {what} refused ({e}); copying on this socket", entry.fd);
    Outcome::Refused(sent)
}
