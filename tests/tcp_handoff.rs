//! Live TCP handoff between two server namespaces, with the crate's own `TCP_REPAIR`
//! surgery, network lock, connection-state encoding and handoff protocol (sealed with
//! `crypto::auth`) — everything but the MIPv6 redirect, for which the router's host route
//! to the service address stands in (switched by the acceptor after Commit, before it
//! activates the socket).
//!
//! ```text
//!  client ──── router ──── donor    (fd00:5e::1 on lo)
//!                 └─────── acceptor (fd00:5e::1 on lo)
//! ```
//! The client sends a request the servers never read before the last hop (it travels in
//! the receive queue), downloads N bytes (each node sends its share, then hands off), then
//! uploads more bytes after the handoffs; checked: SHA-256 of the download, the request
//! and the upload as the last node reads them, and zero resets in the client's namespace.

#[path = "support/stream.rs"]
mod stream;
#[path = "support/testbed.rs"]
mod testbed;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mip6d::config::model::HandoffDrain;
use mip6d::crypto::auth::{CounterSource, ReplayWindow, SharedKey};
use mip6d::ds::conn_state::Limits;
use mip6d::ds::drain::Drain;
use mip6d::ds::handoff::{
    self, Acceptor, AcceptorAction, Donor, DonorAction, Message, Outcome, RedirectTimes,
    RollbackCause, Timeouts,
};
use mip6d::ds::phases::{PhaseTime, Phases};
use mip6d::sys::{netlock::NetLock, netns, tcp_repair};
use stream::{sha256, stream};
use testbed::{ip_netns, require, Tool};

const SVC: &str = "fd00:5e::1";
const PORT: u16 = 8000;
const CONTROL_PORT: u16 = 7781;
const REQUEST_LEN: usize = 777;
const UPLOAD_LEN: usize = 333_333;

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {}", testbed::text(&out));
}

/// The four namespaces; dropping the guard deletes them, also after a failed assertion.
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    fn up(tag: &str) -> Net {
        let net = Net {
            prefix: format!("trp{}{tag}", std::process::id() % 100_000),
        };
        for n in ["c", "r", "d", "a"] {
            let ns = net.ns(n);
            run(&["ip", "netns", "add", &ns]);
            // Before any link exists: a tentative link-local loses the first forwarded
            // packets (tcp-repair.md, pitfall 1).
            for k in ["all", "default"] {
                ip_netns(
                    &ns,
                    &["sysctl", "-qw", &format!("net.ipv6.conf.{k}.accept_dad=0")],
                )
                .unwrap();
            }
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let r = net.ns("r");
        ip_netns(&r, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]).unwrap();
        for (n, net6, rif) in [("c", "c", "rc"), ("d", "d", "rd"), ("a", "a", "ra")] {
            let ns = net.ns(n);
            let host = if n == "c" { "1" } else { "2" };
            run(&[
                "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", rif,
                "netns", &r,
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("fd00:{net6}::{host}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            run(&[
                "ip",
                "-n",
                &r,
                "addr",
                "add",
                &format!("fd00:{net6}::ff/64"),
                "dev",
                rif,
                "nodad",
            ]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &r, "link", "set", rif, "up"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd00:{net6}::ff"),
            ]);
            if n != "c" {
                run(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{SVC}/128"),
                    "dev",
                    "lo",
                    "nodad",
                ]);
            }
        }
        net.route_to("fd00:d::2");
        net
    }

    fn route_to(&self, via: &str) {
        run(&[
            "ip",
            "-n",
            &self.ns("r"),
            "-6",
            "route",
            "replace",
            &format!("{SVC}/128"),
            "via",
            via,
        ]);
    }

    /// Tcp and TcpExt counters of the client's namespace.
    fn client_counters(&self) -> std::collections::HashMap<String, u64> {
        let mut m = std::collections::HashMap::new();
        for file in ["/proc/net/snmp", "/proc/net/netstat"] {
            let text = ip_netns(&self.ns("c"), &["cat", file]).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                if let [head, vals] = pair {
                    let proto = head.split(':').next().unwrap_or("");
                    for (k, v) in head.split_whitespace().zip(vals.split_whitespace()).skip(1) {
                        if let Ok(v) = v.parse() {
                            m.insert(format!("{proto}{k}"), v);
                        }
                    }
                }
            }
        }
        m
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["c", "r", "d", "a"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .output();
        }
    }
}

