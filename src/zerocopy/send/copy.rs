//! The copying path: chunks under the threshold, sockets without a zero-copy path, and the
//! fallbacks of the other two.
use super::super::completions::drain_for_wait;
use super::super::socket_state::SocketEntry;
use crate::io;
use crate::sys;
use std::os::fd::RawFd;

/// One copying send of (a prefix of) `data` on `entry`'s socket, counted in its `written`
/// position (the splice path's arithmetic); returns the bytes sent.
pub(super) fn copy(entry: &SocketEntry, data: &[u8]) -> std::io::Result<usize> {
    let n = io::send_some(entry.fd, data, 0, &drain_for_wait)?;
    let mut st = entry.state.lock();
    st.stats.copied_sends += 1;
    st.stats.copied_bytes += n as u64;
    st.spliced.written += n as u64;
    Ok(n)
}

/// The cheap path's first attempt (`zerocopy::send_small`): one copying send of as much of
/// `data` as the socket takes without a wait in this library (a blocking socket may still
/// block in the kernel); `EAGAIN` and `EINTR` are 0 bytes. Usually all of it: then no wait
/// ran, so no send completed and no `free_fn` is due.
pub(in crate::zerocopy) fn copy_first(fd: RawFd, data: &[u8]) -> std::io::Result<usize> {
    match sys::send(fd, data, libc::MSG_NOSIGNAL) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => Ok(0),
        sent => sent,
    }
}

/// What [`copy_small`] sent before it returned.
#[derive(Debug, Default)]
pub(in crate::zerocopy) struct Copied {
    pub sends: u64,
    pub bytes: u64,
}

/// Copies all of `data` to `fd`, waiting for room, without moving its `written` position:
/// the rest after [`copy_first`] on the cheap path of small buffers
/// (`zerocopy::send_small`), which holds the socket's send lock (so no other
/// `blight_send_zerocopy` call's bytes land among these) but not its state lock. Taken
/// only with nothing in flight, where `written` does not matter; and uncounted bytes could
/// only ever make `written - SIOCOUTQ` smaller, never larger, than what the peer consumed
/// of ours.
pub(in crate::zerocopy) fn copy_small(fd: RawFd, data: &[u8]) -> (Copied, std::io::Result<()>) {
    let mut done = Copied::default();
    let mut rest = data;
    while !rest.is_empty() {
        match io::send_some(fd, rest, 0, &drain_for_wait) {
            Ok(n) => {
                rest = &rest[n..];
                done.sends += 1;
                done.bytes += n as u64;
            }
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}
