//! The stderr logger: `[pid:tid exe] Warning: ...` lines, as upstream prints them.
//!
//! The level comes from `BLIGHT_SOCKET_LOG` (`off`, `error`, `warn` (default), `info`,
//! `debug`, `trace`). The logger is installed on the first exported call, and only if the
//! host program has not installed a `log` logger of its own.
use log::{Level, LevelFilter, Log, Metadata, Record};
use once_cell::sync::OnceCell;
use std::io::Write;

/// Environment variable that sets the log level.
pub(crate) const LEVEL_ENV: &str = "BLIGHT_SOCKET_LOG";

struct StderrLogger {
    prefix_exe: String,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "Error",
            Level::Warn => "Warning",
            Level::Info => "Info",
            Level::Debug => "Debug",
            Level::Trace => "Trace",
        };
        let line = format!(
            "[{}:{} {}] {}: {}\n",
            std::process::id(),
            crate::sys::gettid(),
            self.prefix_exe,
            level,
            record.args()
        );
        // One write per line so that lines from several threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
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

/// Installs the logger once; cheap to call on every exported call.
pub fn init() {
    static INIT: OnceCell<()> = OnceCell::new();
    INIT.get_or_init(|| {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "?".into());
        let logger = Box::new(StderrLogger { prefix_exe: exe });
        if log::set_boxed_logger(logger).is_ok() {
            log::set_max_level(level_from_env());
        }
    });
}
