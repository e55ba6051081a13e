//! Blocking send and receive on a raw descriptor: the retry, `EINTR` and `poll` logic, once.
//!
//! Nothing here spins: a socket that is full (or empty) is waited for in `poll(2)` (a small
//! write's first wait perhaps in a short `ppoll(2)`: [`room`]), so a slow peer costs no CPU.
//! Every send uses `MSG_NOSIGNAL`: a closed peer is `EPIPE`, never `SIGPIPE`.
mod room;

use crate::sys;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// What [`wait_for`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// Called when `poll` reports `POLLERR` on a socket: reads the zero-copy notifications
/// waiting in its error queue, if it has any, and says whether it read something (false:
/// `POLLERR` has another cause). An error it returns is a real socket error found there.
/// This is how waits stay correct on zero-copy sockets without this module knowing them.
pub(crate) type PollErrHook<'a> = &'a dyn Fn(RawFd) -> io::Result<bool>;

/// The longest a send waits in `poll(POLLOUT)` before it tries the send again. On AF_UNIX
/// the kernel wakes no `poll` of the sender when its peer stops reading (`shutdown(SHUT_RD)`,
/// or a close while the socket is full), but the send itself fails with `EPIPE`: so a send on
/// a full socket notices such a peer within this time (docs/GUIDE.md, "Timeouts"). A peer
/// that is merely slow or stopped costs one failed `send` per slice, nothing more.
pub(crate) const FULL_SOCKET_SLICE_MS: i32 = 100;

/// The longest nap of a wait while `POLLERR` is raised by an error queue this library does
/// not own (see [`wait_for`]).
const FOREIGN_POLLERR_MAX_NAP: Duration = Duration::from_millis(100);

/// What a descriptor number names: `(file type, inode)` from `fstat`.
type Identity = (libc::mode_t, u64);

/// After a wait: fails with `EBADF` if `fd` no longer names the file it named before the
/// wait (`first` is read on the first call, which must come before any wait). Another
/// thread closed the number and it was reused: nothing more may be sent to, read from or
/// learnt about the new file on the old one's behalf. Only on the slow path (after a
/// socket was found full or empty), never before the first attempt.
fn check_same_file(fd: RawFd, first: &mut Option<Identity>) -> io::Result<()> {
    let now = sys::file_identity(fd)?;
    match *first {
        None => {
            *first = Some(now);
            Ok(())
        }
        Some(before) if before == now => Ok(()),
        Some(_) => Err(error(libc::EBADF)),
    }
}

pub(crate) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub(crate) fn error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Milliseconds left until `deadline`, for `poll` (`-1` without a deadline).
fn remaining_ms(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Round up so that a wait never ends before its deadline.
            left.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Waits until `fd` is readable or writable.
///
/// `timeout_ms < 0` waits forever; a timeout is `EAGAIN`; `EINTR` is retried with the
/// time that is left. `POLLNVAL` is `EINVAL`. A hung-up peer is `ECONNRESET`, except that
/// a reader is told "readable" while unread bytes remain.
///
/// `POLLERR` is raised both by real socket errors and by zero-copy notifications waiting
/// in the error queue. `on_pollerr` drains notifications (completing their sends) and the
/// wait goes on; a real error (`SO_ERROR`) is returned.
pub(crate) fn wait_for(fd: RawFd, interest: Interest, timeout_ms: i32, on_pollerr: PollErrHook) -> io::Result<()> {
    // poll() ignores a negative descriptor (no event, ever): with timeout -1 that would
    // wait forever. It is not open, so it is -EINVAL like any other (POLLNVAL).
    if fd < 0 {
        return Err(error(libc::EINVAL));
    }
    let deadline = (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    let wanted = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    let mut nap = Duration::from_millis(1);
    loop {
        let revents = match sys::poll(fd, wanted, remaining_ms(deadline)) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        };
        if revents == 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(error(libc::EAGAIN));
            }
            continue;
        }
        if revents & libc::POLLNVAL != 0 {
            return Err(error(libc::EINVAL));
        }
        let hangup = revents & libc::POLLHUP != 0;
        match interest {
            Interest::Read if revents & libc::POLLIN != 0 => {
                // With POLLHUP, POLLIN only means "a read will not block": it may read EOF.
                if !hangup || unread_bytes(fd) > 0 {
                    return Ok(());
                }
                return Err(error(libc::ECONNRESET));
            }
            Interest::Write if revents & libc::POLLOUT != 0 && !hangup => return Ok(()),
            _ => {}
        }
        if hangup {
            return Err(error(libc::ECONNRESET));
        }
        if revents & libc::POLLERR != 0 && !on_pollerr(fd)? {
            match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) => {
                    // An error queue we do not own (timestamps, ICMP reports the caller
                    // reads itself): POLLERR stays up until the caller reads it, and no
                    // poll or epoll can wait for POLLIN/POLLOUT while it is up (both
                    // report it at once). What can happen is that the caller reads its
                    // queue or the socket becomes ready: look again after a nap that
                    // doubles up to 100 ms, so a long wait costs at most ten wake-ups a
                    // second instead of a spin.
                    std::thread::sleep(deadline.map_or(nap, |d| nap.min(d.saturating_duration_since(Instant::now()))));
                    nap = (nap * 2).min(FOREIGN_POLLERR_MAX_NAP);
                }
                Ok(code) => return Err(error(code)),
                Err(e) => return Err(e),
            }
        }
        // Reached only when nothing the caller waits for happened: the timeout still holds.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(error(libc::EAGAIN));
        }
    }
}

