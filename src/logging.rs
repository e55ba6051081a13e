//! The library's log: `[pid:tid exe] Warning: ...` lines on stderr, as upstream prints
//! them, or, once the host sets one, the host's callback (`blight_set_log_callback`).
//!
//! Messages go through the `log` crate. In the shared library that crate's state is the
//! library's own (rustc exports none of its symbols), so this logger is the only one: it is
//! installed by the first exported call. Only a Rust program that links the crate as an
//! `rlib` and installs a `log` logger first keeps its own (and the callback then has no
//! effect). The level comes from `BLIGHT_SOCKET_LOG` (`off`, `error`, `warn` (default),
//! `info`, `debug`, `trace`) and from `blight_set_log_level`.
//!
//! Safe after `fork()` and under memory pressure: a line is formatted on the stack (no
//! allocation, truncated past [`LINE_MAX`] bytes) and written with one `write(2)`, with no
//! lock held; the callback is read with one atomic load. A child forked while another
//! thread logs can therefore log at once, and nothing here waits or allocates.
use log::{Level, LevelFilter, Log, Metadata, Record};
use once_cell::sync::OnceCell;
use std::ffi::{c_char, c_int, c_void};
use std::fmt::Write as _;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Environment variable that sets the log level.
pub(crate) const LEVEL_ENV: &str = "BLIGHT_SOCKET_LOG";

/// The longest line written (prefix, message and newline); longer messages are cut, and
/// end in `...`.
pub(crate) const LINE_MAX: usize = 1024;

/// `blight_set_log_level`: nothing is logged.
pub const BLIGHT_LOG_OFF: c_int = 0;
/// A log level (`blight_log_params.level`, `blight_set_log_level`): errors only.
pub const BLIGHT_LOG_ERROR: c_int = 1;
/// A log level: warnings and errors (the default).
pub const BLIGHT_LOG_WARN: c_int = 2;
/// A log level: also informational lines.
pub const BLIGHT_LOG_INFO: c_int = 3;
/// A log level: also debugging lines (a peer that closed, ...).
pub const BLIGHT_LOG_DEBUG: c_int = 4;
/// A log level: everything (would-block and timeouts included).
pub const BLIGHT_LOG_TRACE: c_int = 5;

/// One message, as given to a `blight_log_callback`. Only valid during the call.
///
/// Fields are only ever appended: a callback compiled against an older header reads the
/// fields it knows.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct blight_log_params {
    /// `BLIGHT_LOG_ERROR` (1) .. `BLIGHT_LOG_TRACE` (5).
    pub level: c_int,
    /// The message, NUL-terminated, without the `[pid:tid exe] Level:` prefix and without
    /// a newline (at most about 1 KiB: longer ones are cut and end in `...`).
    pub message: *const c_char,
    /// `strlen(message)`.
    pub message_len: usize,
}

/// The host's callback, as `blight_log_callback` without the `Option`.
pub(crate) type LogFn = unsafe extern "C" fn(user: *mut c_void, params: *const blight_log_params);

/// A callback and its user data, as one value, so that a logger in another thread sees
/// either the old pair or the new one, never a mix.
struct Sink {
    callback: LogFn,
    user: *mut c_void,
    /// The sink allocated before this one ([`SINKS`]).
    next: *mut Sink,
}

/// Where lines go: null for stderr, else a [`Sink`] of [`SINKS`].
static CURRENT: AtomicPtr<Sink> = AtomicPtr::new(ptr::null_mut());
/// Every sink ever allocated, newest first. A sink is never freed: a logger in another
/// thread may still be reading the one just replaced, and nothing tells when it is done.
/// Setting a pair that was set before reuses its sink, so memory grows only with the
/// number of distinct (callback, user) pairs.
static SINKS: AtomicPtr<Sink> = AtomicPtr::new(ptr::null_mut());

/// Out of memory: the callback was not changed.
#[derive(Debug)]
pub(crate) struct NoMemory;

/// Sends every later line to `callback(user, ...)`, or, with `None`, back to stderr. A call
/// that was logging in another thread meanwhile may still finish with the previous one.
pub(crate) fn set_callback(callback: Option<LogFn>, user: *mut c_void) -> Result<(), NoMemory> {
    let sink = match callback {
        None => ptr::null_mut(),
        Some(callback) => sink_for(callback, user)?,
    };
    CURRENT.store(sink, Ordering::Release);
    Ok(())
}

