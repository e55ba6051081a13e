//! The zero-copy API: `blight_send_zerocopy`, `blight_process_zerocopy_completions`,
//! `blight_release_buffer`, and the introspection and tuning around them.
use super::{blight_data_t, caller_error, checked_len, guard, guard_value, io_error};
use crate::zerocopy::{self, blight_zerocopy_stats, CopyReason, Route, SplicePolicy, BLIGHT_ZEROCOPY_STATS_SIZE_V1};
use std::ffi::{c_int, c_void};

/// Names a buffer given to `blight_send_zerocopy`. 0 never names a buffer; ids are never
/// reused.
#[allow(non_camel_case_types)]
pub type blight_buffer_id_t = u64;

/// Frees a buffer once the library no longer needs it: called exactly once per buffer
/// with the `data`, `size` and `user` given to `blight_send_zerocopy`, from whichever
/// thread released the last reference (the caller's release, or completion processing),
/// never under a lock of this library: it may call back into it.
#[allow(non_camel_case_types)]
pub type blight_free_fn = Option<unsafe extern "C" fn(data: blight_data_t, size: usize, user: *mut c_void)>;

/// `blight_zerocopy_stats.path`: no zero-copy send was made on this socket yet.
pub const BLIGHT_ZEROCOPY_PATH_NONE: u32 = 0;
/// `blight_zerocopy_stats.path`: large chunks are sent with `MSG_ZEROCOPY` (TCP, UDP).
pub const BLIGHT_ZEROCOPY_PATH_MSG_ZEROCOPY: u32 = 1;
/// `blight_zerocopy_stats.path`: large chunks are moved with vmsplice/splice (AF_UNIX stream).
pub const BLIGHT_ZEROCOPY_PATH_SPLICE: u32 = 2;
/// `blight_zerocopy_stats.path`: everything is copied (zero-copy refused, or the kernel
/// kept reporting that it copied anyway, as it always does on loopback, or splice turned
/// off for this socket).
pub const BLIGHT_ZEROCOPY_PATH_COPY: u32 = 3;
/// `blight_zerocopy_stats.path`: everything is copied because the peer of this AF_UNIX
/// stream socket is another user, to whom the library does not splice by default (see
/// `blight_set_splice_policy`).
pub const BLIGHT_ZEROCOPY_PATH_COPY_OTHER_USER: u32 = 4;

/// `blight_set_splice_policy`: never splice on this socket; copy.
pub const BLIGHT_SPLICE_NEVER: c_int = 0;
/// `blight_set_splice_policy`, the default: splice only to a peer of this process's
/// effective user (`SO_PEERCRED`); copy to any other peer.
pub const BLIGHT_SPLICE_SAME_USER: c_int = 1;
/// `blight_set_splice_policy`: splice to any peer, trusting it not to splice or tee out of
/// its end of the socket (see `blight_set_splice_policy`).
pub const BLIGHT_SPLICE_ANY_PEER: c_int = 2;

