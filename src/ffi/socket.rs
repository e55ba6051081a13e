//! The five functions of upstream's socket layer, plus receive-into-caller-buffer and
//! vectored-send variants.
//!
//! The calls oxide makes for every message (`blight_send_blocking`, `blight_recv_blocking`,
//! `blight_recv`, the `_into` variants behind the C++ functions, `blight_wait_for_*`) each
//! start with a **fast path**: the one system call that does a small message's whole work
//! (`io::send_first`, `io::recv_first`, `io::recv_now`, `io::ready_now`), made before
//! `guard`, with nothing around it that can panic, log or touch errno, so it needs neither
//! (see `ffi::fast_path`). It returns only on complete success; anything else (a partial
//! transfer, `EAGAIN`, an error, a bad argument) goes to the export's `#[cold]` rest, which
//! runs under `guard` and continues from what the first call did: the same system calls,
//! results, errno and log lines as without the fast path, less one `poll` per message.
use super::{blight_data_t, caller_error, checked_len, fast_path, guard, io_error};
use crate::io::{self, Interest};
use crate::zerocopy::drain_for_wait;
use std::ffi::{c_int, c_uint};
use std::mem::MaybeUninit;

/// Attempts and per-attempt timeout (ms) of `blight_recv`, as upstream's defaults.
const RECV_ATTEMPTS: c_uint = 5;
const RECV_TIMEOUT_MS: c_uint = 50;

/// Allocates `size` bytes with `malloc`, fills them with `fill`, and hands them out
/// through `data`, which is left untouched on failure (as upstream does: its own
/// `test_blight_recv` passes a buffer it still uses through a call that fails).
fn recv_allocated(
    name: &'static str,
    fd: c_int,
    data: *mut blight_data_t,
    size: libc::ssize_t,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> std::io::Result<()>,
) -> c_int {
    guard(name, || {
        if data.is_null() {
            return Err(caller_error(name, libc::EINVAL, format_args!("null data pointer")));
        }
        if size <= 0 {
            return Err(caller_error(name, libc::EINVAL, format_args!("size {size} must be positive")));
        }
        let Some(mut buf) = FreshBuffer::new(size as usize) else {
            return Err(caller_error(name, libc::ENOMEM, format_args!("cannot allocate {size} bytes")));
        };
        match fill(buf.slice()) {
            Ok(()) => Ok(buf.hand_out(data)),
            Err(e) => Err(io_error(name, fd, e)), // `buf` is freed as it goes
        }
    })
}

/// A `malloc`ed buffer for a receive, freed on drop unless handed out to the caller.
struct FreshBuffer {
    ptr: *mut u8,
    len: usize,
}

impl FreshBuffer {
    /// `len > 0` bytes, or None when `malloc` fails.
    #[inline(always)]
    fn new(len: usize) -> Option<FreshBuffer> {
        // SAFETY: plain allocation, checked for NULL; freed by drop or by the caller.
        let ptr = unsafe { libc::malloc(len) }.cast::<u8>();
        (!ptr.is_null()).then_some(FreshBuffer { ptr, len })
    }

    /// The whole buffer, uninitialised (only the kernel writes it), hence MaybeUninit.
    #[inline(always)]
    fn slice(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `ptr` is a live allocation of `len` bytes that only this value refers to.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<MaybeUninit<u8>>(), self.len) }
    }

    /// Stores the buffer in `*data` (the caller frees it with `free()`) and returns 0.
    #[inline(always)]
    fn hand_out(self, data: *mut blight_data_t) -> c_int {
        // SAFETY: `data` was checked non-null by the caller of `new`.
        unsafe { *data = self.ptr };
        std::mem::forget(self);
        0
    }
}

impl Drop for FreshBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated with malloc in `new` and not handed out.
        unsafe { libc::free(self.ptr.cast()) };
    }
}

