//! A live TCP handoff between the testbed's server nodes with the client redirected by
//! Mobile IPv6 (no router host route): the real `mip6d` as home agent (ha1), as the
//! client's correspondent node, and on sn1 as the contact node registering the DSA with
//! ha1 (`testbed/conf/contact.conf`).
//!
//! ```text
//! client ── router ── ha1 ══ tunnel ══ sn1 (contact, donor; DSA via the home registration)
//!              └───────────────────── sn2 (acceptor; DSA on lo)
//! ```
//! The client connects to the DSA (through ha1's tunnel to sn1) and sends a request that
//! sn1 never reads; sn1 serves the first half, runs the home test for the DSA with the
//! client (through the tunnel), then freezes the connection and offers it to sn2 with the
//! home keygen token. After Commit, sn2 restores the socket, runs the care-of test, sends
//! the client a Binding Update for the DSA (CoA = sn2), installs the per-connection
//! binding (RH2 in, HAO out for the 5-tuple) and activates; it serves the second half,
//! reads the request and the client's upload. Checked: SHA-256 of everything, zero resets
//! in the client's namespace, and the client's binding cache (DSA → sn2).

#[path = "support/testbed.rs"]
mod testbed;

#[path = "daemon_support/mod.rs"]
mod daemon_support;

#[path = "support/handoff_ctl.rs"]
mod handoff_ctl;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use daemon_support::{mip6ctl_json, wait_for, Daemon};
use handoff_ctl::{tcp_counters, Control};
use mip6d::config::model::HandoffDrain;
use mip6d::daemon::registry::Registry;
use mip6d::datapath::conn_binding::{ConnBinding, In};
use mip6d::datapath::mn_user;
use mip6d::ds::conn_state::HomeKeygen;
use mip6d::ds::drain::Drain;
use mip6d::ds::handoff::{Acceptor, AcceptorAction, Donor, DonorAction, Outcome, Timeouts};
use mip6d::ds::phases::Phases;
use mip6d::ds::redirect::{Binder, BinderAction, HomeTest};
use mip6d::proto::event::Transmit;
use mip6d::sys::nfqueue::{NfQueue, Verdict};
use mip6d::sys::raw::{RawSocket, IPPROTO_RAW};
use mip6d::sys::{netlock::NetLock, netns, tcp_repair};
use testbed::{ip_netns, require, Testbed, Tool};

const PORT: u16 = 8000;
const CONTROL_PORT: u16 = 7780;
const REQUEST_LEN: usize = 777;
const UPLOAD_LEN: usize = 100_000;
const QUEUE: u16 = 7700;
const IPPROTO_MH: i32 = 135;

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 11) as u8
}

