//! The control socket: a Unix stream socket that mip6ctl (or a script) talks to.
//!
//! Protocol: one JSON object per line in each direction. A request is
//! `{"cmd":"status"}` (or `bc`, `bul`, `stats`, `members`, `handoffs`, and
//! `{"cmd":"handoff","conn":"[CLIENT]:PORT","to":"NODE"}`); the answer is `{"ok":true,"data":…}` or
//! `{"ok":false,"error":"…"}`. A client may send several requests on one connection and
//! gets the answers in order. Nothing a client sends can stop the daemon: a bad line gets
//! an error answer and the connection stays usable; a line longer than [`MAX_REQUEST`]
//! gets an error and the connection is closed, because there is no telling where the next
//! request would start.
//!
//! Resources are bounded: at most [`MAX_CLIENTS`] connections, [`MAX_REQUEST`] bytes
//! buffered per request, [`MAX_PENDING_OUTPUT`] bytes of unread answers per client, and a
//! connection idle for [`IDLE_TIMEOUT`] is closed. Everything is non-blocking: a client
//! that stops reading never stalls the loop.

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const MAX_REQUEST: usize = 4096;
pub const MAX_CLIENTS: usize = 16;
pub const MAX_PENDING_OUTPUT: usize = 1 << 20;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection we are closing may keep sending before we stop listening.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How much a closing connection may send us in one go before we just drop it.
const MAX_DRAIN: usize = 1 << 20;

/// A control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Status,
    Bc,
    Bul,
    Stats,
    Members,
    /// Hand a connection off (arguments `conn`, `to`).
    Handoff,
    /// Recent handoffs.
    Handoffs,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Command::Status,
        Command::Bc,
        Command::Bul,
        Command::Stats,
        Command::Members,
        Command::Handoff,
        Command::Handoffs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Bc => "bc",
            Command::Bul => "bul",
            Command::Stats => "stats",
            Command::Members => "members",
            Command::Handoff => "handoff",
            Command::Handoffs => "handoffs",
        }
    }
}

fn known() -> String {
    Command::ALL
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Command, String> {
    parse_request_args(line).map(|(c, _)| c)
}

/// Parses one request line: the command and the whole object (its arguments).
pub fn parse_request_args(line: &[u8]) -> Result<(Command, Value), String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        format!(
            "bad request: not JSON ({e}); send one object per line, like {{\"cmd\":\"status\"}}"
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err("bad request: expected a JSON object like {\"cmd\":\"status\"}".into());
    };
    let Some(cmd) = obj.get("cmd") else {
        return Err("bad request: missing \"cmd\"".into());
    };
    let Some(cmd) = cmd.as_str() else {
        return Err("bad request: \"cmd\" must be a string".into());
    };
    let cmd = Command::ALL
        .into_iter()
        .find(|c| c.name() == cmd)
        .ok_or_else(|| {
            // Quote back at most a little of what we got: the error goes to the client
            // and into nothing else, but a megabyte of echo helps nobody.
            let shown: String = cmd.chars().take(40).collect();
            format!("unknown command {shown:?}; known commands: {}", known())
        })?;
    Ok((cmd, v))
}

pub fn ok_line(data: Value) -> String {
    let mut s = json!({"ok": true, "data": data}).to_string();
    s.push('\n');
    s
}

pub fn error_line(msg: &str) -> String {
    let mut s = json!({"ok": false, "error": msg}).to_string();
    s.push('\n');
    s
}

/// Sends one request on a blocking socket and reads one answer line. Shared by mip6ctl
/// and the start-up check for a live daemon.
pub fn request_blocking(
    stream: &std::os::unix::net::UnixStream,
    cmd: Command,
    limit: u64,
) -> io::Result<Value> {
    request_blocking_with(stream, cmd, json!({}), limit)
}

/// As [`request_blocking`], with arguments: the fields of `args` (an object) go into the
/// request beside `cmd`.
pub fn request_blocking_with(
    stream: &std::os::unix::net::UnixStream,
    cmd: Command,
    mut args: Value,
    limit: u64,
) -> io::Result<Value> {
    let mut w = stream;
    if !args.is_object() {
        args = json!({});
    }
    args["cmd"] = json!(cmd.name());
    w.write_all(format!("{args}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream.take(limit)).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            "the daemon closed the connection without answering",
        ));
    }
    serde_json::from_str(&line)
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("bad answer: {e}")))
}