/// The rest of an allocating receive whose fast path read less than `buf`: `finish`
/// completes it under `guard`; on failure `buf` is freed and `*data` left untouched.
#[cold]
#[inline(never)]
fn recv_allocated_rest(
    name: &'static str,
    fd: c_int,
    data: *mut blight_data_t,
    mut buf: FreshBuffer,
    finish: impl FnOnce(&mut [MaybeUninit<u8>]) -> std::io::Result<()>,
) -> c_int {
    guard(name, || match finish(buf.slice()) {
        Ok(()) => Ok(buf.hand_out(data)),
        Err(e) => Err(io_error(name, fd, e)),
    })
}

/// The rest of a receive into the caller's buffer whose fast path read less than `buf`.
#[cold]
#[inline(never)]
fn recv_into_rest(
    name: &'static str,
    fd: c_int,
    buf: &mut [MaybeUninit<u8>],
    finish: impl FnOnce(&mut [MaybeUninit<u8>]) -> std::io::Result<()>,
) -> c_int {
    guard(name, || finish(buf).map(|()| 0).map_err(|e| io_error(name, fd, e)))
}

/// Receives exactly `size` bytes into memory allocated with `malloc()`, which the caller
/// frees with `free()`. Reads what is there at once; if nothing is, waits up to 5 times
/// 50 ms for the socket to become readable, then reads; a partial message is completed
/// with a blocking read.
///
/// Returns 0 and sets `*data`, or a negative errno and leaves `*data` untouched: `-EAGAIN`
/// when nothing arrived in time, `-EBADMSG` when the peer closed mid-message,
/// `-ECONNRESET` when the peer hung up (`POLLHUP`) and nothing is left to read, `-EINVAL`
/// for a null `data` or `size <= 0`. A TCP FIN or a `shutdown(SHUT_WR)` of the peer is not
/// a hang-up: the socket reads end of file, reported as `-EBADMSG`.
#[no_mangle]
pub extern "C" fn blight_recv(fd: c_int, data: *mut blight_data_t, size: libc::ssize_t) -> c_int {
    const NAME: &str = "blight_recv";
    if fast_path(NAME) && !data.is_null() && size > 0 {
        if let Some(mut buf) = FreshBuffer::new(size as usize) {
            let first = io::recv_now(fd, buf.slice());
            if matches!(first, Ok(n) if n == size as usize) {
                return buf.hand_out(data);
            }
            return recv_allocated_rest(NAME, fd, data, buf, |buf| {
                io::recv_with_attempts_after(fd, buf, first, RECV_ATTEMPTS, RECV_TIMEOUT_MS, &drain_for_wait)
            });
        }
    }
    recv_allocated(NAME, fd, data, size, |buf| {
        io::recv_with_attempts(fd, buf, RECV_ATTEMPTS, RECV_TIMEOUT_MS, &drain_for_wait)
    })
}

/// Receives exactly `size` bytes into memory allocated with `malloc()` (free it with
/// `free()`), waiting as long as it takes. A message that arrives in many pieces is
/// reassembled in order.
///
/// Returns 0 and sets `*data`, or a negative errno and leaves `*data` untouched: `-EBADMSG`
/// when the peer closed before `size` bytes, `-EINVAL` for a null `data` or `size <= 0`.
#[no_mangle]
pub extern "C" fn blight_recv_blocking(fd: c_int, data: *mut blight_data_t, size: libc::ssize_t) -> c_int {
    const NAME: &str = "blight_recv_blocking";
    if fast_path(NAME) && !data.is_null() && size > 0 {
        if let Some(mut buf) = FreshBuffer::new(size as usize) {
            let first = io::recv_first(fd, buf.slice());
            if matches!(first, Ok(n) if n == size as usize) {
                return buf.hand_out(data);
            }
            return recv_allocated_rest(NAME, fd, data, buf, |buf| {
                io::recv_exact_after(fd, buf, first, &drain_for_wait)
            });
        }
    }
    recv_allocated(NAME, fd, data, size, |buf| io::recv_exact(fd, buf, &drain_for_wait))
}