/// One server node: namespace, its own link address (where its control listener is).
#[derive(Clone)]
struct NodeInfo {
    ns: String,
    link: Ipv6Addr,
    id: u32,
}

#[derive(Clone)]
struct Plan {
    total: usize,
    /// Which node (index into the node list) serves each segment: `[0, 1]` is one
    /// handoff, `[0, 1, 0]` two.
    hops: Vec<usize>,
    drain: HandoffDrain,
    /// The acceptor takes the Offer and never answers: the donor must roll back.
    silent_acceptor: bool,
}

impl Plan {
    fn segment(&self, i: usize) -> std::ops::Range<usize> {
        let k = self.hops.len();
        self.total * i / k..self.total * (i + 1) / k
    }
}

/// What a donor saw of one handoff.
#[derive(Debug)]
struct HandoffReport {
    state_bytes: usize,
    send_queue: usize,
    unsent: usize,
    recv_queue: usize,
    phases: Phases,
    outcome: Outcome,
}

fn write_frame(s: &mut TcpStream, frame: &[u8]) {
    s.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
    s.write_all(frame).unwrap();
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0; 4];
    s.read_exact(&mut len).expect("control frame length");
    let mut buf = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("control frame");
    buf
}

struct Control {
    key: SharedKey,
    me: u32,
    counter: CounterSource,
    replay: ReplayWindow,
}

impl Control {
    fn new(me: u32) -> Control {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        Control {
            key: SharedKey::from_bytes(b"tcprepair test shared key, 32+ bytes")
                .unwrap()
                .derive("handoff"),
            me,
            counter: CounterSource::new(now),
            replay: ReplayWindow::new(),
        }
    }

    fn send(&mut self, s: &mut TcpStream, m: &Message) {
        let frame = handoff::seal(&self.key, self.me, self.counter.next(), m);
        write_frame(s, &frame);
    }

    fn recv(&mut self, s: &mut TcpStream) -> Message {
        let frame = read_frame(s);
        handoff::open(&self.key, &mut self.replay, &frame, &Limits::default())
            .expect("authentic handoff message")
            .1
    }
}

/// Runs one server node inside its namespace: serves its segments, hands off after each.
fn server_node(
    me: usize,
    nodes: Vec<NodeInfo>,
    router_ns: String,
    plan: Plan,
    report: mpsc::Sender<HandoffReport>,
    ready: mpsc::Sender<()>,
) -> (Vec<u8>, Vec<u8>) {
    let info = nodes[me].clone();
    netns::enter(&info.ns).unwrap();
    let mut lock = NetLock::install("trp_lock").expect("install the network lock");
    let svc: Ipv6Addr = SVC.parse().unwrap();
    let listener = TcpListener::bind(SocketAddrV6::new(svc, PORT, 0, 0)).unwrap();
    let control = TcpListener::bind(SocketAddrV6::new(info.link, CONTROL_PORT, 0, 0)).unwrap();
    ready.send(()).unwrap();
    let mut ctl = Control::new(info.id);
    let mut conn: Option<TcpStream> = None;
    let mut got = (Vec::new(), Vec::new());
    let mut rolled_back: Option<TcpStream> = None;
    for (i, &node) in plan.hops.iter().enumerate() {
        if node != me && rolled_back.is_none() {
            continue;
        }
        let mut s = if let Some(s) = rolled_back.take() {
            s
        } else if i == 0 {
            let (s, _) = listener.accept().unwrap();
            // The request sits unread in the receive queue: it must travel.
            let t = Instant::now();
            while tcp_repair::unread_bytes(s.as_fd()).unwrap() < REQUEST_LEN as u32 {
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "request never arrived"
                );
                thread::sleep(Duration::from_millis(1));
            }
            s
        } else if plan.silent_acceptor {
            let (mut c, _) = control.accept().unwrap();
            assert!(matches!(ctl.recv(&mut c), Message::Offer { .. }));
            // Say nothing; the donor gives up and tells us so.
            assert!(matches!(ctl.recv(&mut c), Message::Abort { .. }));
            break;
        } else {
            accept_handoff(&control, &mut ctl, &router_ns, &info, &plan, i)
        };
        s.write_all(&stream(plan.segment(i), 0)).unwrap();
        if i + 1 < plan.hops.len() {
            let next = &nodes[plan.hops[i + 1]];
            let (r, back) = give_handoff(s, &mut lock, &mut ctl, next, &plan, i);
            report.send(r).unwrap();
            rolled_back = back;
        } else {
            let mut req = vec![0; REQUEST_LEN];
            s.read_exact(&mut req).unwrap();
            let mut up = Vec::new();
            s.read_to_end(&mut up).unwrap();
            got = (req, up);
            conn = Some(s);
        }
    }
    drop(conn);
    let _ = lock.remove();
    got
}

