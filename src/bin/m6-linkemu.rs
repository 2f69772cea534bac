//! m6-linkemu: the testbed's userspace link emulator, for kernels without `tc netem`.
//!
//! One process per link. It holds both ends of the link as TAP devices — the router's
//! interface in its own namespace and the node's in `--node-netns` — and forwards every
//! Ethernet frame between them through a [`Duplex`] of emulated directions: loss, a
//! bounded queue, a token bucket and a delay line (`mip6d::linkemu`). One poll loop, one
//! timerfd armed at the next release time in nanoseconds, and a control socket for
//! changes at run time. `testbed/run up --emulator user` starts it; `testbed/run link`
//! talks to it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use mip6d::linkemu::ctl::Duplex;
use mip6d::linkemu::{Link, Params};
use mip6d::sys::netns;
use mip6d::sys::signals::{Signal, Signals};
use mip6d::sys::tap::Tap;
use mip6d::sys::timer::{monotonic_ns, set_realtime, set_timer_slack_ns, TimerFd};

#[derive(Parser)]
#[command(
    name = "m6-linkemu",
    version,
    about = "Userspace link emulator for the mip6d namespace testbed (delay, jitter, rate, loss, queue per direction)",
    after_help = "PARAMETERS (--up, --down, and `ctl set`): space-separated key=value words\n  \
        delay=25ms  jitter=1ms  rate=2000kbit  burst=BYTES  loss=1%  ge=P,R,1-H,1-K  queue=FRAMES\n  \
        bare numbers are ms, kbit/s and percent; rate=0 is unlimited; ge= is Gilbert-Elliott loss\n  \
        as netem's `loss gemodel` (percent). up = node -> router, down = router -> node.\n\n\
        CONTROL REQUESTS (ctl): show | set up|down|both WORDS... | clear up|down|both\n\n\
        EXAMPLE\n  ip netns exec m6-router m6-linkemu run --link cnet --node-netns m6-client --ctl /tmp/cnet.sock &\n  \
        m6-linkemu ctl --socket /tmp/cnet.sock set both delay=25ms rate=2mbit\n  \
        m6-linkemu ctl --socket /tmp/cnet.sock show"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward frames between the router's and the node's TAP device of one link.
    Run(RunArgs),
    /// Send one request to a running emulator and print its reply (exit 1 on error).
    Ctl {
        /// The emulator's control socket (`run --ctl`).
        #[arg(long)]
        socket: PathBuf,
        /// show | set DIR WORDS... | clear DIR
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        request: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The link's name; also the default name of both TAP devices.
    #[arg(long)]
    link: String,
    /// The router's TAP device, in the namespace the emulator runs in [default: LINK].
    #[arg(long)]
    router_tap: Option<String>,
    /// The node's TAP device [default: LINK].
    #[arg(long)]
    node_tap: Option<String>,
    /// Namespace (`ip netns` name) of the node's TAP device [default: this one].
    #[arg(long)]
    node_netns: Option<String>,
    /// Unix socket to listen on for control requests.
    #[arg(long)]
    ctl: PathBuf,
    /// Seed of the loss and jitter draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run under SCHED_FIFO at this priority (1-99; 0: ordinary scheduling), so timer
    /// deadlines hold while other processes load the CPUs.
    #[arg(long, default_value_t = 0)]
    realtime: i32,
    /// Initial parameters node -> router.
    #[arg(long, default_value = "")]
    up: String,
    /// Initial parameters router -> node.
    #[arg(long, default_value = "")]
    down: String,
}

const ROUTER: Token = Token(0);
const NODE: Token = Token(1);
const TIMER: Token = Token(2);
const CTL: Token = Token(3);
const SIGNALS: Token = Token(4);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => run(args),
        Cmd::Ctl { socket, request } => ctl(&socket, &request.join(" ")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("m6-linkemu: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ctl(socket: &Path, request: &str) -> Result<ExitCode, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "{}: {e} (is the emulator running? `testbed/run status`)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("reply: {e}"))?;
    let (body, last) = reply
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", reply.trim_end()));
    if !body.is_empty() {
        println!("{body}");
    }
    if last == "ok" {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("m6-linkemu: {last}");
        Ok(ExitCode::FAILURE)
    }
}

fn params(words: &str, what: &str) -> Result<Params, String> {
    let mut p = Params::default();
    p.apply(words.split_whitespace())
        .map_err(|e| format!("--{what}: {e}"))?;
    Ok(p)
}