/// Sends all `size` bytes of `data`, blocking like `blight_send_blocking`, without
/// copying them where the kernel allows it: `MSG_ZEROCOPY` on TCP and UDP (IPv4, IPv6),
/// vmsplice/splice on AF_UNIX stream sockets whose peer is the same user (see
/// `blight_set_splice_policy`; `BLIGHT_SOCKET_SPLICE=0` turns this path off); chunks
/// under the threshold (`blight_set_zerocopy_threshold`) and other sockets are copied.
///
/// Threads: calls on the same descriptor from several threads are serialized, so on a
/// stream socket the bytes of each call are contiguous in the stream with respect to the
/// other `blight_send_zerocopy` calls on that descriptor (their order is the order in which
/// they got the socket). Nothing is promised with respect to `blight_send_blocking`,
/// `blight_sendv_blocking` or plain `send(2)` on the same socket, nor to calls through
/// another descriptor of the same socket (a `dup`): like `send(2)`, those may interleave.
///
/// On success and on a send error, `*id` names the buffer and the library owns `data`:
/// it calls `free_fn(data, size, user)` exactly once, after the caller released `*id`
/// with `blight_release_buffer` **and** the kernel finished every zero-copy send of it
/// (see `blight_process_zerocopy_completions`). With `free_fn == NULL` the caller keeps
/// the memory, and must neither change nor free it while `blight_buffer_in_flight(*id)`
/// is above 0. Either way, release every id you are given.
///
/// Returns 0, or a negative errno. Ownership follows `*id`, not the errno: the argument
/// and descriptor checks (`-EINVAL` for null `data`, `size <= 0` or null `id`; `-EBADF`,
/// `-ENOTSOCK`) leave `*id == 0` and the caller owning `data`; once `*id` is set the
/// library owns `data` whatever the errno, also when the kernel refuses the send itself
/// with `-EINVAL` (UDP GSO) or the descriptor is closed meanwhile (`-EBADF`).
#[no_mangle]
pub extern "C" fn blight_send_zerocopy(
    fd: c_int,
    data: blight_data_t,
    size: libc::ssize_t,
    free_fn: blight_free_fn,
    user: *mut c_void,
    id: *mut blight_buffer_id_t,
) -> c_int {
    const NAME: &str = "blight_send_zerocopy";
    guard(NAME, || {
        if id.is_null() {
            return Err(caller_error(NAME, libc::EINVAL, format_args!("null id pointer")));
        }
        // SAFETY: checked non-null; the caller passes a pointer to its id.
        unsafe { *id = 0 };
        let len = checked_len(NAME, data, size)?;
        // SAFETY: the caller passes `size` readable bytes at `data` and keeps them alive
        // and unchanged until they are freed through free_fn (or, without one, until no
        // send of them is in flight).
        let buf = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
        let (new_id, result) = zerocopy::send(fd, buf, free_fn, user);
        // SAFETY: checked non-null above.
        unsafe { *id = new_id };
        result.map(|()| 0).map_err(|e| io_error(NAME, fd, e))
    })
}

/// Processes the zero-copy completions of socket `fd`: reads every notification waiting
/// in its error queue (MSG_ZEROCOPY) or checks how much the peer consumed (splice),
/// completes the sends they cover, and frees buffers that are released and complete.
/// When sends are pending and none completed yet, waits up to `timeout` ms for one
/// (0: do not wait, -1: forever). On AF_UNIX sockets this never reads socket data.
///
/// Returns the number of sends completed (>= 0), or a negative errno (`-EBADF`,
/// `-ENOTSOCK`, or a socket error found in the error queue, such as an ICMP error with
/// `IP_RECVERR`: reading it cleared `SO_ERROR`). A call that finds such an error and also
/// completes sends returns their count, and the next call returns the error.
#[no_mangle]
pub extern "C" fn blight_process_zerocopy_completions(fd: c_int, timeout: c_int) -> c_int {
    const NAME: &str = "blight_process_zerocopy_completions";
    guard(NAME, || {
        zerocopy::process_completions(fd, timeout)
            .map(|n| n.min(c_int::MAX as usize) as c_int)
            .map_err(|e| io_error(NAME, fd, e))
    })
}

/// Gives up the caller's reference to buffer `id`. Its `free_fn` runs now if no
/// zero-copy send of it is in flight, otherwise when the last one completes.
///
/// Returns 0, or `-ENOENT` for 0, an unknown id or an id already released.
#[no_mangle]
pub extern "C" fn blight_release_buffer(id: blight_buffer_id_t) -> c_int {
    const NAME: &str = "blight_release_buffer";
    guard(NAME, || {
        zerocopy::release(id)
            .map(|()| 0)
            .map_err(|_| caller_error(NAME, libc::ENOENT, format_args!("buffer {id} is unknown or already released")))
    })
}

/// The number of zero-copy sends of buffer `id` the kernel has not finished yet (>= 0);
/// `-ENOENT` once the buffer is released and complete (or never existed).
#[no_mangle]
pub extern "C" fn blight_buffer_in_flight(id: blight_buffer_id_t) -> c_int {
    guard("blight_buffer_in_flight", || {
        zerocopy::in_flight(id).map(|n| n.min(c_int::MAX as u32) as c_int).ok_or(libc::ENOENT)
    })
}