/// Sends all `size` bytes or fails. Never raises `SIGPIPE` (a closed peer is `-EPIPE`);
/// on a non-blocking socket waits in `poll()` while the socket is full; retries `EINTR`.
/// `size == 0` sends nothing and returns 0.
///
/// Returns 0, or a negative errno: `-EPIPE`, `-ECONNRESET`, `-EBADF`, `-ENOTSOCK`,
/// `-EINVAL` for `size < 0` or a null `data` with `size > 0`.
#[no_mangle]
pub extern "C" fn blight_send_blocking(fd: c_int, data: blight_data_t, size: libc::ssize_t) -> c_int {
    const NAME: &str = "blight_send_blocking";
    if fast_path(NAME) && size > 0 && !data.is_null() {
        // SAFETY: the caller passes `size` readable bytes at `data` (checked non-null).
        let buf = unsafe { std::slice::from_raw_parts(data as *const u8, size as usize) };
        let first = io::send_first(fd, buf);
        if matches!(first, Ok(n) if n == buf.len()) {
            return 0;
        }
        return send_blocking_rest(fd, buf, first);
    }
    guard(NAME, || {
        if size == 0 {
            return Ok(0);
        }
        let len = checked_len(NAME, data, size)?;
        // SAFETY: the caller passes `size` readable bytes at `data` (checked non-null).
        let buf = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
        io::send_all(fd, buf, &drain_for_wait).map(|()| 0).map_err(|e| io_error(NAME, fd, e))
    })
}

/// `blight_send_blocking` after its fast path sent less than the whole buffer.
#[cold]
#[inline(never)]
fn send_blocking_rest(fd: c_int, buf: &[u8], first: std::io::Result<usize>) -> c_int {
    const NAME: &str = "blight_send_blocking";
    guard(NAME, || io::send_all_after(fd, buf, first, &drain_for_wait).map(|()| 0).map_err(|e| io_error(NAME, fd, e)))
}

/// Sends every byte of `count` buffers, in order, with as few system calls as the kernel
/// allows (one `sendmsg()` for the whole vector when the socket has room); a partial write
/// is resumed mid-vector. Same guarantees as `blight_send_blocking`. Entries with
/// `iov_len == 0` are skipped.
///
/// Returns 0, or a negative errno: `-EINVAL` for a null `iov` with `count > 0`,
/// `count < 0`, more than `IOV_MAX` entries, or an entry with a null base and a length.
#[no_mangle]
pub extern "C" fn blight_sendv_blocking(fd: c_int, iov: *const libc::iovec, count: c_int) -> c_int {
    const NAME: &str = "blight_sendv_blocking";
    guard(NAME, || {
        if count == 0 {
            return Ok(0);
        }
        if !(0..=libc::UIO_MAXIOV).contains(&count) || iov.is_null() {
            return Err(caller_error(NAME, libc::EINVAL, format_args!("bad vector ({count} entries)")));
        }
        // SAFETY: the caller passes `count` iovecs at `iov` (checked non-null).
        let iov = unsafe { std::slice::from_raw_parts(iov, count as usize) };
        for (i, v) in iov.iter().enumerate() {
            if v.iov_len > 0 && (v.iov_base.is_null() || v.iov_len > isize::MAX as usize) {
                return Err(caller_error(NAME, libc::EINVAL, format_args!("bad entry {i}")));
            }
        }
        io::sendv_all(fd, iov, &drain_for_wait).map(|()| 0).map_err(|e| io_error(NAME, fd, e))
    })
}

/// Waits until `fd` can be written without blocking. `timeout` is in milliseconds, -1
/// waits forever.
///
/// Returns 0, or `-EAGAIN` on timeout, `-ECONNRESET` when the peer hung up, `-EINVAL`
/// for a descriptor that is not open. Zero-copy notifications waiting in the socket's
/// error queue (which raise `POLLERR`) are processed, not taken for readiness or error.
#[no_mangle]
pub extern "C" fn blight_wait_for_send(fd: c_int, timeout: c_int) -> c_int {
    const NAME: &str = "blight_wait_for_send";
    if fast_path(NAME) && io::ready_now(fd, Interest::Write) {
        return 0;
    }
    wait_rest(NAME, fd, Interest::Write, timeout)
}

/// `blight_wait_for_send` or `blight_wait_for_read` (export `name`) when the socket was
/// not plainly ready at once.
#[cold]
#[inline(never)]
fn wait_rest(name: &'static str, fd: c_int, interest: Interest, timeout: c_int) -> c_int {
    guard(name, || io::wait_for(fd, interest, timeout, &drain_for_wait).map(|()| 0).map_err(|e| io_error(name, fd, e)))
}

