//! `MSG_ZEROCOPY` sends (TCP, UDP): the kernel pins the caller's pages and numbers each
//! successful send call; the completions come back through the error queue.
use super::super::completions::{drain_error_queue_of, drain_for_wait};
use super::super::notify::PendingSend;
use super::super::registry;
use super::super::socket_state::{Path, Route, SocketEntry};
use super::super::table::TABLE;
use super::Outcome;
use crate::io;
use crate::sys;
use std::os::fd::RawFd;

/// How many times one chunk retries `MSG_ZEROCOPY` after `ENOBUFS` before it is copied.
const ENOBUFS_RETRIES: u32 = 4;
/// How long an `ENOBUFS` retry waits for a notification to free option memory.
const ENOBUFS_WAIT_MS: i32 = 10;

/// One `MSG_ZEROCOPY` send of (a prefix of) `data`: the bytes sent (0 when the socket
/// switched to copying meanwhile), or [`Outcome::CopyChunk`] when option memory stays full.
///
/// The send and the recording of its notification id happen under the state lock, so a
/// completion read by another thread always finds the send it completes. While the
/// socket is full, the error queue is drained before waiting: it costs nothing then, frees
/// option memory, and lets a run of COPIED reports switch the socket mid-buffer. A real
/// error found there (reading it cleared `SO_ERROR`) fails the send, as a plain send would.
pub(super) fn send(entry: &SocketEntry, id: u64, data: &[u8]) -> std::io::Result<Outcome> {
    let fd: RawFd = entry.fd;
    let mut enobufs = 0;
    loop {
        let queue_error = std::cell::Cell::new(None);
        let drain_while_full = || {
            if let Err(e) = drain_error_queue_of(entry) {
                queue_error.set(Some(e));
            }
        };
        let attempt = io::retry_send_with(
            fd,
            false,
            || {
                if let Some(e) = queue_error.take() {
                    return Err(e);
                }
                let mut st = entry.state.lock();
                if st.large_chunk_route(fd) != Route::MsgZerocopy {
                    return Ok(0); // switched to copying meanwhile: the chunk's route is asked again
                }
                if !st.pending.reserve_one() {
                    // No room to record the send: it is not made (ENOMEM, then copied).
                    return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
                }
                let n = match sys::send(fd, data, libc::MSG_ZEROCOPY | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) {
                    Ok(n) => n,
                    Err(e) => {
                        if !entry.stream && !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                            // On a datagram socket a send can fail after the kernel numbered
                            // it (UDP GSO refusing the segment size in udp_send_skb, a drop on
                            // egress, ENOBUFS from the queue with IP_RECVERR): its notification
                            // still comes, and every later id would be one behind ours. Which
                            // failure did that cannot be told, so any of them ends zero-copy on
                            // the socket; the sends numbered before still complete.
                            log::info!("fd {fd}: MSG_ZEROCOPY send failed ({e}); copying on this socket from now on");
                            st.path = Path::Copy;
                        }
                        return Err(e);
                    }
                };
                // A successful call consumed one notification id; a failed one consumed none.
                let nid = st.next_id;
                st.next_id = nid.wrapping_add(1);
                st.pending.push(nid, PendingSend { buffer: id, bytes: n });
                st.stats.zerocopy_sends += 1;
                st.stats.zerocopy_bytes += n as u64;
                TABLE.lock().send_started(id);
                Ok(n)
            },
            drain_while_full,
            &drain_for_wait,
        );
        match attempt {
            // Out of memory for the bookkeeping of a zero-copy send: this chunk is copied.
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => return Ok(Outcome::CopyChunk),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // The socket's option memory (net.core.optmem_max) is full of notifications:
                // reading them frees it.
                entry.state.lock().stats.enobufs_retries += 1;
                enobufs += 1;
                if enobufs > ENOBUFS_RETRIES {
                    log::debug!("fd {fd}: ENOBUFS {enobufs} times; copying this chunk");
                    return Ok(Outcome::CopyChunk);
                }
                if drain_error_queue_of(entry)?.1 == 0 {
                    if entry.state.lock().pending.is_empty() {
                        // Nothing in flight will ever raise POLLERR: waiting would hang.
                        log::debug!("fd {fd}: ENOBUFS with no notification outstanding; copying this chunk");
                        return Ok(Outcome::CopyChunk);
                    }
                    // With no events asked for, poll waits for POLLERR: a notification.
                    let _ = sys::poll(fd, 0, ENOBUFS_WAIT_MS);
                    // After the wait, the number may name another socket (closed by
                    // another thread and reused): its error queue is not ours to read.
                    if !registry::names_socket(fd, entry.inode)? {
                        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
                    }
                    drain_error_queue_of(entry)?;
                }
            }
            other => return other.map(Outcome::Sent),
        }
    }
}