/// Forgets socket `fd` before it is closed: completes what the kernel reports within
/// about 100 ms (spliced sends the peer has read, or whose pages it released by closing;
/// `MSG_ZEROCOPY` sends the kernel reports), then forgets the socket. Its statistics move
/// to the process-wide totals.
///
/// `free_fn` runs only when the kernel is done with a buffer's pages, so the sends still in
/// flight then are **held**, not freed: counted in `abandoned_sends` and `held_sends`, and
/// logged once. They complete if the socket is seen again through a descriptor (a `dup`
/// already known, one used later, or `fd` itself while it stays open: a later
/// `blight_process_zerocopy_completions(fd, ...)` takes them over); otherwise their memory
/// stays allocated until the process exits. Forget once the peer has read everything (or
/// closed) and nothing is held.
///
/// Also accepts an `fd` that was already closed, or closed and its number given to another
/// file: it forgets the closed socket (whose sends in flight are held: after `close()` the
/// kernel drops their notifications and `SIOCOUTQ` cannot be read). A socket number reused
/// by a new socket is detected (by inode) and the old socket forgotten automatically by
/// the next call that checks it, but calling this first keeps counters exact.
///
/// A send on the socket in progress in another thread (waiting for a peer that does not
/// read) is waited for only within those 100 ms: then the call fails with `-EBUSY` and the
/// socket stays known; call it again once that send has returned.
///
/// Returns the number of sends held (>= 0), 0 for an open socket the library never saw,
/// `-EBUSY` as above, or `-EBADF`/`-ENOTSOCK` for a number that names no socket.
#[no_mangle]
pub extern "C" fn blight_forget_socket(fd: c_int) -> c_int {
    const NAME: &str = "blight_forget_socket";
    guard(NAME, || zerocopy::forget(fd).map(|n| n.min(c_int::MAX as usize) as c_int).map_err(|e| io_error(NAME, fd, e)))
}

/// Fills the first `size` bytes of `*stats` with the statistics of socket `fd` (zeros for
/// a socket never used with `blight_send_zerocopy`), or of the whole process, forgotten
/// sockets included, with `fd == -1`. `size` is `sizeof(struct blight_zerocopy_stats)` as
/// the caller was compiled: the library fills the fields both know and zeros the bytes
/// of fields it does not know (a newer header's). Call it through the macro
/// `blight_get_zerocopy_stats(fd, stats)`, which passes that size.
///
/// Returns 0, or `-EINVAL` for a null `stats` or a `size` under
/// `BLIGHT_ZEROCOPY_STATS_SIZE_V1` (nothing written), `-EBADF`/`-ENOTSOCK`.
#[no_mangle]
pub extern "C" fn blight_get_zerocopy_stats_sized(fd: c_int, stats: *mut blight_zerocopy_stats, size: usize) -> c_int {
    get_stats("blight_get_zerocopy_stats_sized", fd, stats, size)
}

/// 1.0's function, kept for the binaries built against it: fills the first
/// `BLIGHT_ZEROCOPY_STATS_SIZE_V1` bytes of `*stats`, the 1.0 struct. Source code calls
/// the macro of the same name instead (defined at the end of this header), which passes
/// its own struct's size to `blight_get_zerocopy_stats_sized`; `(blight_get_zerocopy_stats)(fd,
/// stats)` or a pointer to this function gets the 1.0 fields only.
///
/// Returns 0, or `-EINVAL` for a null `stats`, `-EBADF`/`-ENOTSOCK`.
#[no_mangle]
pub extern "C" fn blight_get_zerocopy_stats(fd: c_int, stats: *mut blight_zerocopy_stats) -> c_int {
    get_stats("blight_get_zerocopy_stats", fd, stats, BLIGHT_ZEROCOPY_STATS_SIZE_V1)
}

fn get_stats(name: &'static str, fd: c_int, stats: *mut blight_zerocopy_stats, size: usize) -> c_int {
    guard(name, || {
        if stats.is_null() {
            return Err(caller_error(name, libc::EINVAL, format_args!("null stats pointer")));
        }
        if size < BLIGHT_ZEROCOPY_STATS_SIZE_V1 {
            return Err(caller_error(
                name,
                libc::EINVAL,
                format_args!("size {size} is under BLIGHT_ZEROCOPY_STATS_SIZE_V1 ({BLIGHT_ZEROCOPY_STATS_SIZE_V1})"),
            ));
        }
        let (s, path) = zerocopy::stats(fd).map_err(|e| io_error(name, fd, e))?;
        let path = match path {
            None => BLIGHT_ZEROCOPY_PATH_NONE,
            Some(Route::MsgZerocopy) => BLIGHT_ZEROCOPY_PATH_MSG_ZEROCOPY,
            Some(Route::Splice) => BLIGHT_ZEROCOPY_PATH_SPLICE,
            Some(Route::Copy(CopyReason::PeerOtherUser)) => BLIGHT_ZEROCOPY_PATH_COPY_OTHER_USER,
            Some(Route::Copy(_)) => BLIGHT_ZEROCOPY_PATH_COPY,
        };
        // SAFETY: checked non-null; the caller passes `size` writable bytes (its struct).
        unsafe { blight_zerocopy_stats { path, ..s }.copy_out(stats.cast(), size) };
        Ok(0)
    })
}