fn give_handoff(
    s: TcpStream,
    lock: &mut NetLock,
    ctl: &mut Control,
    next: &NodeInfo,
    plan: &Plan,
    i: usize,
) -> (HandoffReport, Option<TcpStream>) {
    let mut drain = Drain::new(plan.drain, Duration::from_secs(3));
    tcp_repair::drain(s.as_fd(), &mut drain, Duration::from_micros(200)).unwrap();
    let local = match s.local_addr().unwrap() {
        std::net::SocketAddr::V6(a) => a,
        a => panic!("{a}"),
    };
    let peer = match s.peer_addr().unwrap() {
        std::net::SocketAddr::V6(a) => a,
        a => panic!("{a}"),
    };
    let t = Instant::now();
    lock.lock(&local, &peer).unwrap();
    tcp_repair::freeze(s.as_fd()).unwrap();
    let state = tcp_repair::extract(s.as_fd()).unwrap();
    // Closed in repair mode: nothing goes out.
    drop(s);
    let extraction = t.elapsed();
    let (state_bytes, send_queue, unsent, recv_queue) = (
        state.encoded_len(),
        state.send_queue.len(),
        state.unsent as usize,
        state.recv_queue.len(),
    );
    let mut c = TcpStream::connect(SocketAddrV6::new(next.link, CONTROL_PORT, 0, 0)).unwrap();
    c.set_nodelay(true).unwrap();
    let app = (plan.segment(i).end as u64).to_be_bytes().to_vec();
    let timeouts = Timeouts {
        accept: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let (mut donor, actions) = Donor::start(
        i as u64 + 1,
        state,
        app,
        extraction,
        timeouts,
        Instant::now(),
    );
    let mut outcome = None;
    let mut back = None;
    let mut pending = actions;
    loop {
        for a in std::mem::take(&mut pending) {
            match a {
                DonorAction::Send(m) => ctl.send(&mut c, &m),
                DonorAction::Unlock => lock.unlock(&local, &peer).unwrap(),
                DonorAction::RollBack(state) => {
                    // The route never left this node: rebuild, unlock, then activate.
                    let fd = tcp_repair::restore(&state).unwrap();
                    lock.unlock(&local, &peer).unwrap();
                    tcp_repair::activate(fd.as_fd(), state.send_queue_split().1).unwrap();
                    back = Some(TcpStream::from(fd));
                }
                DonorAction::Finished(o) => outcome = Some(o),
            }
        }
        if let Some(outcome) = outcome {
            let r = HandoffReport {
                state_bytes,
                send_queue,
                unsent,
                recv_queue,
                phases: *donor.phases(),
                outcome,
            };
            return (r, back);
        }
        let deadline = donor.poll_timeout().unwrap();
        c.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match try_recv(ctl, &mut c) {
            Some(m) => pending = donor.handle(&m, Instant::now()),
            None => pending = donor.handle_timeout(Instant::now()),
        }
    }
}

/// A message, or None when the read timed out.
fn try_recv(ctl: &mut Control, c: &mut TcpStream) -> Option<Message> {
    let mut len = [0; 4];
    match c.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return None
        }
        Err(e) => panic!("control channel: {e}"),
    }
    let mut buf = vec![0; u32::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).expect("control frame");
    let (_, m) = handoff::open(&ctl.key, &mut ctl.replay, &buf, &Limits::default())
        .expect("authentic handoff message");
    Some(m)
}

