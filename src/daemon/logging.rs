//! Logging: tracing-subscriber, set up for the places a daemon's log ends up.
//!
//! - Standard error, the default in the foreground: plain text, colours only on a
//!   terminal, and no timestamps under systemd (JOURNAL_STREAM is set), because the
//!   journal stamps every line itself.
//! - A file (`-l` / `DebugLogFile`): appended to, with timestamps.
//! - syslog, in the background without a log file: standard error is /dev/null there.
//!
//! The level comes from `-d` / `DebugLevel` (0 info, 1 debug, 2 and above trace) unless
//! RUST_LOG is set, which wins; a reload can change `DebugLevel` on the fly.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer};

/// Where log lines go.
pub enum Target<'a> {
    Stderr,
    File(&'a Path),
    Syslog,
}

/// Lets a reload change the level.
pub struct LogHandle {
    filter: Option<reload::Handle<EnvFilter, tracing_subscriber::Registry>>,
    /// RUST_LOG was set: DebugLevel does not apply.
    from_env: bool,
}

pub fn level_for(debug_level: u32) -> &'static str {
    match debug_level {
        0 => "info",
        1 => "debug",
        _ => "trace",
    }
}

impl LogHandle {
    /// A handle that changes nothing (for a daemon embedded in a test).
    pub fn inert() -> LogHandle {
        LogHandle {
            filter: None,
            from_env: true,
        }
    }

    /// Applies a new DebugLevel, unless RUST_LOG decides.
    pub fn set_debug_level(&self, debug_level: u32) {
        if self.from_env {
            return;
        }
        if let Some(h) = &self.filter {
            if let Err(e) = h.reload(EnvFilter::new(level_for(debug_level))) {
                tracing::warn!("cannot change the log level: {e}");
            }
        }
    }
}

/// Installs the global subscriber. A second call (tests that run the daemon twice in one
/// process) keeps the first subscriber and returns a handle that changes nothing.
pub fn init(debug_level: u32, target: Target<'_>) -> io::Result<LogHandle> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let mut bad_env = None;
    let filter = match &env {
        Some(spec) => EnvFilter::try_new(spec).unwrap_or_else(|e| {
            bad_env = Some(format!("RUST_LOG={spec:?} ignored: {e}"));
            EnvFilter::new(level_for(debug_level))
        }),
        None => EnvFilter::new(level_for(debug_level)),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let layer = match target {
        Target::Stderr => {
            let journal = std::env::var_os("JOURNAL_STREAM").is_some();
            let fmt = fmt
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal() && !journal);
            if journal {
                fmt.without_time().boxed()
            } else {
                fmt.boxed()
            }
        }
        Target::File(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            fmt.with_writer(SharedFile(Arc::new(Mutex::new(file))))
                .with_ansi(false)
                .boxed()
        }
        Target::Syslog => fmt
            .with_writer(Syslog::new())
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok();
    if let Some(msg) = bad_env {
        tracing::warn!("{msg}");
    }
    Ok(LogHandle {
        filter: installed.then_some(handle),
        from_env: env.is_some(),
    })
}

#[derive(Clone)]
struct SharedFile(Arc<Mutex<File>>);

/// One formatted event per writer: the fmt layer formats into a buffer and writes it
/// whole, so lines from different events never interleave in the file.
impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = SharedFile;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// syslog over /dev/log, RFC 3164 framing, facility daemon. Lines are dropped when there
/// is no syslog daemon: logging must never stop the daemon.
#[derive(Clone)]
struct Syslog {
    sock: Option<Arc<UnixDatagram>>,
    pid: u32,
}

impl Syslog {
    fn new() -> Syslog {
        let sock = UnixDatagram::unbound().ok().map(Arc::new);
        Syslog {
            sock,
            pid: std::process::id(),
        }
    }
}

const LOG_DAEMON: u8 = 3 << 3;

fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

struct SyslogLine {
    sock: Option<Arc<UnixDatagram>>,
    header: String,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A runaway message must not grow memory: syslog truncates long lines anyway.
        let room = 8192usize.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        if let Some(sock) = &self.sock {
            let text = String::from_utf8_lossy(&self.buf);
            let msg = format!("{}{}", self.header, text.trim_end());
            let _ = sock.send_to(msg.as_bytes(), "/dev/log");
        }
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;
    fn make_writer(&'a self) -> SyslogLine {
        self.line(6)
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        self.line(severity(meta.level()))
    }
}

impl Syslog {
    fn line(&self, severity: u8) -> SyslogLine {
        SyslogLine {
            sock: self.sock.clone(),
            header: format!("<{}>mip6d[{}]: ", LOG_DAEMON | severity, self.pid),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_levels_map_to_tracing_levels() {
        assert_eq!(level_for(0), "info");
        assert_eq!(level_for(1), "debug");
        assert_eq!(level_for(10), "trace");
    }

    #[test]
    fn syslog_priorities_are_facility_daemon() {
        let s = Syslog { sock: None, pid: 7 };
        assert_eq!(s.line(severity(&Level::ERROR)).header, "<27>mip6d[7]: ");
        assert_eq!(s.line(severity(&Level::INFO)).header, "<30>mip6d[7]: ");
    }
}
