//! The copying path: chunks under the threshold, sockets without a zero-copy path, and the
//! fallbacks of the other two.
use super::super::completions::drain_for_wait;
use super::super::socket_state::SocketEntry;
use crate::io;

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