/// The sink of this pair: one allocated before, or a new one.
fn sink_for(callback: LogFn, user: *mut c_void) -> Result<*mut Sink, NoMemory> {
    let mut p = SINKS.load(Ordering::Acquire);
    // SAFETY: every pointer in the list is a leaked, never freed, fully initialized Sink
    // (published by the Release CAS below).
    while let Some(s) = unsafe { p.as_ref() } {
        if s.callback as usize == callback as usize && s.user == user {
            return Ok(p);
        }
        p = s.next;
    }
    let mut one = Vec::new();
    one.try_reserve_exact(1).map_err(|_| NoMemory)?;
    one.push(Sink { callback, user, next: ptr::null_mut() });
    let new = Box::leak(one.into_boxed_slice()).as_mut_ptr();
    let mut head = SINKS.load(Ordering::Acquire);
    loop {
        // SAFETY: `new` is ours alone until the CAS publishes it.
        unsafe { (*new).next = head };
        match SINKS.compare_exchange_weak(head, new, Ordering::Release, Ordering::Acquire) {
            Ok(_) => return Ok(new),
            Err(now) => head = now,
        }
    }
}

/// How many sinks were ever allocated (tests: setting the same pairs again allocates none).
#[cfg(test)]
fn sink_count() -> usize {
    let mut n = 0;
    let mut p = SINKS.load(Ordering::Acquire);
    // SAFETY: as in `sink_for`.
    while let Some(s) = unsafe { p.as_ref() } {
        n += 1;
        p = s.next;
    }
    n
}

/// A line buffer on the stack: what does not fit is cut (on a character boundary), and
/// the line then ends in `...`.
struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    cut: bool,
}

impl LineBuf {
    fn new() -> LineBuf {
        LineBuf { buf: [0; LINE_MAX], len: 0, cut: false }
    }

    /// Ends the line with `end` (a newline, or a NUL for the callback), after `...` if it
    /// was cut; `end` always fits.
    fn finish(&mut self, end: &[u8]) -> &[u8] {
        const MORE: &[u8] = b"...";
        let room = LINE_MAX - end.len();
        if self.cut || self.len > room {
            let mut keep = self.len.min(room - MORE.len());
            while keep > 0 && (self.buf[keep] & 0xC0) == 0x80 {
                keep -= 1; // not inside a UTF-8 sequence
            }
            self.buf[keep..keep + MORE.len()].copy_from_slice(MORE);
            self.len = keep + MORE.len();
        }
        self.buf[self.len..self.len + end.len()].copy_from_slice(end);
        &self.buf[..self.len + end.len()]
    }
}

impl std::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(LINE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            self.cut = true;
        }
        Ok(()) // cut, not failed: the line is still written
    }
}

struct Logger {
    exe: String,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "Error",
        Level::Warn => "Warning",
        Level::Info => "Info",
        Level::Debug => "Debug",
        Level::Trace => "Trace",
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = LineBuf::new();
        // SAFETY: CURRENT is null or a sink of SINKS, never freed.
        match unsafe { CURRENT.load(Ordering::Acquire).as_ref() } {
            Some(sink) => {
                let _ = write!(line, "{}", record.args());
                let text = line.finish(b"\0");
                // A NUL in the message ends it for C; message_len agrees with strlen.
                let len = text.iter().position(|&b| b == 0).unwrap_or(text.len() - 1);
                let params = blight_log_params {
                    level: level_number(record.level()),
                    message: text.as_ptr().cast(),
                    message_len: len,
                };
                // SAFETY: the host's callback, given a params struct and a NUL-terminated
                // message that both live until it returns.
                unsafe { (sink.callback)(sink.user, &params) };
            }
            None => {
                let _ = write!(
                    line,
                    "[{}:{} {}] {}: {}",
                    std::process::id(),
                    crate::sys::gettid(),
                    self.exe,
                    level_name(record.level()),
                    record.args()
                );
                write_all(libc::STDERR_FILENO, line.finish(b"\n"));
            }
        }
    }

    fn flush(&self) {}
}

