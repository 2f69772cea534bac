//! The mio event loop.
//!
//! One `Poll` watches the signalfd, the control socket and its clients, and the packet
//! sources of the protocol machines (`Machine::sources`: netfilter queues for the
//! correspondent node's user data path). Timers live in a [`Timers`] heap;
//! the loop sleeps until the next event or the earliest deadline, never longer and never
//! in a busy loop. After every wake-up each protocol machine is asked for its next
//! deadline, so a machine's timers change whenever its state does.

use super::control::{self, Command, ControlServer};
use super::logging::LogHandle;
use super::machine::{Ctx, Machine, MhCounters};
use super::notify::Notifier;
use super::pidfile;
use super::registry::{self, Registry};
use super::reload::{self, Overrides, Source};
use super::timers::Timers;
use crate::config::Config;
use crate::sys::signals::{self, Received, Signal, Signals};
use crate::wire::mh::mh_type;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Source,
    pub overrides: Overrides,
    pub foreground: bool,
    pub pid_file: Option<PathBuf>,
    pub control_socket: PathBuf,
}

const SIGNALS: Token = Token(0);
const CONTROL: Token = Token(1);
/// Machines' packet sources get tokens from here up; control clients count up from
/// `control::FIRST_CLIENT_TOKEN` and never get near it.
const FIRST_SOURCE_TOKEN: usize = usize::MAX / 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TimerKey {
    Watchdog,
    /// Idle control clients.
    Control,
    /// Protocol machine number n.
    Machine(usize),
}

/// Mobility Header message types we count, in type order (RFC 6275 §6.1).
const MH_TYPES: [(u8, &str); 8] = [
    (mh_type::BINDING_REFRESH_REQUEST, "BRR"),
    (mh_type::HOME_TEST_INIT, "HoTI"),
    (mh_type::CARE_OF_TEST_INIT, "CoTI"),
    (mh_type::HOME_TEST, "HoT"),
    (mh_type::CARE_OF_TEST, "CoT"),
    (mh_type::BINDING_UPDATE, "BU"),
    (mh_type::BINDING_ACK, "BA"),
    (mh_type::BINDING_ERROR, "BE"),
];

struct ReloadRecord {
    at_unix: u64,
    ok: bool,
    error: Option<String>,
    warnings: Vec<String>,
    applied: Vec<String>,
    restart_needed: Vec<String>,
}

