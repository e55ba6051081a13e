//! The library itself: its version, and where its log goes.
use super::guard;
use crate::logging::{self, blight_log_params};
use std::ffi::{c_char, c_int, c_void};

/// The version of the header compiled against: `MAJOR << 16 | MINOR << 8 | PATCH`
/// (1.2.3 is 0x010203). Compare with `blight_socket_version_number()`, the library's.
pub const BLIGHT_SOCKET_VERSION_NUM: u32 = 0x010000;

/// `MAJOR.MINOR.PATCH` as a number, for [`BLIGHT_SOCKET_VERSION_NUM`].
const fn version_number(v: &str) -> u32 {
    let b = v.as_bytes();
    let mut parts = [0u32; 3];
    let (mut i, mut k) = (0, 0);
    while i < b.len() && k < 3 {
        match b[i] {
            b'.' => k += 1,
            c @ b'0'..=b'9' => parts[k] = parts[k] * 10 + (c - b'0') as u32,
            _ => break, // a pre-release suffix
        }
        i += 1;
    }
    parts[0] << 16 | parts[1] << 8 | parts[2]
}
// The header's constant is written out (cbindgen copies literals); this keeps it equal to
// Cargo.toml's version.
const _: () = assert!(
    BLIGHT_SOCKET_VERSION_NUM == version_number(env!("CARGO_PKG_VERSION")),
    "BLIGHT_SOCKET_VERSION_NUM must match Cargo.toml's version"
);
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, `"MAJOR.MINOR.PATCH"`: a static string, never freed. For a host's
/// log line; the ABI policy (what may change within one SONAME) is in docs/GUIDE.md.
// This and the next return constants: nothing to guard (they cannot panic or fail).
#[no_mangle]
pub extern "C" fn blight_socket_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The library's version as a number, `MAJOR << 16 | MINOR << 8 | PATCH`: at least
/// `BLIGHT_SOCKET_VERSION_NUM` when the library is as new as the header compiled against.
#[no_mangle]
pub extern "C" fn blight_socket_version_number() -> u32 {
    BLIGHT_SOCKET_VERSION_NUM
}

/// Receives the library's log lines (`blight_set_log_callback`): `user` as given there,
/// and the message's level and text.
///
/// It runs in whichever thread logs, possibly in several threads at once, and possibly
/// while the library holds internal locks: it must be thread-safe, return soon, and not
/// call into this library. It is also called in the child of a `fork()`.
#[allow(non_camel_case_types)]
pub type blight_log_callback = Option<unsafe extern "C" fn(user: *mut c_void, params: *const blight_log_params)>;

/// Sends the library's log to `callback(user, params)` instead of stderr, or back to
/// stderr with a NULL `callback` (the default: `[pid:tid exe] Warning: ...` lines).
/// Applies to lines logged after it returns; a line being logged in another thread
/// meanwhile may still go to the previous callback, so keep a replaced `user` valid.
/// Setting a (callback, user) pair keeps a few bytes for good; setting it again reuses
/// them.
///
/// Returns 0, or `-ENOMEM` (nothing changed).
#[no_mangle]
pub extern "C" fn blight_set_log_callback(callback: blight_log_callback, user: *mut c_void) -> c_int {
    guard("blight_set_log_callback", || {
        logging::set_callback(callback, user).map(|()| 0).map_err(|logging::NoMemory| {
            log::warn!("blight_set_log_callback: out of memory; the log goes where it went");
            libc::ENOMEM
        })
    })
}

/// Sets the log level, `BLIGHT_LOG_OFF` .. `BLIGHT_LOG_TRACE`: lines of a lower priority
/// are dropped, whether they go to stderr or to the callback. The default is
/// `BLIGHT_LOG_WARN`, or the environment variable `BLIGHT_SOCKET_LOG` (`off`, `error`,
/// `warn`, `info`, `debug`, `trace`) read on the first call into the library.
///
/// Returns 0, or `-EINVAL` for another value.
#[no_mangle]
pub extern "C" fn blight_set_log_level(level: c_int) -> c_int {
    const NAME: &str = "blight_set_log_level";
    guard(NAME, || {
        let filter = logging::level_filter(level).ok_or_else(|| {
            super::caller_error(
                NAME,
                libc::EINVAL,
                format_args!("level {level} is not BLIGHT_LOG_OFF..BLIGHT_LOG_TRACE"),
            )
        })?;
        logging::set_level(filter);
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        assert_eq!(version_number("1.2.3"), 0x010203);
        assert_eq!(version_number("1.0.0-rc.1"), 0x010000);
        assert_eq!(version_number("0.12.255"), 0x000cff);
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(blight_socket_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