/// Waits until `fd` has data to read. `timeout` is in milliseconds, -1 waits forever.
///
/// Returns 0 while there is data to read (also after the peer hung up), `-ECONNRESET`
/// when the peer hung up (`POLLHUP`: an AF_UNIX peer closed, a TCP reset) and nothing is
/// left, `-EAGAIN` on timeout, `-EINVAL` for a descriptor that is not open. After a TCP
/// FIN or the peer's `shutdown(SHUT_WR)` the socket is readable (a read returns end of
/// file), so this returns 0, as upstream does. Zero-copy notifications are not taken for
/// readiness.
#[no_mangle]
pub extern "C" fn blight_wait_for_read(fd: c_int, timeout: c_int) -> c_int {
    const NAME: &str = "blight_wait_for_read";
    if fast_path(NAME) && io::ready_now(fd, Interest::Read) {
        return 0;
    }
    wait_rest(NAME, fd, Interest::Read, timeout)
}

/// Like `blight_recv`, into the caller's buffer of at least `size` bytes, with
/// upstream's `attempts` waits of `timeout` ms each (`attempts == 0` counts as 1).
/// The C++ wrappers use it to return memory from `new[]`.
///
/// Returns 0 when all `size` bytes arrived, or a negative errno as `blight_recv`.
#[no_mangle]
pub extern "C" fn blight_recv_into(
    fd: c_int,
    buf: *mut std::ffi::c_uchar,
    size: libc::ssize_t,
    attempts: c_uint,
    timeout: c_uint,
) -> c_int {
    const NAME: &str = "blight_recv_into";
    if fast_path(NAME) && !buf.is_null() && size > 0 {
        // SAFETY: the caller passes a writable buffer of `size` bytes (checked non-null),
        // possibly uninitialised (new[] of unsigned char), hence MaybeUninit.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), size as usize) };
        let first = io::recv_now(fd, buf);
        if matches!(first, Ok(n) if n == buf.len()) {
            return 0;
        }
        return recv_into_rest(NAME, fd, buf, |buf| {
            io::recv_with_attempts_after(fd, buf, first, attempts, timeout, &drain_for_wait)
        });
    }
    guard(NAME, || {
        let len = checked_len(NAME, buf, size)?;
        // SAFETY: the caller passes a writable buffer of `size` bytes (checked non-null),
        // possibly uninitialised (new[] of unsigned char), hence MaybeUninit.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), len) };
        io::recv_with_attempts(fd, buf, attempts, timeout, &drain_for_wait)
            .map(|()| 0)
            .map_err(|e| io_error(NAME, fd, e))
    })
}

/// Like `blight_recv_blocking`, into the caller's buffer of at least `size` bytes.
///
/// Returns 0 when all `size` bytes arrived, or a negative errno as `blight_recv_blocking`.
#[no_mangle]
pub extern "C" fn blight_recv_blocking_into(fd: c_int, buf: *mut std::ffi::c_uchar, size: libc::ssize_t) -> c_int {
    const NAME: &str = "blight_recv_blocking_into";
    if fast_path(NAME) && !buf.is_null() && size > 0 {
        // SAFETY: the caller passes a writable buffer of `size` bytes (checked non-null),
        // possibly uninitialised (new[] of unsigned char), hence MaybeUninit.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), size as usize) };
        let first = io::recv_first(fd, buf);
        if matches!(first, Ok(n) if n == buf.len()) {
            return 0;
        }
        return recv_into_rest(NAME, fd, buf, |buf| io::recv_exact_after(fd, buf, first, &drain_for_wait));
    }
    guard(NAME, || {
        let len = checked_len(NAME, buf, size)?;
        // SAFETY: the caller passes a writable buffer of `size` bytes (checked non-null),
        // possibly uninitialised (new[] of unsigned char), hence MaybeUninit.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), len) };
        io::recv_exact(fd, buf, &drain_for_wait).map(|()| 0).map_err(|e| io_error(NAME, fd, e))
    })
}
