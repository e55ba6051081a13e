//! The send paths of `blight_send_zerocopy`: [`copy`], [`msg_zerocopy`] (TCP, UDP) and
//! [`splice`] (AF_UNIX stream). For each chunk, [`send_chunks`] asks the socket's state
//! which one it takes (`SocketState::route`, the one place that decides), and each path
//! sends what it can and returns its outcome here; none calls another.
mod copy;
mod msg_zerocopy;
mod splice;

use super::socket_state::{Path, Route, SendSide, SocketEntry};
use std::io;

pub(super) use copy::{copy_first, copy_small, Copied};

/// The entry was retired (its socket forgotten) before this send took its send lock.
#[derive(Debug)]
pub(super) struct Retired;

/// What a zero-copy path did with (a prefix of) a chunk.
#[derive(Debug)]
enum Outcome {
    /// Sent this many bytes (0: nothing yet; the path is chosen again).
    Sent(usize),
    /// Sent this many bytes, then the kernel refused the path on this socket: it copies
    /// from now on.
    Refused(usize),
    /// Copy this chunk (the path stays).
    CopyChunk,
}

/// Sends all of `data` (registered as buffer `id`) on the socket of `entry`; chunks under
/// `threshold` bytes are copied. `Err(Retired)` when the entry was retired first: nothing
/// was sent, and the caller looks the socket up again.
pub(super) fn send_buffer(
    entry: &SocketEntry,
    id: u64,
    data: &[u8],
    threshold: usize,
) -> Result<io::Result<()>, Retired> {
    // Retiring takes this lock too: once we hold it, the entry stays live until we are done.
    let mut side = entry.send.lock();
    if entry.state.lock().retired {
        return Err(Retired);
    }
    Ok(send_chunks(entry, &mut side, id, data, threshold))
}

fn send_chunks(entry: &SocketEntry, side: &mut SendSide, id: u64, data: &[u8], threshold: usize) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let route = entry.state.lock().route(entry.fd, rest.len(), threshold);
        let outcome = match route {
            Route::Copy(_) => Outcome::CopyChunk,
            Route::MsgZerocopy => msg_zerocopy::send(entry, id, rest)?,
            Route::Splice => splice::send(entry, side, id, rest)?,
        };
        off += match outcome {
            Outcome::Sent(n) => n,
            Outcome::Refused(n) => {
                entry.state.lock().path = Path::Copy;
                n
            }
            Outcome::CopyChunk => copy::copy(entry, rest)?,
        };
    }
    Ok(())
}