fn run(a: RunArgs) -> Result<ExitCode, String> {
    // Before any thread exists (the namespace hop below is one), so none takes a signal
    // meant for the signalfd.
    let mut signals = Signals::new().map_err(|e| format!("signalfd: {e}"))?;
    let mut duplex: Duplex<Vec<u8>> =
        Duplex::new(params(&a.up, "up")?, params(&a.down, "down")?, a.seed);
    // Timers fire within the kernel's slack (50 µs by default) of their deadline; 1 ns
    // asks for the deadline itself, at the cost of no batching with other wakeups.
    let _ = set_timer_slack_ns(1);
    if a.realtime > 0 {
        if let Err(e) = set_realtime(a.realtime) {
            eprintln!(
                "m6-linkemu: SCHED_FIFO {}: {e}; delays may stretch under load",
                a.realtime
            );
        }
    }

    let router_name = a.router_tap.unwrap_or_else(|| a.link.clone());
    let node_name = a.node_tap.unwrap_or_else(|| a.link.clone());
    let router = Tap::open(&router_name).map_err(|e| format!("TAP {router_name}: {e}"))?;
    let node = match &a.node_netns {
        None => Tap::open(&node_name),
        Some(ns) => {
            let name = node_name.clone();
            netns::run_in(ns, move || Tap::open(&name)).and_then(|r| r)
        }
    }
    .map_err(|e| format!("TAP {node_name} in {:?}: {e}", a.node_netns))?;

    let _ = std::fs::remove_file(&a.ctl);
    let listener =
        UnixListener::bind(&a.ctl).map_err(|e| format!("bind {}: {e}", a.ctl.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let timer = TimerFd::new().map_err(|e| format!("timerfd: {e}"))?;

    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let reg = poll.registry();
    for (fd, token) in [
        (router.as_raw_fd(), ROUTER),
        (node.as_raw_fd(), NODE),
        (timer.as_raw_fd(), TIMER),
        (listener.as_raw_fd(), CTL),
    ] {
        reg.register(&mut SourceFd(&fd), token, Interest::READABLE)
            .map_err(|e| format!("poll register: {e}"))?;
    }
    reg.register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("poll register: {e}"))?;
    eprintln!(
        "m6-linkemu: {} ready (router {router_name}, node {node_name}{}), control {}",
        a.link,
        a.node_netns
            .as_deref()
            .map(|n| format!(" in {n}"))
            .unwrap_or_default(),
        a.ctl.display()
    );

    let mut buf = vec![0u8; 65536];
    let mut events = Events::with_capacity(16);
    // Frames the kernel refused (EIO while the receiving interface is down).
    let mut write_errors = [0u64; 2];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        for ev in events.iter() {
            match ev.token() {
                ROUTER => pump(&router, &mut duplex.down, &mut buf),
                NODE => pump(&node, &mut duplex.up, &mut buf),
                TIMER => timer.drain(),
                CTL => serve(&listener, &mut duplex, write_errors),
                SIGNALS => {
                    let got = signals.read().unwrap_or_default();
                    if got
                        .iter()
                        .any(|r| matches!(r.signal, Signal::Term | Signal::Int))
                    {
                        let _ = std::fs::remove_file(&a.ctl);
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                _ => {}
            }
        }
        loop {
            let now = monotonic_ns();
            release(&mut duplex.up, &router, now, &mut write_errors[0]);
            release(&mut duplex.down, &node, now, &mut write_errors[1]);
            let next = match (duplex.up.poll_timeout(), duplex.down.poll_timeout()) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            // Arming a timer for a time already past would cost a wakeup for nothing.
            if next.is_some_and(|t| t <= monotonic_ns()) {
                continue;
            }
            timer
                .set_at(next)
                .map_err(|e| format!("timerfd_settime: {e}"))?;
            break;
        }
    }
}

/// Reads every waiting frame from `tap` into `link` (the poll is edge-triggered).
fn pump(tap: &Tap, link: &mut Link<Vec<u8>>, buf: &mut [u8]) {
    loop {
        match tap.recv(buf) {
            Ok(n) => {
                link.enqueue(buf[..n].to_vec(), monotonic_ns());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock, or EIO/EBADFD while the interface goes away: nothing to read.
            Err(_) => return,
        }
    }
}

fn release(link: &mut Link<Vec<u8>>, tap: &Tap, now: u64, errors: &mut u64) {
    while let Some(frame) = link.poll_release(now) {
        if tap.send(&frame).is_err() {
            *errors += 1;
        }
    }
}

/// Answers every waiting control connection: one request line each.
fn serve(listener: &UnixListener, duplex: &mut Duplex<Vec<u8>>, write_errors: [u64; 2]) {
    while let Ok((stream, _)) = listener.accept() {
        // The client (`m6-linkemu ctl`) writes its line right after connecting; the
        // timeout only bounds how long a stuck client could hold up the frames.
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut line = String::new();
        let mut reader = BufReader::new((&stream).take(4096));
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let mut reply = duplex.handle(&line, monotonic_ns());
        if line.trim() == "show" {
            if let Some(body) = reply.strip_suffix("ok\n") {
                reply = format!(
                    "{body}write_errors up={} down={}\nok\n",
                    write_errors[0], write_errors[1]
                );
            }
        }
        let _ = (&stream).write_all(reply.as_bytes());
    }
}