fn accept_handoff(
    control: &TcpListener,
    ctl: &mut Control,
    router_ns: &str,
    info: &NodeInfo,
    plan: &Plan,
    i: usize,
) -> TcpStream {
    let (mut c, _) = control.accept().unwrap();
    c.set_nodelay(true).unwrap();
    let offer = ctl.recv(&mut c);
    let (mut acc, app, mut pending) = Acceptor::start(0, offer, Timeouts::default()).unwrap();
    assert_eq!(app, (plan.segment(i - 1).end as u64).to_be_bytes());
    let mut sock: Option<OwnedFd> = None;
    let mut tail = Vec::new();
    loop {
        for a in std::mem::take(&mut pending) {
            match a {
                AcceptorAction::Restore(state) => {
                    let t = Instant::now();
                    let fd = tcp_repair::restore(&state).unwrap();
                    tail = state.send_queue_split().1.to_vec();
                    sock = Some(fd);
                    pending.extend(acc.restored(Ok(t.elapsed()), Instant::now()));
                }
                AcceptorAction::Send(m) => ctl.send(&mut c, &m),
                AcceptorAction::Redirect => {
                    let t = Instant::now();
                    run(&[
                        "ip",
                        "-n",
                        router_ns,
                        "-6",
                        "route",
                        "replace",
                        &format!("{SVC}/128"),
                        "via",
                        &info.link.to_string(),
                    ]);
                    pending.extend(acc.redirected(RedirectTimes {
                        return_routability: PhaseTime::Skipped,
                        bu_construction: PhaseTime::Skipped,
                        binding_management: PhaseTime::took(t.elapsed()),
                    }));
                }
                AcceptorAction::Activate => {
                    let t = Instant::now();
                    tcp_repair::activate(sock.as_ref().unwrap().as_fd(), &tail).unwrap();
                    pending.extend(acc.activated(t.elapsed()));
                }
                AcceptorAction::Discard => panic!("acceptor discarded the connection"),
                AcceptorAction::Finished(o) => {
                    assert_eq!(o, Outcome::Completed);
                    return TcpStream::from(sock.take().unwrap());
                }
            }
        }
        if pending.is_empty() {
            let m = ctl.recv(&mut c);
            pending = acc.handle(&m, Instant::now());
        }
    }
}