/// Creates the listening socket at `path`, mode 0600.
///
/// An existing socket that a daemon answers on means another mip6d is running: refuse and
/// say which pid. A socket nobody answers on is left over from a crash: remove it. Anything
/// else at that path is not ours to remove.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let pid = request_blocking(&s, Command::Status, 1 << 20)
                    .ok()
                    .and_then(|v| v["data"]["pid"].as_u64());
                return Err(match pid {
                    Some(pid) => {
                        format!("another mip6d (pid {pid}) is already running on {shown}")
                    }
                    None => format!("another process is already listening on {shown}"),
                });
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!("removing stale control socket {shown}");
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale control socket {shown}: {e}"))?;
            }
            Err(e) => return Err(format!("cannot check the existing socket {shown}: {e}")),
        },
        Ok(_) => {
            return Err(format!(
                "{shown} exists and is not a socket; refusing to replace it"
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot check {shown}: {e}")),
    }
    // The socket must never exist with a looser mode, not even between bind and chmod:
    // create it under a umask that leaves only the owner's bits. The process is still
    // single-threaded here, so the process-wide umask affects nothing else.
    let bound = crate::sys::process::with_umask(0o177, || UnixListener::bind(path));
    let listener = bound.map_err(|e| {
        let why = match e.kind() {
            ErrorKind::PermissionDenied => {
                " (run mip6d as root, or choose a writable path with --control-socket)"
            }
            ErrorKind::NotFound => " (the directory does not exist)",
            _ => "",
        };
        format!("cannot create the control socket {shown}: {e}{why}")
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set the mode of {shown}: {e}"))?;
    Ok(listener)
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// No more requests will be read; close once the output is sent.
    closing: bool,
    /// The client shut its side down.
    eof: bool,
    /// Set when our side is shut down but the client may still be sending. Closing a Unix
    /// socket with unread data makes the client's next read fail with ECONNRESET, which
    /// could swallow our last answer, so we read and discard until its EOF or this time.
    drain_until: Option<Instant>,
    last_active: Instant,
}

impl Client {
    fn deadline(&self) -> Instant {
        self.drain_until.unwrap_or(self.last_active + IDLE_TIMEOUT)
    }
}

/// The control socket's own counters, handed to the responder for `stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Requests answered so far, this one included.
    pub served: u64,
    pub bad_requests: u64,
    pub clients: usize,
}

/// What the loop answers requests with.
pub type Responder<'a> = dyn FnMut(Command, &Value, Counters) -> Result<Value, String> + 'a;

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: HashMap<Token, Client>,
    /// Client tokens are never reused, so a late event for a closed client cannot reach
    /// a new one.
    next_token: usize,
    /// Requests answered (including error answers).
    pub served: u64,
    /// Requests refused as malformed or unknown.
    pub bad_requests: u64,
}

/// Tokens below this belong to the loop (signals, the listener).
pub const FIRST_CLIENT_TOKEN: usize = 16;

impl ControlServer {
    pub fn new(listener: UnixListener, path: PathBuf) -> ControlServer {
        ControlServer {
            listener,
            path,
            clients: HashMap::new(),
            next_token: FIRST_CLIENT_TOKEN,
            served: 0,
            bad_requests: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    pub fn owns(&self, token: Token) -> bool {
        self.clients.contains_key(&token)
    }

    /// Accepts every pending connection.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        // A fresh socket's send buffer is empty: this short write fits.
                        let _ = stream.write(error_line("too many clients; try again").as_bytes());
                        tracing::warn!(
                            "control socket: refused a client, {MAX_CLIENTS} already connected"
                        );
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if let Err(e) = registry.register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        tracing::warn!("control socket: cannot watch a client: {e}");
                        continue;
                    }
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            closing: false,
                            eof: false,
                            drain_until: None,
                            last_active: now,
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: keep serving the clients we have.
                    tracing::warn!("control socket: accept: {e}");
                    return;
                }
            }
        }
    }

    /// Handles readiness of one client: reads, answers whole lines, writes what it can.
    pub fn client_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        respond: &mut Responder<'_>,
    ) {
        let clients = self.clients.len();
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        let mut counters = Counters {
            served: self.served,
            bad_requests: self.bad_requests,
            clients,
        };
        let keep = serve(c, now, respond, &mut counters);
        self.served = counters.served;
        self.bad_requests = counters.bad_requests;
        if !keep {
            self.close(registry, token);
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// When the next idle client should be dropped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clients.values().map(Client::deadline).min()
    }

    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) {
        let idle: Vec<Token> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline() <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            tracing::debug!("control socket: closing an idle client");
            self.close(registry, t);
        }
    }

    pub fn close_all(&mut self, registry: &Registry) {
        let all: Vec<Token> = self.clients.keys().copied().collect();
        for t in all {
            self.close(registry, t);
        }
    }
}