fn stream(range: std::ops::Range<usize>, salt: usize) -> Vec<u8> {
    range.map(|i| byte(i ^ salt)).collect()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

fn v6(a: SocketAddr) -> SocketAddrV6 {
    match a {
        SocketAddr::V6(a) => a,
        a => panic!("{a}"),
    }
}

fn send_mh(raw: &RawSocket, t: &Transmit) {
    let (pkt, to) = mn_user::build_packet(t).expect("a Mobility Header we can build");
    raw.send_to(&pkt, to).expect("send a Mobility Header");
}

/// What the testbed gives the scenario.
#[derive(Clone)]
struct Nodes {
    dsa: Ipv6Addr,
    ha: Ipv6Addr,
    sn1: Ipv6Addr,
    sn2: Ipv6Addr,
    ns_sn1: String,
    ns_sn2: String,
    ns_client: String,
}

/// What the donor saw.
#[derive(Debug)]
struct DonorReport {
    state_bytes: usize,
    phases: Phases,
    outcome: Outcome,
    home_test: Duration,
}

/// sn1: accepts the client, serves the first half, hands off.
fn donor(n: Nodes, total: usize, drain: HandoffDrain, ready: mpsc::Sender<()>) -> DonorReport {
    netns::enter(&n.ns_sn1).unwrap();
    let mut lock = NetLock::install("hof_lock").expect("install the network lock");
    let listener = TcpListener::bind(SocketAddrV6::new(n.dsa, PORT, 0, 0)).unwrap();
    ready.send(()).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    let t = Instant::now();
    while tcp_repair::unread_bytes(s.as_fd()).unwrap() < REQUEST_LEN as u32 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "request never arrived"
        );
        thread::sleep(Duration::from_millis(1));
    }
    s.write_all(&stream(0..total / 2, 0)).unwrap();
    let (local, peer) = (v6(s.local_addr().unwrap()), v6(s.peer_addr().unwrap()));

    // The home test for the DSA, through the tunnel (independent of the freeze).
    let started = Instant::now();
    let home = home_test(&n, *peer.ip());
    let home_test = started.elapsed();

    let mut d = Drain::new(drain, Duration::from_secs(3));
    tcp_repair::drain(s.as_fd(), &mut d, Duration::from_micros(200)).unwrap();
    let t = Instant::now();
    lock.lock(&local, &peer).unwrap();
    tcp_repair::freeze(s.as_fd()).unwrap();
    let mut state = tcp_repair::extract(s.as_fd()).unwrap();
    drop(s);
    let extraction = t.elapsed();
    // The contact never bound the DSA at this client: no sequence number to exceed.
    state.bu_sequence = None;
    state.home_keygen = Some(home);
    let state_bytes = state.encoded_len();

    let mut c = TcpStream::connect(SocketAddrV6::new(n.sn2, CONTROL_PORT, 0, 0)).unwrap();
    c.set_nodelay(true).unwrap();
    let mut ctl = Control::new(1);
    let app = ((total / 2) as u64).to_be_bytes().to_vec();
    let (mut donor, mut pending) =
        Donor::start(1, state, app, extraction, Timeouts::default(), Instant::now());
    loop {
        let mut outcome = None;
        for a in std::mem::take(&mut pending) {
            match a {
                DonorAction::Send(m) => ctl.send(&mut c, &m),
                DonorAction::Unlock => lock.unlock(&local, &peer).unwrap(),
                DonorAction::RollBack(_) => panic!("the donor rolled back"),
                DonorAction::Finished(o) => outcome = Some(o),
            }
        }
        if let Some(outcome) = outcome {
            let _ = lock.remove();
            return DonorReport {
                state_bytes,
                phases: *donor.phases(),
                outcome,
                home_test,
            };
        }
        let deadline = donor.poll_timeout().expect("a deadline while unfinished");
        c.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        pending = match ctl.try_recv(&mut c) {
            Some(m) => donor.handle(&m, Instant::now()),
            None => donor.handle_timeout(Instant::now()),
        };
    }
}