/// Bytes waiting to be read (`SIOCINQ`), 0 if unknown.
fn unread_bytes(fd: RawFd) -> i32 {
    sys::ioctl_int(fd, sys::SIOCINQ).unwrap_or(0)
}

/// One `send` with the retries every send needs: `EINTR` is retried and `EAGAIN` waits in
/// `poll(POLLOUT)`. Returns how many bytes the kernel took (at least one).
pub(crate) fn send_some(fd: RawFd, buf: &[u8], flags: libc::c_int, on_pollerr: PollErrHook) -> io::Result<usize> {
    retry_send(fd, room::small_write(buf.len()), || sys::send(fd, buf, flags | libc::MSG_NOSIGNAL), on_pollerr)
}

/// Runs `attempt` until it sends something: `EINTR` retries, `EAGAIN` waits for `POLLOUT`
/// (the first time perhaps briefly, if `small_write`: see [`room`]).
pub(crate) fn retry_send(
    fd: RawFd,
    small_write: bool,
    attempt: impl FnMut() -> io::Result<usize>,
    on_pollerr: PollErrHook,
) -> io::Result<usize> {
    retry_send_with(fd, small_write, attempt, || {}, on_pollerr)
}

/// [`retry_send`], calling `while_full` each time the socket is full, before waiting.
///
/// With `small_write`, the first wait may be short ([`room`]). The wait for room is sliced
/// ([`FULL_SOCKET_SLICE_MS`]): after each slice the send is tried again, which is how a
/// peer that can no longer read is found (`EPIPE`). After every
/// wake-up, before trying again, the number is checked to still name the same file
/// (`EBADF` if another thread closed it and it was reused).
pub(crate) fn retry_send_with(
    fd: RawFd,
    small_write: bool,
    mut attempt: impl FnMut() -> io::Result<usize>,
    while_full: impl FnMut(),
    on_pollerr: PollErrHook,
) -> io::Result<usize> {
    let first = attempt();
    retry_send_after(fd, small_write, first, attempt, while_full, on_pollerr)
}

/// [`retry_send_with`] once a first attempt returned `result`: `EAGAIN` goes straight to
/// the wait, no second attempt before it.
pub(crate) fn retry_send_after(
    fd: RawFd,
    small_write: bool,
    mut result: io::Result<usize>,
    mut attempt: impl FnMut() -> io::Result<usize>,
    mut while_full: impl FnMut(),
    on_pollerr: PollErrHook,
) -> io::Result<usize> {
    let mut identity = None;
    let mut first_wait = small_write;
    loop {
        match result {
            Ok(n) => return Ok(n),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    if identity.is_none() {
                        check_same_file(fd, &mut identity)?;
                    }
                    while_full();
                    let first = std::mem::take(&mut first_wait);
                    if !(first && room::wait_briefly(fd)) {
                        let started = first.then(Instant::now);
                        let waited = wait_for(fd, Interest::Write, FULL_SOCKET_SLICE_MS, on_pollerr);
                        if let Some(started) = started {
                            room::learn(started.elapsed());
                        }
                        match waited {
                            // Room, or the slice ended: try again (a peer that can no longer
                            // read raises no event; the send reports it).
                            Ok(()) => {}
                            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                            Err(wait_error) => {
                                check_same_file(fd, &mut identity)?;
                                // A hung-up peer: let the send itself say what happened (EPIPE).
                                return match attempt() {
                                    Ok(n) => Ok(n),
                                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(wait_error),
                                    Err(e) => Err(e),
                                };
                            }
                        }
                    }
                    check_same_file(fd, &mut identity)?;
                }
                _ => return Err(e),
            },
        }
        result = attempt();
    }
}

