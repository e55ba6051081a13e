//! The C boundary, and only it.
//!
//! Every export goes through [`guard`]: it installs the logger, catches any panic (which
//! must never unwind into C) and turns the result into the C convention: a non-negative
//! value on success, a negative errno on failure.
//!
//! The exports are `extern "C" fn`, not `unsafe extern "C" fn`: C callers see no
//! difference, and each one checks its pointers before the one commented `unsafe` block
//! that reads them (clippy's `not_unsafe_ptr_arg_deref` is allowed here for that reason).
#![allow(clippy::not_unsafe_ptr_arg_deref)]
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// cbindgen:ignore
mod cxx;
pub mod library;
pub mod socket;
pub mod zerocopy;

/// `unsigned char*`, as upstream's `BlightProtocol::blight_data_t`.
#[allow(non_camel_case_types)]
pub type blight_data_t = *mut std::ffi::c_uchar;

/// Environment variable that makes the named export panic (comma-separated names, or `*`),
/// so that tests can prove no panic crosses the C boundary. Only with the `test-hooks`
/// feature: a release build has no such switch.
#[cfg(feature = "test-hooks")]
const TEST_PANIC_ENV: &str = "BLIGHT_SOCKET_TEST_PANIC";

#[cfg(feature = "test-hooks")]
fn panic_requested(name: &str) -> bool {
    static REQUESTED: once_cell::sync::Lazy<Option<String>> =
        once_cell::sync::Lazy::new(|| std::env::var(TEST_PANIC_ENV).ok());
    REQUESTED.as_deref().is_some_and(|list| list.split(',').any(|n| n == "*" || n == name))
}

#[cfg(feature = "test-hooks")]
fn inject_panic(name: &str) {
    if panic_requested(name) {
        panic!("{TEST_PANIC_ENV} asked {name} to panic");
    }
}

#[cfg(not(feature = "test-hooks"))]
fn inject_panic(_name: &str) {}

/// Whether export `name` may take its fast path: the one system call that does a small
/// message's whole work (see `socket.rs`), tried before [`guard`] and everything else.
/// A fast path cannot panic (a system call and a comparison), logs nothing (it only
/// returns on success) and leaves errno alone, so it needs neither the panic boundary nor
/// the logger. Always true in a release build; with `test-hooks`, false for the exports
/// asked to panic, so that they reach `guard` and the panic tests see them panic.
#[inline(always)]
pub(crate) fn fast_path(_name: &str) -> bool {
    #[cfg(feature = "test-hooks")]
    if panic_requested(_name) {
        return false;
    }
    true
}

/// An errno to return, already logged where it arose.
pub(crate) type Errno = c_int;

/// Runs the body of export `name`: `Ok(n)` returns `n`, `Err(errno)` returns `-errno`,
/// a panic is logged and returns `-EIO`.
pub(crate) fn guard(name: &'static str, body: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
    match guard_value(name, Err(libc::EIO), body) {
        Ok(n) => n,
        Err(errno) => -errno.abs().max(1),
    }
}

/// Runs the body of export `name`, which returns a value rather than an errno; a panic is
/// logged and returns `fallback`.
pub(crate) fn guard_value<T>(name: &'static str, fallback: T, body: impl FnOnce() -> T) -> T {
    let result = catch_unwind(AssertUnwindSafe(|| {
        crate::logging::init();
        inject_panic(name);
        body()
    }));
    result.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        log::error!("{name}: internal panic caught at the C boundary: {what}");
        fallback
    })
}

/// Logs a caller error (a bad argument, an unknown id) and returns its errno.
pub(crate) fn caller_error(name: &str, errno: c_int, what: std::fmt::Arguments) -> Errno {
    log::warn!("{name}: {what} ({})", OsError(errno));
    errno
}

/// An errno in a log line, written as `std::io::Error` writes it ("Broken pipe (os error
/// 32)") but without its heap allocation: out of memory is one of the errors logged, and a
/// failing allocation there would abort the process.
pub(crate) struct OsError(pub c_int);

impl std::fmt::Display for OsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 128];
        write!(f, "{} (os error {})", crate::sys::strerror(self.0, &mut buf), self.0)
    }
}

/// Converts an I/O error to an errno, logging it at a level that fits: timeouts and
/// would-block are ordinary, a closed peer is worth a debug line, the rest a warning.
pub(crate) fn io_error(name: &str, fd: c_int, e: std::io::Error) -> Errno {
    let errno = crate::io::errno(&e);
    match errno {
        libc::EAGAIN | libc::EINTR => log::trace!("{name}(fd {fd}): {}", OsError(errno)),
        libc::EPIPE | libc::ECONNRESET | libc::EBADMSG => log::debug!("{name}(fd {fd}): {}", OsError(errno)),
        _ => log::warn!("{name}(fd {fd}): {}", OsError(errno)),
    }
    errno
}

/// The size argument of a buffer call: `size > 0` and a non-null pointer.
pub(crate) fn checked_len(name: &str, ptr: *const u8, size: isize) -> Result<usize, Errno> {
    if size <= 0 {
        return Err(caller_error(name, libc::EINVAL, format_args!("size {size} must be positive")));
    }
    if ptr.is_null() {
        return Err(caller_error(name, libc::EINVAL, format_args!("null data pointer")));
    }
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::OsError;

    #[test]
    fn os_error_reads_as_io_error_does() {
        for code in [libc::EPIPE, libc::ENOMEM, libc::EBADF, 9999] {
            assert_eq!(OsError(code).to_string(), std::io::Error::from_raw_os_error(code).to_string());
        }
    }
}