/// Everything `mip6ctl` can see that is not a socket.
struct State {
    settings: Settings,
    config: Config,
    started: Instant,
    started_unix: u64,
    reloads: u64,
    reloads_failed: u64,
    last_reload: Option<ReloadRecord>,
    /// Statements changed in the file that wait for a restart (from the last good reload).
    restart_needed: Vec<String>,
    /// Mobility Header messages by type: filled in by the roles.
    mh: MhCounters,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Daemon {
    poll: Poll,
    signals: Signals,
    control: ControlServer,
    timers: Timers<TimerKey>,
    machines: Vec<Box<dyn Machine>>,
    /// Packet sources: token → (machine index, descriptor).
    sources: HashMap<Token, (usize, RawFd)>,
    registry: Registry,
    notifier: Notifier,
    log: LogHandle,
    state: State,
    events: Events,
}

impl Daemon {
    /// Sets up signals, the pid file and the control socket. On error, whatever was
    /// already created is removed again (the registry is dropped on the way out).
    pub fn start(settings: Settings, config: Config, log: LogHandle) -> Result<Daemon, String> {
        signals::ignore_sigpipe().map_err(|e| format!("cannot ignore SIGPIPE: {e}"))?;
        // Block the signals before creating anything: a SIGTERM that arrives during
        // start-up then waits for the loop and still gets a clean shutdown.
        let mut signals = Signals::new().map_err(|e| format!("cannot set up signals: {e}"))?;
        let mut registry = Registry::new();
        if let Some(p) = &settings.pid_file {
            pidfile::create(p)?;
            registry.record(
                format!("pid file {}", p.display()),
                registry::remove_file_undo(p.clone()),
            );
        }
        let listener = control::bind(&settings.control_socket)?;
        registry.record(
            format!("control socket {}", settings.control_socket.display()),
            registry::remove_file_undo(settings.control_socket.clone()),
        );
        let mut control = ControlServer::new(listener, settings.control_socket.clone());
        let poll = Poll::new().map_err(|e| format!("cannot create the event loop: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        control
            .register(poll.registry(), CONTROL)
            .map_err(|e| format!("cannot watch the control socket: {e}"))?;
        Ok(Daemon {
            poll,
            signals,
            control,
            timers: Timers::new(),
            machines: Vec::new(),
            sources: HashMap::new(),
            registry,
            notifier: Notifier::new(),
            log,
            events: Events::with_capacity(64),
            state: State {
                settings,
                config,
                started: Instant::now(),
                started_unix: unix_now(),
                reloads: 0,
                reloads_failed: 0,
                last_reload: None,
                restart_needed: Vec::new(),
                mh: MhCounters::default(),
            },
        })
    }

    /// Adds a protocol machine; the loop drives its timers and watches its packet
    /// sources from now on. Fails if a source cannot be watched (the machine is not
    /// added then, and the caller drops it, closing its sockets).
    pub fn add_machine(&mut self, m: Box<dyn Machine>) -> Result<(), String> {
        let index = self.machines.len();
        let mut added = Vec::new();
        for fd in m.sources() {
            let token = Token(FIRST_SOURCE_TOKEN + self.sources.len() + added.len());
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut SourceFd(&fd), token, Interest::READABLE)
            {
                for (_, fd) in &added {
                    let _ = self.poll.registry().deregister(&mut SourceFd(fd));
                }
                return Err(format!("cannot watch a socket of {}: {e}", m.name()));
            }
            added.push((token, fd));
        }
        for (token, fd) in added {
            self.sources.insert(token, (index, fd));
        }
        self.machines.push(m);
        Ok(())
    }

    /// The control socket's path (other sockets of the daemon are named after it).
    pub fn control_socket(&self) -> &std::path::Path {
        &self.state.settings.control_socket
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The registry, for whoever installs kernel objects on the daemon's behalf.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    fn status_line(&self) -> String {
        status_line(&self.state, &self.machines)
    }

    /// Runs until SIGTERM or SIGINT, then removes everything the daemon installed.
    pub fn run(mut self) -> Result<(), String> {
        self.announce();
        let stop = loop {
            match self.turn() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => {
                    self.shutdown();
                    return Err(e);
                }
            }
        };
        let from = if stop.sender == 0 {
            String::new()
        } else {
            format!(" from pid {}", stop.sender)
        };
        tracing::info!("{}{from}: shutting down", stop.signal.name());
        let errors = self.shutdown();
        if errors == 0 {
            tracing::info!("stopped; everything the daemon installed was removed");
            Ok(())
        } else {
            Err(format!(
                "{errors} object(s) could not be removed; see the log above"
            ))
        }
    }

    /// Logs the start, arms the watchdog and tells systemd the daemon is ready.
    fn announce(&mut self) {
        if let Some(iv) = self.notifier.watchdog_interval() {
            self.notifier.watchdog();
            self.timers.set(TimerKey::Watchdog, Instant::now() + iv);
        }
        let c = &self.state.config;
        tracing::info!(
            "mip6d {} started: {} role, pid {}, control socket {}, datapath {}",
            env!("CARGO_PKG_VERSION"),
            reload::role_name(c.node_config),
            std::process::id(),
            self.state.settings.control_socket.display(),
            reload::datapath_name(c.datapath),
        );
        self.notifier.ready(&self.status_line());
    }