/// Returns false when the connection should be closed.
fn serve(
    c: &mut Client,
    now: Instant,
    respond: &mut Responder<'_>,
    counters: &mut Counters,
) -> bool {
    let mut buf = [0u8; 4096];
    let mut discarded = 0;
    while !c.eof {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.eof = true;
                // A last request without its newline still gets its answer.
                if !c.closing && !c.input.is_empty() {
                    c.input.push(b'\n');
                    answer_lines(c, respond, counters);
                }
                c.closing = true;
            }
            Ok(n) if c.closing => {
                discarded += n;
                if discarded > MAX_DRAIN {
                    return false;
                }
            }
            Ok(n) => {
                c.last_active = now;
                c.input.extend_from_slice(&buf[..n]);
                answer_lines(c, respond, counters);
                if c.input.len() > MAX_REQUEST {
                    counters.served += 1;
                    counters.bad_requests += 1;
                    c.output.extend_from_slice(
                        error_line(&format!(
                            "request longer than {MAX_REQUEST} bytes without a newline"
                        ))
                        .as_bytes(),
                    );
                    c.input = Vec::new();
                    c.closing = true;
                }
                if c.output.len() > MAX_PENDING_OUTPUT {
                    // The client sends requests but does not read the answers.
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    while !c.output.is_empty() {
        match c.stream.write(&c.output) {
            Ok(0) => return false,
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // EPIPE (the client left; SIGPIPE is ignored) and anything else: drop it.
            Err(_) => return false,
        }
    }
    if c.closing {
        if c.eof {
            return false;
        }
        if c.drain_until.is_none() {
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            c.drain_until = Some(now + DRAIN_TIMEOUT);
        }
    }
    true
}

fn answer_lines(c: &mut Client, respond: &mut Responder<'_>, counters: &mut Counters) {
    while let Some(pos) = c.input.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = c.input.drain(..=pos).collect();
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        counters.served += 1;
        let answer = match parse_request_args(line) {
            Ok((cmd, args)) => match respond(cmd, &args, *counters) {
                Ok(data) => ok_line(data),
                Err(e) => error_line(&e),
            },
            Err(e) => {
                counters.bad_requests += 1;
                error_line(&e)
            }
        };
        c.output.extend_from_slice(answer.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request(br#"{"cmd":"status"}"#), Ok(Command::Status));
        assert_eq!(
            parse_request(br#" {"cmd" : "bul", "x": 1} "#),
            Ok(Command::Bul)
        );
        for (input, want) in [
            (&b"hello"[..], "not JSON"),
            (b"[1,2]", "expected a JSON object"),
            (b"{}", "missing \"cmd\""),
            (br#"{"cmd":5}"#, "must be a string"),
            (
                br#"{"cmd":"reboot"}"#,
                "unknown command \"reboot\"; known commands: status, bc, bul, stats, members, handoff, handoffs",
            ),
            (b"\xff\xfe", "not JSON"),
        ] {
            let e = parse_request(input).unwrap_err();
            assert!(e.contains(want), "{input:?}: {e}");
        }
    }

    #[test]
    fn answers_are_single_lines() {
        let ok = ok_line(json!({"a": "x\ny"}));
        assert_eq!(ok, "{\"data\":{\"a\":\"x\\ny\"},\"ok\":true}\n");
        let err = error_line("bad\nthing");
        assert_eq!(err.matches('\n').count(), 1);
        assert!(err.ends_with('\n'));
    }
}