/// The contact's home test: the HoTI leaves through the tunnel, the HoT comes back
/// through it and the contact's mip6d delivers it to the DSA, where this socket waits.
fn home_test(n: &Nodes, client: Ipv6Addr) -> HomeKeygen {
    let out = RawSocket::new(IPPROTO_RAW).unwrap();
    let mh = RawSocket::new(IPPROTO_MH).unwrap();
    let (mut ht, hoti) = HomeTest::start(n.dsa, client, (n.sn1, n.ha), [7; 8], Instant::now());
    send_mh(&out, &hoti);
    let mut buf = [0u8; 1500];
    loop {
        let wait = ht
            .poll_timeout()
            .map_or(Duration::from_millis(1), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .max(Duration::from_millis(1));
        mh.set_read_timeout(Some(wait)).unwrap();
        match mh.recv_from(&mut buf) {
            Ok((len, src)) => {
                if let Some(token) = ht.handle_mh(src, &buf[..len]) {
                    return token;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("home test socket: {e}"),
        }
        match ht.handle_timeout(Instant::now()) {
            Ok(Some(t)) => send_mh(&out, &t),
            Ok(None) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// The acceptor's per-connection data path: two queue readers until `stop`.
struct ConnPath {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    registry: Registry,
}

impl ConnPath {
    fn start(b: ConnBinding, mh: mpsc::Sender<Vec<u8>>) -> ConnPath {
        let stop = Arc::new(AtomicBool::new(false));
        let mut rx = NfQueue::bind(QUEUE).expect("bind the receive queue");
        let mut tx = NfQueue::bind(QUEUE + 1).expect("bind the send queue");
        for q in [&rx, &tx] {
            q.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            // A full socket buffer loses the queued packet's message, and the packet
            // waits for a verdict that never comes.
            q.set_recv_buffer(4 << 20).unwrap();
        }
        let mut registry = Registry::new();
        for r in b.rules(QUEUE) {
            r.install(&mut registry).expect("install a rule");
        }
        let s1 = stop.clone();
        let rx_thread = thread::spawn(move || {
            while !s1.load(Ordering::Relaxed) {
                let Ok(p) = rx.recv() else { continue };
                let v = b.incoming(&p.payload);
                if v == In::Drop {
                    eprintln!("conn path: dropped {} bytes in", p.payload.len());
                }
                let r = match v {
                    In::Mobility => {
                        let _ = mh.send(p.payload.clone());
                        rx.verdict(p.id, Verdict::Drop, None)
                    }
                    In::Accept(buf) => rx.verdict(p.id, Verdict::Accept, Some(&buf)),
                    In::Drop => rx.verdict(p.id, Verdict::Drop, None),
                };
                r.expect("verdict");
            }
        });
        let s2 = stop.clone();
        let tx_thread = thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok(p) = tx.recv() else { continue };
                let r = match b.outgoing(&p.payload) {
                    Some(buf) => tx.verdict(p.id, Verdict::Accept, Some(&buf)),
                    None => {
                        eprintln!("conn path: dropped {} bytes out", p.payload.len());
                        tx.verdict(p.id, Verdict::Drop, None)
                    }
                };
                r.expect("verdict");
            }
        });
        ConnPath {
            stop,
            threads: vec![rx_thread, tx_thread],
            registry,
        }
    }
}

impl Drop for ConnPath {
    fn drop(&mut self) {
        // Rules first: a queue without a reader drops.
        self.registry.undo_all();
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the acceptor read and measured.
struct AcceptorReport {
    request: Vec<u8>,
    upload: Vec<u8>,
    phases: Phases,
    sequence: u16,
}

/// sn2: takes the connection, redirects the client, serves the second half.
fn acceptor(n: Nodes, total: usize, ready: mpsc::Sender<()>) -> AcceptorReport {
    netns::enter(&n.ns_sn2).unwrap();
    let control = TcpListener::bind(SocketAddrV6::new(n.sn2, CONTROL_PORT, 0, 0)).unwrap();
    ready.send(()).unwrap();
    let (mut c, _) = control.accept().unwrap();
    c.set_nodelay(true).unwrap();
    let mut ctl = Control::new(2);
    let offer = ctl.recv(&mut c);
    let (mut acc, app, mut pending) = Acceptor::start(1, offer, Timeouts::default()).unwrap();
    assert_eq!(app, ((total / 2) as u64).to_be_bytes());
    let raw = RawSocket::new(IPPROTO_RAW).unwrap();
    let mut sock: Option<OwnedFd> = None;
    let mut tail = Vec::new();
    let mut state = None;
    let mut path = None;
    let mut sequence = 0;
    let s = loop {
        let mut done = None;
        for a in std::mem::take(&mut pending) {
            match a {
                AcceptorAction::Restore(st) => {
                    let t = Instant::now();
                    let fd = tcp_repair::restore(&st).unwrap();
                    tail = st.send_queue_split().1.to_vec();
                    sock = Some(fd);
                    state = Some(st);
                    pending.extend(acc.restored(Ok(t.elapsed()), Instant::now()));
                }
                AcceptorAction::Send(m) => ctl.send(&mut c, &m),
                AcceptorAction::Redirect => {
                    let st = state.as_ref().expect("restored first");
                    let home = st.home_keygen.expect("the contact's home keygen token");
                    let (tx, rx) = mpsc::channel();
                    let b = ConnBinding {
                        local: st.local,
                        peer: st.peer,
                        coa: n.sn2,
                    };
                    path = Some(ConnPath::start(b, tx));
                    let (mut binder, acts) = Binder::start(
                        n.dsa,
                        n.sn2,
                        *st.peer.ip(),
                        home,
                        st.bu_sequence,
                        0x4000,
                        [9; 8],
                        Instant::now(),
                    );
                    let mut acts = acts;
                    let times = loop {
                        let mut bound = None;
                        for a in std::mem::take(&mut acts) {
                            match a {
                                BinderAction::Send(t) => send_mh(&raw, &t),
                                BinderAction::Bound { sequence: q, times } => {
                                    sequence = q;
                                    bound = Some(times);
                                }
                                BinderAction::Failed(e) => panic!("redirect: {e}"),
                            }
                        }
                        if let Some(t) = bound {
                            break t;
                        }
                        let wait = binder
                            .poll_timeout()
                            .map_or(Duration::from_millis(1), |t| {
                                t.saturating_duration_since(Instant::now())
                            });
                        acts = match rx.recv_timeout(wait) {
                            Ok(pkt) => binder.handle_packet(&pkt, Instant::now()),
                            Err(_) => binder.handle_timeout(Instant::now()),
                        };
                    };
                    pending.extend(acc.redirected(times));
                }
                AcceptorAction::Activate => {
                    let t = Instant::now();
                    tcp_repair::activate(sock.as_ref().unwrap().as_fd(), &tail).unwrap();
                    pending.extend(acc.activated(t.elapsed()));
                }
                AcceptorAction::Discard => panic!("acceptor discarded the connection"),
                AcceptorAction::Finished(o) => {
                    assert_eq!(o, Outcome::Completed);
                    done = Some(TcpStream::from(sock.take().unwrap()));
                }
            }
        }
        if let Some(s) = done {
            break s;
        }
        if pending.is_empty() {
            let m = ctl.recv(&mut c);
            pending = acc.handle(&m, Instant::now());
        }
    };
    let mut s = s;
    s.write_all(&stream(total / 2..total, 0)).unwrap();
    let mut request = vec![0; REQUEST_LEN];
    s.read_exact(&mut request).unwrap();
    let mut upload = Vec::new();
    s.read_to_end(&mut upload).unwrap();
    drop(s);
    drop(path);
    AcceptorReport {
        request,
        upload,
        phases: *acc.phases(),
        sequence,
    }
}

fn start_daemon(tb: &Testbed, node: &str, conf: &str) -> Daemon {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testbed/conf/{conf}")),
    )
    .unwrap();
    let mut d = Daemon::new(&format!("hof-{node}"), &text);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &tb.ns(node)])
        .arg(env!("CARGO_BIN_EXE_mip6d"))
        .args(["-f", "-d", "1", "--datapath", "user", "-c"])
        .arg(&d.config)
        .arg("--control-socket")
        .arg(&d.socket)
        .arg("--pid-file")
        .arg(&d.pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&d.log).unwrap());
    for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUST_LOG"] {
        cmd.env_remove(v);
    }
    d.spawn(cmd);
    d
}