    /// One pass of the loop: sleeps until an event or the earliest deadline, then handles
    /// what happened. Returns the signal that asks to stop, if one came.
    pub fn turn(&mut self) -> Result<Option<Received>, String> {
        for (i, m) in self.machines.iter().enumerate() {
            self.timers.set_opt(TimerKey::Machine(i), m.poll_timeout());
        }
        self.timers
            .set_opt(TimerKey::Control, self.control.poll_timeout());
        let timeout = self.timers.timeout(Instant::now());
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(format!("event loop: {e}"));
        }
        let now = Instant::now();
        let mut stop = None;
        for ev in self.events.iter() {
            match ev.token() {
                SIGNALS => match self.signals.read() {
                    Ok(list) => {
                        for s in list {
                            match s.signal {
                                Signal::Hup => {
                                    self.notifier.reloading();
                                    reload_into(&mut self.state, &self.log, s.sender);
                                    self.notifier
                                        .reloaded(&status_line(&self.state, &self.machines));
                                }
                                Signal::Term | Signal::Int => stop = Some(s),
                            }
                        }
                    }
                    Err(e) => tracing::warn!("reading signals: {e}"),
                },
                CONTROL => self.control.accept(self.poll.registry(), now),
                token if self.sources.contains_key(&token) => {
                    let (i, fd) = self.sources[&token];
                    if let Some(m) = self.machines.get_mut(i) {
                        let mut ctx = Ctx {
                            registry: &mut self.registry,
                            mh: &mut self.state.mh,
                        };
                        m.on_readable(fd, now, &mut ctx);
                    }
                }
                token => {
                    let state = &mut self.state;
                    let machines = &mut self.machines;
                    let installed = self.registry.installed();
                    self.control.client_ready(
                        self.poll.registry(),
                        token,
                        now,
                        &mut |cmd, args, cs| match cmd {
                            Command::Handoff | Command::Handoffs => {
                                machine_request(machines, cmd, args)
                            }
                            _ => Ok(state.respond(cmd, cs, machines, &installed)),
                        },
                    );
                }
            }
        }
        for key in self.timers.expired(now) {
            match key {
                TimerKey::Watchdog => {
                    self.notifier.watchdog();
                    if let Some(iv) = self.notifier.watchdog_interval() {
                        self.timers.set(TimerKey::Watchdog, now + iv);
                    }
                }
                TimerKey::Control => self.control.handle_timeout(self.poll.registry(), now),
                TimerKey::Machine(i) => {
                    if let Some(m) = self.machines.get_mut(i) {
                        m.handle_timeout(now);
                    }
                }
            }
        }
        // Whatever packets or timers made the machines decide is applied now, before the
        // next sleep, so a reply never waits for an unrelated wake-up.
        for m in &mut self.machines {
            let mut ctx = Ctx {
                registry: &mut self.registry,
                mh: &mut self.state.mh,
            };
            m.apply_actions(now, &mut ctx);
        }
        Ok(stop)
    }

    /// Tells systemd, closes clients, undoes the registry; returns how many undos failed.
    fn shutdown(&mut self) -> usize {
        self.notifier.stopping();
        self.control.close_all(self.poll.registry());
        // Rules first (the registry), then the machines' sockets: a queue rule whose
        // listener is gone would drop every packet it matches.
        let errors = self.registry.undo_all().len();
        self.sources.clear();
        self.machines.clear();
        errors
    }
}

/// A request only machines answer: `handoffs` gathers every machine's list, `handoff`
/// goes to the first machine that takes it.
fn machine_request(
    machines: &mut [Box<dyn Machine>],
    cmd: Command,
    args: &Value,
) -> Result<Value, String> {
    let now = Instant::now();
    let mut answers = machines
        .iter_mut()
        .filter_map(|m| m.request(cmd, args, now));
    match cmd {
        Command::Handoffs => {
            let mut all = Vec::new();
            for a in answers {
                if let Some(list) = a?["handoffs"].as_array() {
                    all.extend(list.iter().cloned());
                }
            }
            Ok(json!({ "handoffs": all }))
        }
        _ => answers.next().unwrap_or_else(|| {
            Err("no DistributedServer block on this node hands off connections (a block needs LocalAddress)".to_string())
        }),
    }
}

fn status_line(state: &State, machines: &[Box<dyn Machine>]) -> String {
    let now = Instant::now();
    let bindings: usize = machines.iter().map(|m| m.binding_cache(now).len()).sum();
    let mut s = format!(
        "{} role: {bindings} bindings",
        reload::role_name(state.config.node_config)
    );
    if let Some(r) = &state.last_reload {
        if !r.ok {
            s.push_str("; last reload failed, running the previous configuration");
        }
    }
    if !state.restart_needed.is_empty() {
        s.push_str("; restart needed for ");
        s.push_str(&state.restart_needed.join(", "));
    }
    s
}