/// Sends every byte of `buf` or fails.
pub(crate) fn send_all(fd: RawFd, mut buf: &[u8], on_pollerr: PollErrHook) -> io::Result<()> {
    while !buf.is_empty() {
        let n = send_some(fd, buf, 0, on_pollerr)?;
        buf = &buf[n..];
    }
    Ok(())
}

/// The first attempt of a send, alone: one `send(MSG_NOSIGNAL)` of the whole buffer, which
/// is all a small message on a socket with room needs. The C boundary tries it before
/// anything else; what it leaves (a partial send, `EAGAIN`, `EINTR`, an error) goes to
/// [`send_all_after`].
#[inline(always)]
pub(crate) fn send_first(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    sys::send_nowait(fd, buf, libc::MSG_NOSIGNAL)
}

/// [`send_all`] after its first attempt `first` ([`send_first`]): the rest of a partial
/// send, or after `EAGAIN` the wait for room and then the whole buffer again (the same
/// system calls as upstream's loop: send, a short wait, send); another error is the send's
/// error.
#[cold]
pub(crate) fn send_all_after(
    fd: RawFd,
    buf: &[u8],
    first: io::Result<usize>,
    on_pollerr: PollErrHook,
) -> io::Result<()> {
    let small_write = room::small_write(buf.len());
    let n = retry_send_after(fd, small_write, first, || sys::send(fd, buf, libc::MSG_NOSIGNAL), || {}, on_pollerr)?;
    send_all(fd, &buf[n..], on_pollerr)
}