/// Sets to which peers `blight_send_zerocopy` may splice on the AF_UNIX stream socket `fd`
/// (`BLIGHT_SPLICE_NEVER`, `BLIGHT_SPLICE_SAME_USER`, `BLIGHT_SPLICE_ANY_PEER`), for the
/// sends that start afterwards, until the socket is forgotten (`blight_forget_socket`).
///
/// Why: a spliced send hands the kernel references to the caller's pages. A peer that
/// `splice(2)`s or `tee(2)`s out of its end of the socket keeps them after the library has
/// seen the bytes consumed and run the `free_fn`; whatever the caller then writes in that
/// memory is what the peer's pipe delivers. No kernel signal tells the sender. So by
/// default (`BLIGHT_SPLICE_SAME_USER`) the library splices only to a peer whose effective
/// uid, as `SO_PEERCRED` reports it (its credentials when it connected, read once per
/// socket), is this process's (and not the overflow uid, `nobody`, which also stands for
/// users of other user namespaces); every other peer gets copies, and the socket's
/// statistics say `BLIGHT_ZEROCOPY_PATH_COPY_OTHER_USER`. `BLIGHT_SPLICE_ANY_PEER` is for a caller
/// that trusts its peer not to splice out of the socket; `BLIGHT_SPLICE_NEVER` copies to
/// any peer. The environment switch `BLIGHT_SOCKET_SPLICE=0` wins over this call: with it
/// no socket splices.
///
/// Returns 0, or `-EINVAL` for an unknown policy, `-EOPNOTSUPP` for a socket that is not
/// an AF_UNIX stream socket (nothing changes then), `-EBADF`/`-ENOTSOCK`.
#[no_mangle]
pub extern "C" fn blight_set_splice_policy(fd: c_int, policy: c_int) -> c_int {
    const NAME: &str = "blight_set_splice_policy";
    guard(NAME, || {
        let policy = match policy {
            BLIGHT_SPLICE_NEVER => SplicePolicy::Never,
            BLIGHT_SPLICE_SAME_USER => SplicePolicy::SameUser,
            BLIGHT_SPLICE_ANY_PEER => SplicePolicy::AnyPeer,
            _ => return Err(caller_error(NAME, libc::EINVAL, format_args!("unknown splice policy {policy}"))),
        };
        zerocopy::set_splice_policy(fd, policy).map(|()| 0).map_err(|e| io_error(NAME, fd, e))
    })
}

/// Sets the chunk size under which `blight_send_zerocopy` copies instead (default 10240
/// bytes, the kernel documentation's guidance; the environment variable
/// `BLIGHT_SOCKET_ZEROCOPY_THRESHOLD` sets it at start-up). Applies to sends that start
/// afterwards.
///
/// Returns 0, or `-EINVAL` for 0.
#[no_mangle]
pub extern "C" fn blight_set_zerocopy_threshold(bytes: usize) -> c_int {
    const NAME: &str = "blight_set_zerocopy_threshold";
    guard(NAME, || {
        if bytes == 0 {
            return Err(caller_error(NAME, libc::EINVAL, format_args!("threshold must be at least 1 byte")));
        }
        zerocopy::set_threshold(bytes);
        Ok(0)
    })
}

/// The current threshold of `blight_set_zerocopy_threshold`, in bytes.
#[no_mangle]
pub extern "C" fn blight_zerocopy_threshold() -> usize {
    // Not through `guard`, whose int result cannot carry a threshold above INT_MAX.
    guard_value("blight_zerocopy_threshold", 0, zerocopy::threshold)
}