/// Writes `line` with one `write(2)` (more only if the kernel takes part of it, or a
/// signal interrupts it), holding no lock. Errors are dropped: there is nowhere to report
/// them.
fn write_all(fd: c_int, mut line: &[u8]) {
    while !line.is_empty() {
        match crate::sys::write(fd, line) {
            Ok(0) => return,
            Ok(n) => line = &line[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn level_from_env() -> LevelFilter {
    match std::env::var(LEVEL_ENV).map(|v| v.to_ascii_lowercase()) {
        Ok(v) if v == "off" || v == "0" => LevelFilter::Off,
        Ok(v) if v == "error" => LevelFilter::Error,
        Ok(v) if v == "info" => LevelFilter::Info,
        Ok(v) if v == "debug" => LevelFilter::Debug,
        Ok(v) if v == "trace" => LevelFilter::Trace,
        _ => LevelFilter::Warn,
    }
}

/// The level for `blight_set_log_level`'s argument: `BLIGHT_LOG_OFF` (0) ..
/// `BLIGHT_LOG_TRACE` (5).
pub(crate) fn level_filter(level: c_int) -> Option<LevelFilter> {
    Some(match level {
        BLIGHT_LOG_OFF => LevelFilter::Off,
        BLIGHT_LOG_ERROR => LevelFilter::Error,
        BLIGHT_LOG_WARN => LevelFilter::Warn,
        BLIGHT_LOG_INFO => LevelFilter::Info,
        BLIGHT_LOG_DEBUG => LevelFilter::Debug,
        BLIGHT_LOG_TRACE => LevelFilter::Trace,
        _ => return None,
    })
}

/// `blight_log_params.level` of a line.
fn level_number(level: Level) -> c_int {
    match level {
        Level::Error => BLIGHT_LOG_ERROR,
        Level::Warn => BLIGHT_LOG_WARN,
        Level::Info => BLIGHT_LOG_INFO,
        Level::Debug => BLIGHT_LOG_DEBUG,
        Level::Trace => BLIGHT_LOG_TRACE,
    }
}

/// Lines of a lower priority than `level` are dropped from now on.
pub(crate) fn set_level(level: LevelFilter) {
    init();
    log::set_max_level(level);
}

/// Installs the logger once; after the first call, one atomic load.
#[inline]
pub(crate) fn init() {
    static INIT: OnceCell<()> = OnceCell::new();
    if INIT.get().is_none() {
        INIT.get_or_init(install);
    }
}

#[cold]
fn install() {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "?".into());
    if log::set_boxed_logger(Box::new(Logger { exe })).is_ok() {
        log::set_max_level(level_from_env());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(s: &str, end: &[u8]) -> Vec<u8> {
        let mut b = LineBuf::new();
        let _ = write!(b, "{s}");
        b.finish(end).to_vec()
    }

    #[test]
    fn short_lines_are_whole() {
        assert_eq!(finished("hello", b"\n"), b"hello\n");
        assert_eq!(finished("", b"\0"), b"\0");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary_and_say_so() {
        let long = "é".repeat(LINE_MAX); // 2 bytes each
        let out = finished(&long, b"\n");
        assert!(out.len() <= LINE_MAX);
        assert!(out.ends_with(b"...\n"));
        assert!(std::str::from_utf8(&out).is_ok());
        let exact = "a".repeat(LINE_MAX - 1);
        assert_eq!(finished(&exact, b"\n").len(), LINE_MAX);
        assert!(!finished(&exact, b"\n").ends_with(b"...\n"));
        let over = "a".repeat(LINE_MAX);
        assert!(finished(&over, b"\n").ends_with(b"...\n"));
    }

    #[test]
    fn levels_map_to_the_header_constants() {
        assert_eq!(level_filter(0), Some(LevelFilter::Off));
        assert_eq!(level_filter(2), Some(LevelFilter::Warn));
        assert_eq!(level_filter(5), Some(LevelFilter::Trace));
        assert_eq!(level_filter(6), None);
        assert_eq!(level_filter(-1), None);
        assert_eq!(level_number(Level::Error), 1);
        assert_eq!(level_number(Level::Trace), 5);
    }

    unsafe extern "C" fn ignore(_: *mut c_void, _: *const blight_log_params) {}
    unsafe extern "C" fn ignore_too(_: *mut c_void, _: *const blight_log_params) {}

    #[test]
    fn setting_the_same_pairs_again_allocates_nothing() {
        let mut a = 0u8;
        let mut b = 0u8;
        let pairs: [(LogFn, *mut c_void); 3] =
            [(ignore, (&raw mut a).cast()), (ignore, (&raw mut b).cast()), (ignore_too, (&raw mut a).cast())];
        for (f, u) in pairs {
            set_callback(Some(f), u).unwrap();
        }
        let n = sink_count();
        for _ in 0..100 {
            for (f, u) in pairs {
                set_callback(Some(f), u).unwrap();
                set_callback(None, ptr::null_mut()).unwrap();
            }
        }
        assert_eq!(sink_count(), n);
        assert!(CURRENT.load(Ordering::Acquire).is_null());
    }
}