/// Runs a whole download under `plan`; returns the donors' reports.
fn scenario(tag: &str, plan: Plan, slow: bool) -> Vec<HandoffReport> {
    require("tcp_handoff", &[Tool::Ip]);
    assert!(
        Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "tcp_handoff needs the `nft` command: apt-get install nftables"
    );
    let net = Net::up(tag);
    if slow {
        assert!(
            Command::new("tc")
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success()),
            "tcp_handoff needs the `tc` command: apt-get install iproute2"
        );
        run(&[
            "tc",
            "-n",
            &net.ns("r"),
            "qdisc",
            "add",
            "dev",
            "rc",
            "root",
            "tbf",
            "rate",
            "20mbit",
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ]);
    }
    let nodes = vec![
        NodeInfo {
            ns: net.ns("d"),
            link: "fd00:d::2".parse().unwrap(),
            id: 1,
        },
        NodeInfo {
            ns: net.ns("a"),
            link: "fd00:a::2".parse().unwrap(),
            id: 2,
        },
    ];
    let (rtx, rrx) = mpsc::channel();
    let mut servers = Vec::new();
    for me in 0..nodes.len() {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (nodes, router, plan, rtx) = (nodes.clone(), net.ns("r"), plan.clone(), rtx.clone());
        servers.push(thread::spawn(move || {
            server_node(me, nodes, router, plan, rtx, ready_tx)
        }));
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server node ready");
    }
    drop(rtx);
    let total = plan.total;
    let client = {
        let ns = net.ns("c");
        thread::spawn(move || {
            netns::enter(&ns).unwrap();
            let svc: Ipv6Addr = SVC.parse().unwrap();
            let mut s = TcpStream::connect(SocketAddrV6::new(svc, PORT, 0, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&stream(0..REQUEST_LEN, 1)).unwrap();
            // Read as it comes, noting the longest pause between two reads: the pause
            // the client perceives (the handoff's, unless the link is slower).
            let mut got = vec![0; total];
            let (mut off, mut last, mut gap) = (0, Instant::now(), Duration::ZERO);
            while off < total {
                let n = s.read(&mut got[off..]).expect("download");
                assert!(n > 0, "end of stream after {off} bytes");
                off += n;
                gap = gap.max(last.elapsed());
                last = Instant::now();
            }
            eprintln!(
                "client: longest pause between reads {:.3} ms",
                gap.as_secs_f64() * 1e3
            );
            s.write_all(&stream(0..UPLOAD_LEN, 2))
                .expect("upload after the handoff");
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).expect("clean end of stream");
            assert!(rest.is_empty());
            got
        })
    };
    let got = client.join().expect("client");
    let mut last = None;
    for s in servers {
        let (req, up) = s.join().expect("server node");
        if !req.is_empty() {
            last = Some((req, up));
        }
    }
    let reports: Vec<HandoffReport> = rrx.iter().collect();
    let counters = net.client_counters();

    assert_eq!(
        sha256(&got),
        sha256(&stream(0..total, 0)),
        "download corrupted"
    );
    let (req, up) = last.expect("the last node read the request");
    assert_eq!(
        req,
        stream(0..REQUEST_LEN, 1),
        "the unread request did not travel"
    );
    assert_eq!(up.len(), UPLOAD_LEN);
    assert_eq!(
        sha256(&up),
        sha256(&stream(0..UPLOAD_LEN, 2)),
        "upload corrupted"
    );
    for k in [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpExtPAWSEstab",
        "TcpExtTCPAbortOnData",
    ] {
        assert_eq!(counters.get(k), Some(&0), "client {k}: {counters:?}");
    }
    assert_eq!(reports.len(), plan.hops.len() - 1);
    for r in &reports {
        let expected = if plan.silent_acceptor {
            Outcome::RolledBack(RollbackCause::AcceptTimeout)
        } else {
            Outcome::Completed
        };
        assert_eq!(r.outcome, expected);
        eprintln!(
            "{tag}: state {} B (send queue {} of which unsent {}, receive queue {})\n{}",
            r.state_bytes, r.send_queue, r.unsent, r.recv_queue, r.phases
        );
    }
    reports
}

#[test]
fn handoff_carries_the_connection_and_its_unread_request() {
    let reports = scenario(
        "b",
        Plan {
            total: 1_000_000,
            hops: vec![0, 1],
            drain: HandoffDrain::Off,
            silent_acceptor: false,
        },
        false,
    );
    assert_eq!(reports[0].recv_queue, REQUEST_LEN);
}

#[test]
fn handoff_with_unacknowledged_send_queue_on_a_slow_link() {
    let reports = scenario(
        "s",
        Plan {
            total: 1_000_000,
            hops: vec![0, 1],
            drain: HandoffDrain::Off,
            silent_acceptor: false,
        },
        true,
    );
    // 20 Mbit/s cannot have carried the first half when the donor froze right after its
    // last write: the send queue travelled.
    assert!(reports[0].send_queue > 10_000, "{:?}", reports[0]);
}

#[test]
fn handoff_twice_within_one_connection_a_b_a() {
    let reports = scenario(
        "t",
        Plan {
            total: 1_500_000,
            hops: vec![0, 1, 0],
            drain: HandoffDrain::Off,
            silent_acceptor: false,
        },
        false,
    );
    assert_eq!(reports.len(), 2);
}

#[test]
fn drained_handoff_ships_about_a_hundred_bytes_plus_the_request() {
    let reports = scenario(
        "n",
        Plan {
            total: 1_000_000,
            hops: vec![0, 1],
            drain: HandoffDrain::On,
            silent_acceptor: false,
        },
        true,
    );
    let r = &reports[0];
    assert_eq!(r.send_queue, 0, "{r:?}");
    // The fixed part plus the 777-byte request still unread.
    assert!(r.state_bytes - r.recv_queue <= 128, "{r:?}");
}

#[test]
fn donor_rolls_back_when_the_acceptor_never_accepts() {
    let reports = scenario(
        "r",
        Plan {
            total: 1_000_000,
            hops: vec![0, 1],
            drain: HandoffDrain::Off,
            silent_acceptor: true,
        },
        false,
    );
    assert!(matches!(reports[0].outcome, Outcome::RolledBack(_)));
}