/// SIGHUP: reads the file again and applies what can change (see `reload`).
fn reload_into(state: &mut State, log: &LogHandle, sender: u32) {
    let path = state.settings.source.path.display().to_string();
    tracing::info!("SIGHUP from pid {sender}: reloading {path}");
    state.reloads += 1;
    let record = match reload::load(&state.settings.source, &state.settings.overrides) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            let (merged, m) = reload::merge(&state.config, loaded.config);
            log.set_debug_level(merged.debug_level);
            if m.applied.is_empty() {
                tracing::info!("reload: no change takes effect");
            } else {
                tracing::info!("reload: applied {}", m.applied.join(", "));
            }
            for r in &m.restart_needed {
                tracing::warn!("reload: {r} needs a restart to take effect");
            }
            state.config = merged;
            state.restart_needed = m.restart_needed.clone();
            ReloadRecord {
                at_unix: unix_now(),
                ok: true,
                error: None,
                warnings: loaded.warnings,
                applied: m.applied,
                restart_needed: m.restart_needed,
            }
        }
        Err(e) => {
            state.reloads_failed += 1;
            tracing::error!("reload failed; still running the previous configuration:\n{e}");
            ReloadRecord {
                at_unix: unix_now(),
                ok: false,
                error: Some(e),
                warnings: Vec::new(),
                applied: Vec::new(),
                restart_needed: Vec::new(),
            }
        }
    };
    state.last_reload = Some(record);
}