/// Stops a daemon with SIGTERM (it removes its rules) and waits for it.
fn stop(mut d: Daemon) {
    if d.child.is_some() {
        d.signal(libc::SIGTERM);
        d.wait_exit();
    }
}

fn scenario(tag: &str, total: usize, drain: HandoffDrain) {
    require(
        "ds_handoff_e2e",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ipset],
    );
    assert!(
        Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "ds_handoff_e2e needs the `nft` command: apt-get install nftables"
    );
    let tb = Testbed::up(format!("hof{}{tag}", std::process::id() % 100_000), None);
    let n = Nodes {
        dsa: tb.addr("M6_DSA_ADDR"),
        ha: tb.addr("M6_HA1_ADDR"),
        sn1: tb.addr("M6_SN1_ADDR"),
        sn2: tb.addr("M6_SN2_ADDR"),
        ns_sn1: tb.ns("sn1"),
        ns_sn2: tb.ns("sn2"),
        ns_client: tb.ns("client"),
    };
    // The acceptor owns the DSA too, and its segments to the client carry a 24-byte Home
    // Address option: what leaves from the DSA must be sized for that before the socket
    // is rebuilt. A policy rule, not a plain host route: the rewritten segment (from sn2)
    // is routed again and must see the link's full MTU.
    tb.sh(
        "sn2",
        &["ip", "addr", "add", &format!("{}/128", n.dsa), "dev", "lo", "nodad"],
    );
    tb.sh(
        "sn2",
        &["ip", "-6", "rule", "add", "from", &n.dsa.to_string(), "lookup", "4242"],
    );
    tb.sh(
        "sn2",
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            &tb.addr("M6_ROUTER_SN2NET_ADDR").to_string(),
            "mtu",
            "1476",
            "table",
            "4242",
        ],
    );
    let ha = start_daemon(&tb, "ha1", "ha1.conf");
    let cn = start_daemon(&tb, "client", "cn.conf");
    let contact = start_daemon(&tb, "sn1", "contact.conf");
    wait_for("ha1 to register the DSA for sn1", || {
        let bc = mip6ctl_json(&ha.socket, "bc");
        bc.to_string()
            .contains(&n.sn1.to_string())
            .then_some(())
    });

    let (ready_tx, ready_rx) = mpsc::channel();
    let donor_t = {
        let (n, r) = (n.clone(), ready_tx.clone());
        thread::spawn(move || donor(n, total, drain, r))
    };
    let acceptor_t = {
        let (n, r) = (n.clone(), ready_tx.clone());
        thread::spawn(move || acceptor(n, total, r))
    };
    for _ in 0..2 {
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server nodes ready");
    }
    let client_t = {
        let n = n.clone();
        thread::spawn(move || {
            netns::enter(&n.ns_client).unwrap();
            let mut s = TcpStream::connect(SocketAddrV6::new(n.dsa, PORT, 0, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&stream(0..REQUEST_LEN, 1)).unwrap();
            let mut got = vec![0; total];
            let (mut off, mut last, mut gap) = (0, Instant::now(), Duration::ZERO);
            while off < total {
                let k = s.read(&mut got[off..]).expect("download");
                assert!(k > 0, "end of stream after {off} bytes");
                off += k;
                gap = gap.max(last.elapsed());
                last = Instant::now();
            }
            s.write_all(&stream(0..UPLOAD_LEN, 2))
                .expect("upload after the handoff");
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).expect("clean end of stream");
            assert!(rest.is_empty());
            (got, gap)
        })
    };
    if std::env::var_os("HOF_DEBUG").is_some() {
        thread::sleep(Duration::from_secs(3));
        for node in ["sn2", "client"] {
            for cmd in [
                &["ip6tables-save", "-c"][..],
                &["ss", "-tni"],
                &["cat", "/proc/net/netfilter/nfnetlink_queue"],
                &["nstat", "-az", "Ip6*"],
            ] {
                eprintln!("### {node} {cmd:?}\n{}", ip_netns(&tb.ns(node), cmd).unwrap_or_else(|e| e));
            }
        }
    }
    let client = client_t.join();
    if client.is_err() {
        for d in [&ha, &cn, &contact] {
            eprintln!("--- {}:\n{}", d.dir.display(), d.stderr());
        }
    }
    let (got, gap) = client.expect("client");
    let d = donor_t.join().expect("donor");
    let a = acceptor_t.join().expect("acceptor");
    let counters = tcp_counters(&n.ns_client);
    let bc = mip6ctl_json(&cn.socket, "bc").to_string();
    stop(contact);
    stop(cn);
    stop(ha);

    assert_eq!(sha256(&got), sha256(&stream(0..total, 0)), "download corrupted");
    assert_eq!(a.request, stream(0..REQUEST_LEN, 1), "request did not travel");
    assert_eq!(sha256(&a.upload), sha256(&stream(0..UPLOAD_LEN, 2)), "upload corrupted");
    for k in [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpExtPAWSEstab",
        "TcpExtTCPAbortOnData",
    ] {
        assert_eq!(counters.get(k), Some(&0), "client {k}: {counters:?}");
    }
    assert_eq!(d.outcome, Outcome::Completed);
    // The redirect was Mobile IPv6: the client's binding cache maps the DSA to sn2.
    assert!(
        bc.contains(&n.dsa.to_string()) && bc.contains(&n.sn2.to_string()),
        "client binding cache: {bc}"
    );
    let routes = tb.sh("router", &["ip", "-6", "route", "show", &format!("{}/128", n.dsa)]);
    assert!(routes.trim().is_empty(), "a host route for the DSA: {routes}");
    eprintln!(
        "{tag}: state {} B, home test {:.3} ms, BU sequence {}, client's longest pause {:.3} ms\ndonor:\n{}\nacceptor:\n{}",
        d.state_bytes,
        d.home_test.as_secs_f64() * 1e3,
        a.sequence,
        gap.as_secs_f64() * 1e3,
        d.phases,
        a.phases
    );
}

#[test]
fn handoff_redirects_the_client_with_mobile_ipv6() {
    scenario("m", 1_000_000, HandoffDrain::Off);
}