/// Sends every byte of a gather list or fails, resuming a partial write mid-vector.
///
/// Every entry must describe readable memory (the C boundary checked them). Lists of up
/// to 8 non-empty entries (header + payload is 2) are copied to the stack, not the heap.
/// Once one buffer is left it goes through `send(2)`, which is cheaper than `sendmsg(2)`.
pub(crate) fn sendv_all(fd: RawFd, iov: &[libc::iovec], on_pollerr: PollErrHook) -> io::Result<()> {
    const INLINE: usize = 8;
    let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
    let mut inline = [empty; INLINE];
    let mut heap = Vec::new();
    let count = iov.iter().filter(|v| v.iov_len > 0).count();
    let list: &mut [libc::iovec] = if count <= INLINE {
        &mut inline[..count]
    } else {
        // Out of memory: -ENOMEM with nothing sent (never an abort).
        heap.try_reserve_exact(count).map_err(|_| error(libc::ENOMEM))?;
        heap.resize(count, empty);
        &mut heap
    };
    for (dst, src) in list.iter_mut().zip(iov.iter().filter(|v| v.iov_len > 0)) {
        *dst = *src;
    }
    let mut first = 0;
    while first < list.len() {
        if first + 1 == list.len() {
            // SAFETY: the entry describes readable memory (checked at the C boundary) and
            // was only advanced within it.
            let last = unsafe { std::slice::from_raw_parts(list[first].iov_base as *const u8, list[first].iov_len) };
            return send_all(fd, last, on_pollerr);
        }
        let rest = list[first..].iter().fold(0usize, |n, v| n.saturating_add(v.iov_len));
        let mut sent = retry_send(
            fd,
            room::small_write(rest),
            || sys::sendmsg(fd, &list[first..], libc::MSG_NOSIGNAL),
            on_pollerr,
        )?;
        while sent > 0 {
            let head = &mut list[first];
            if sent >= head.iov_len {
                sent -= head.iov_len;
                first += 1;
            } else {
                // SAFETY: advancing within the same entry, `sent < iov_len`.
                head.iov_base = unsafe { (head.iov_base as *mut u8).add(sent) }.cast();
                head.iov_len -= sent;
                sent = 0;
            }
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes, waiting as long as it takes.
/// The peer closing before the end is `EBADMSG`.
/// After every wait the number is checked to still name the same file (`EBADF`): the rest
/// of a message is never read from another socket.
pub(crate) fn recv_exact(fd: RawFd, buf: &mut [MaybeUninit<u8>], on_pollerr: PollErrHook) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let first = recv_first(fd, buf);
    recv_exact_after(fd, buf, first, on_pollerr)
}

/// The first attempt of [`recv_exact`], alone: one `recv(MSG_WAITALL)` of the whole
/// buffer (never a `poll` first: a message that is there is read at once). The C boundary
/// tries it before anything else; anything short of the whole buffer goes to
/// [`recv_exact_after`].
#[inline(always)]
pub(crate) fn recv_first(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // Never blocks (a blocking socket waits on the slow path); MSG_WAITALL is kept for the
    // same flags as upstream's call.
    sys::recv_nowait(fd, buf, libc::MSG_WAITALL)
}

/// [`recv_exact`] after its first attempt `first` ([`recv_first`]) on a non-empty `buf`.
pub(crate) fn recv_exact_after(
    fd: RawFd,
    buf: &mut [MaybeUninit<u8>],
    mut result: io::Result<usize>,
    on_pollerr: PollErrHook,
) -> io::Result<()> {
    let mut filled = 0;
    let mut identity = None;
    loop {
        match result {
            Ok(0) => return Err(error(libc::EBADMSG)),
            Ok(n) => {
                filled += n;
                if filled >= buf.len() {
                    return Ok(());
                }
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => match check_same_file(fd, &mut identity)
                    .and_then(|()| wait_for(fd, Interest::Read, -1, on_pollerr))
                    .and_then(|()| check_same_file(fd, &mut identity))
                {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Err(error(libc::EBADMSG)),
                    Err(e) => return Err(e),
                },
                _ => return Err(e),
            },
        }
        result = sys::recv(fd, &mut buf[filled..], libc::MSG_WAITALL);
    }
}

/// The first attempt of [`recv_with_attempts`], before any wait: one non-blocking `recv`
/// of the whole buffer. A message that is already there (the common case: callers read
/// after their own `poll`) costs one system call, no `poll`. Anything short of the whole
/// buffer goes to [`recv_with_attempts_after`].
#[inline(always)]
pub(crate) fn recv_now(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    sys::recv_nowait(fd, buf, 0)
}

/// [`recv_with_attempts`] after the first attempt `first` ([`recv_now`]): the rest of a
/// partial read is completed with [`recv_exact`], as after any partial read; with nothing
/// read (nothing there yet, end of file, an error) the waits run as if no attempt had
/// been made, so that a hang-up, end of file and errors are told apart exactly as there.
#[cold]
pub(crate) fn recv_with_attempts_after(
    fd: RawFd,
    buf: &mut [MaybeUninit<u8>],
    first: io::Result<usize>,
    attempts: u32,
    timeout_ms: u32,
    on_pollerr: PollErrHook,
) -> io::Result<()> {
    match first {
        Ok(n) if n > 0 => recv_exact(fd, &mut buf[n..], on_pollerr),
        _ => recv_with_attempts(fd, buf, attempts, timeout_ms, on_pollerr),
    }
}

/// The first attempt of [`wait_for`], alone: `poll` with a zero timeout, true when it
/// reports exactly the readiness waited for (no hang-up, no error, nothing else). Anything
/// else, including "not yet", is for [`wait_for`] itself.
#[inline(always)]
pub(crate) fn ready_now(fd: RawFd, interest: Interest) -> bool {
    let wanted = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    fd >= 0 && matches!(sys::poll_now(fd, wanted), Ok(revents) if revents == wanted)
}

/// Upstream's `recv`: up to `attempts` waits of `timeout_ms` for the socket to become
/// readable, then a non-blocking read; a partial read is completed with [`recv_exact`].
/// Running out of attempts is `EAGAIN`; the peer closing before the end is `EBADMSG`.
pub(crate) fn recv_with_attempts(
    fd: RawFd,
    buf: &mut [MaybeUninit<u8>],
    attempts: u32,
    timeout_ms: u32,
    on_pollerr: PollErrHook,
) -> io::Result<()> {
    let attempts = attempts.max(1);
    let timeout = timeout_ms.min(i32::MAX as u32) as i32;
    let mut tries = 0;
    let n = loop {
        match wait_for(fd, Interest::Read, timeout, on_pollerr) {
            Ok(()) => match sys::recv(fd, buf, libc::MSG_DONTWAIT) {
                Ok(n) => break n,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {}
                Err(e) => return Err(e),
            },
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        tries += 1;
        if tries >= attempts {
            return Err(error(libc::EAGAIN));
        }
    };
    if n == 0 {
        return Err(error(libc::EBADMSG));
    }
    recv_exact(fd, &mut buf[n..], on_pollerr)
}