impl State {
    fn respond(
        &mut self,
        cmd: Command,
        cs: control::Counters,
        machines: &[Box<dyn Machine>],
        installed: &[String],
    ) -> Value {
        let now = Instant::now();
        match cmd {
            Command::Status => {
                let c = &self.config;
                let s = &self.settings;
                let last = self.last_reload.as_ref().map(|r| {
                    json!({
                        "ok": r.ok,
                        "at": r.at_unix,
                        "error": r.error,
                        "warnings": r.warnings,
                        "applied": r.applied,
                        "restart_needed": r.restart_needed,
                    })
                });
                json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "pid": std::process::id(),
                    "role": reload::role_name(c.node_config),
                    "started": self.started_unix,
                    "uptime": self.started.elapsed().as_secs(),
                    "config_file": s.source.path.display().to_string(),
                    "config_file_found": s.source.explicit || s.source.path.exists(),
                    "datapath": reload::datapath_name(c.datapath),
                    "debug_level": c.debug_level,
                    "do_route_optimization_cn": c.do_route_optimization_cn,
                    "foreground": s.foreground,
                    "control_socket": s.control_socket.display().to_string(),
                    "pid_file": s.pid_file.as_ref().map(|p| p.display().to_string()),
                    "reloads": self.reloads,
                    "last_reload": last,
                    "restart_needed": self.restart_needed,
                    "machines": machines.iter().map(|m| m.name().to_string()).collect::<Vec<_>>(),
                    "roles": machines
                        .iter()
                        .filter(|m| !m.status().is_null())
                        .map(|m| (m.name().to_string(), m.status()))
                        .collect::<serde_json::Map<_, _>>(),
                    "installed": installed,
                })
            }
            Command::Bc => json!({
                "entries": machines
                    .iter()
                    .flat_map(|m| m.binding_cache(now))
                    .map(|e| e.to_json())
                    .collect::<Vec<_>>(),
            }),
            Command::Bul => json!({
                "entries": machines
                    .iter()
                    .flat_map(|m| m.binding_update_list(now))
                    .map(|e| e.to_json())
                    .collect::<Vec<_>>(),
            }),
            Command::Members => json!({
                "servers": machines
                    .iter()
                    .map(|m| m.members(now))
                    .filter(|v| !v.is_null())
                    .collect::<Vec<_>>(),
            }),
            // Answered by the machines (`machine_request`).
            Command::Handoff | Command::Handoffs => Value::Null,
            Command::Stats => json!({
                "mobility_header": MH_TYPES
                    .iter()
                    .map(|(t, name)| json!({
                        "type": t,
                        "name": name,
                        "received": self.mh.received[usize::from(*t)],
                        "sent": self.mh.sent[usize::from(*t)],
                    }))
                    .collect::<Vec<_>>(),
                "mobility_header_unknown_received": self.mh.received_unknown,
                "control_requests": cs.served,
                "control_bad_requests": cs.bad_requests,
                "control_clients": cs.clients,
                "reloads": self.reloads,
                "reloads_failed": self.reloads_failed,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    /// A machine that wants to be woken at `next` and records when it was.
    struct Alarm {
        next: Rc<RefCell<Option<Instant>>>,
        woken: Rc<RefCell<Vec<Instant>>>,
    }

    impl Machine for Alarm {
        fn name(&self) -> &str {
            "alarm"
        }
        fn poll_timeout(&self) -> Option<Instant> {
            *self.next.borrow()
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.woken.borrow_mut().push(now);
            *self.next.borrow_mut() = None;
        }
    }

    fn settings(dir: &std::path::Path, pid_file: Option<PathBuf>) -> Settings {
        Settings {
            source: Source {
                path: dir.join("none.conf"),
                explicit: false,
            },
            overrides: Overrides::default(),
            foreground: true,
            pid_file,
            control_socket: dir.join("s.sock"),
        }
    }

    fn daemon(name: &str) -> (Daemon, PathBuf) {
        let dir = std::env::temp_dir().join(format!("mip6d-loop-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = Daemon::start(settings(&dir, None), Config::default(), LogHandle::inert()).unwrap();
        (d, dir)
    }

    #[test]
    fn machine_timers_wake_the_loop_on_time_and_not_before() {
        let (mut d, dir) = daemon("alarm");
        let next = Rc::new(RefCell::new(None));
        let woken = Rc::new(RefCell::new(Vec::new()));
        d.add_machine(Box::new(Alarm {
            next: next.clone(),
            woken: woken.clone(),
        }))
        .unwrap();
        for delay in [Duration::from_millis(60), Duration::from_millis(20)] {
            let start = Instant::now();
            let deadline = start + delay;
            *next.borrow_mut() = Some(deadline);
            // One turn sleeps until the deadline: nothing else can wake it.
            assert!(d.turn().unwrap().is_none());
            let elapsed = start.elapsed();
            assert!(elapsed >= delay, "woke early: {elapsed:?} < {delay:?}");
            assert!(
                elapsed < delay + Duration::from_secs(2),
                "woke late: {elapsed:?}"
            );
            let w = woken.borrow();
            assert!(*w.last().unwrap() >= deadline);
        }
        assert_eq!(woken.borrow().len(), 2);
        assert_eq!(d.registry.installed().len(), 1, "the control socket");
        drop(d);
        assert!(
            !dir.join("s.sock").exists(),
            "dropping the daemon removes its socket"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A machine with one packet source: it reads what arrives, counts it as a received
    /// MH of type 5 (BU), and on `apply_actions` installs one object in the registry per
    /// datagram read, as a role installs a rule per binding.
    struct Reader {
        sock: std::os::unix::net::UnixDatagram,
        got: Rc<RefCell<Vec<Vec<u8>>>>,
        pending: usize,
    }

    impl Machine for Reader {
        fn name(&self) -> &str {
            "reader"
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn sources(&self) -> Vec<RawFd> {
            use std::os::fd::AsRawFd;
            vec![self.sock.as_raw_fd()]
        }
        fn on_readable(&mut self, _fd: RawFd, _now: Instant, ctx: &mut Ctx<'_>) {
            let mut buf = [0u8; 64];
            // Edge-triggered: drain.
            while let Ok(n) = self.sock.recv(&mut buf) {
                self.got.borrow_mut().push(buf[..n].to_vec());
                ctx.mh.count_received(mh_type::BINDING_UPDATE);
                self.pending += 1;
            }
        }
        fn apply_actions(&mut self, _now: Instant, ctx: &mut Ctx<'_>) {
            for _ in 0..std::mem::take(&mut self.pending) {
                ctx.registry.record("object", || Ok(()));
            }
        }
    }

    #[test]
    fn packet_sources_wake_the_loop_and_actions_reach_the_registry() {
        let (mut d, dir) = daemon("reader");
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        d.add_machine(Box::new(Reader {
            sock: b,
            got: got.clone(),
            pending: 0,
        }))
        .unwrap();
        a.send(b"one").unwrap();
        a.send(b"two").unwrap();
        // No timer is armed: only the source can end this turn.
        let start = Instant::now();
        assert!(d.turn().unwrap().is_none());
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(*got.borrow(), [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(d.state.mh.received[usize::from(mh_type::BINDING_UPDATE)], 2);
        // The control socket plus one object per datagram.
        assert_eq!(d.registry.installed().len(), 3);
        drop(d);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_start_leaves_nothing_behind() {
        let (first, dir) = daemon("twice");
        // The first daemon's listener takes the connection into its backlog, but nobody
        // turns its loop, so the check gets no answer and reports another process on the
        // socket. The pid file, made before the socket, must be removed again.
        let e = Daemon::start(
            settings(&dir, Some(dir.join("p.pid"))),
            Config::default(),
            LogHandle::inert(),
        )
        .err()
        .unwrap();
        assert!(e.contains("already listening on"), "{e}");
        assert!(!dir.join("p.pid").exists(), "the pid file was undone");
        drop(first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
