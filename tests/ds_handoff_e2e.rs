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

#[path = "support/stream.rs"]
mod stream;
#[path = "support/testbed.rs"]
mod testbed;

#[path = "daemon_support/mod.rs"]
mod daemon_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_support::{mip6ctl_json, wait_for, Daemon};
use mip6d::config::model::HandoffDrain;
use mip6d::crypto::auth::SharedKey;
use mip6d::ds::handoff::{Outcome, Timeouts};
use mip6d::dsnode::acceptor::{accept_one, AcceptorConfig, Sequences};
use mip6d::dsnode::conn_path::PathBackend;
use mip6d::dsnode::donor::{hand_off, Contact, DonorConfig, DonorReport};
use mip6d::sys::{netlock::NetLock, netns, tcp_repair};
use stream::{sha256, stream};
use testbed::{require, tcp_counters, Testbed, Tool};

const PORT: u16 = 8000;
const CONTROL_PORT: u16 = 7780;
const REQUEST_LEN: usize = 777;
const UPLOAD_LEN: usize = 100_000;
const QUEUE: u16 = 7700;

fn v6(a: SocketAddr) -> SocketAddrV6 {
    match a {
        SocketAddr::V6(a) => a,
        a => panic!("{a}"),
    }
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

fn key() -> SharedKey {
    SharedKey::from_bytes(b"ds_handoff_e2e shared key, 32+ bytes").unwrap()
}

/// sn1: for each of `runs` clients, serves the first half and hands off.
fn donor(n: Nodes, runs: usize, total: usize, ready: mpsc::Sender<()>) -> Vec<DonorReport> {
    netns::enter(&n.ns_sn1).unwrap();
    let mut lock = NetLock::install("hof_lock").expect("install the network lock");
    let listener = TcpListener::bind(SocketAddrV6::new(n.dsa, PORT, 0, 0)).unwrap();
    ready.send(()).unwrap();
    let cfg = DonorConfig {
        contact: Contact {
            dsa: n.dsa,
            home_agent: n.ha,
            care_of: n.sn1,
        },
        node_id: 1,
        key: key(),
        drain: HandoffDrain::Off,
        drain_bound: Duration::from_secs(1),
        timeouts: Timeouts::default(),
    };
    let mut reports = vec![];
    for run in 0..runs {
        let (mut s, _) = listener.accept().unwrap();
        let t = Instant::now();
        while tcp_repair::unread_bytes(s.as_fd()).unwrap() < REQUEST_LEN as u32 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "request never arrived"
            );
            thread::sleep(Duration::from_millis(1));
        }
        s.write_all(&stream(0..total / 2, run)).unwrap();
        let to = SocketAddrV6::new(n.sn2, CONTROL_PORT, 0, 0);
        let app = ((total / 2) as u64).to_be_bytes().to_vec();
        let (r, back) =
            hand_off(s, to, run as u64 + 1, app, &cfg, &mut lock, None).expect("handoff");
        assert!(back.is_none(), "rolled back: {r:?}");
        reports.push(r);
    }
    let _ = lock.remove();
    reports
}

/// What the acceptor read and measured, per run.
struct AcceptorReport {
    request: Vec<u8>,
    upload: Vec<u8>,
    sequence: u16,
    rewritten: (u64, u64),
}

/// sn2: takes each connection, serves the second half, reads the rest.
fn acceptor(n: Nodes, runs: usize, total: usize, ready: mpsc::Sender<()>) -> Vec<AcceptorReport> {
    netns::enter(&n.ns_sn2).unwrap();
    let control = TcpListener::bind(SocketAddrV6::new(n.sn2, CONTROL_PORT, 0, 0)).unwrap();
    ready.send(()).unwrap();
    let cfg = AcceptorConfig {
        dsa: n.dsa,
        care_of: n.sn2,
        node_id: 2,
        key: key(),
        timeouts: Timeouts::default(),
        path: PathBackend::Queue(QUEUE),
        ports: vec![PORT],
        contact: false,
    };
    let mut sequences = Sequences::default();
    let mut reports = vec![];
    for run in 0..runs {
        let mut a = accept_one(&control, &cfg, &sequences).expect("accept a handoff");
        assert_eq!(a.app, ((total / 2) as u64).to_be_bytes());
        assert_eq!(a.from_node, 1);
        a.stream.write_all(&stream(total / 2..total, run)).unwrap();
        let mut request = vec![0; REQUEST_LEN];
        a.stream.read_exact(&mut request).unwrap();
        let mut upload = Vec::new();
        a.stream.read_to_end(&mut upload).unwrap();
        let (sequence, rewritten) = (a.sequence, a.rewritten());
        let client = *v6(a.stream.peer_addr().unwrap()).ip();
        let held = a.finish();
        sequences.record(client, held);
        reports.push(AcceptorReport {
            request,
            upload,
            sequence,
            rewritten,
        });
    }
    reports
}

fn start_daemon(tb: &Testbed, node: &str, conf: &str) -> Daemon {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testbed/conf/{conf}")),
    )
    .unwrap();
    let mut d = Daemon::new(&format!("hof-{node}"), &text);
    d.spawn_in_netns_with(&tb.ns(node), &["-d", "1", "--datapath", "user"]);
    d
}

/// Stops a daemon with SIGTERM (it removes its rules) and waits for it.
fn stop(mut d: Daemon) {
    if d.child.is_some() {
        d.signal(libc::SIGTERM);
        d.wait_exit();
    }
}

/// The testbed with the DSA on sn2 and mip6d on ha1, the client and sn1 (contact),
/// once ha1 holds the DSA's registration. Dropped in reverse order: daemons, then the
/// testbed.
struct Setup {
    daemons: Vec<Daemon>,
    n: Nodes,
    tb: Testbed,
}

impl Setup {
    fn stop(&mut self) {
        for d in self.daemons.drain(..).rev() {
            stop(d);
        }
    }

    fn logs(&self) {
        for d in &self.daemons {
            eprintln!("--- {}:\n{}", d.dir.display(), d.stderr());
        }
    }
}

fn setup(tag: &str) -> Setup {
    require("ds_handoff_e2e", &[Tool::Ip, Tool::Ip6tables, Tool::Ipset]);
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
    let dsa = n.dsa.to_string();
    let gw = tb.addr("M6_ROUTER_SN2NET_ADDR").to_string();
    tb.sh(
        "sn2",
        &[
            "ip",
            "addr",
            "add",
            &format!("{dsa}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    );
    tb.sh(
        "sn2",
        &["ip", "-6", "rule", "add", "from", &dsa, "lookup", "4242"],
    );
    tb.sh(
        "sn2",
        &[
            "ip", "-6", "route", "add", "default", "via", &gw, "mtu", "1476", "table", "4242",
        ],
    );
    let ha = start_daemon(&tb, "ha1", "ha1.conf");
    let cn = start_daemon(&tb, "client", "cn.conf");
    let contact = start_daemon(&tb, "sn1", "contact.conf");
    wait_for("ha1 to register the DSA for sn1", || {
        let bc = mip6ctl_json(&ha.socket, "bc");
        bc.to_string().contains(&n.sn1.to_string()).then_some(())
    });
    Setup {
        daemons: vec![ha, cn, contact],
        n,
        tb,
    }
}

fn scenario(tag: &str, runs: usize, total: usize) {
    let mut su = setup(tag);
    let n = su.n.clone();
    let dsa = n.dsa.to_string();
    let cn_socket = su.daemons[1].socket.clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let donor_t = {
        let (n, r) = (n.clone(), ready_tx.clone());
        thread::spawn(move || donor(n, runs, total, r))
    };
    let acceptor_t = {
        let (n, r) = (n.clone(), ready_tx.clone());
        thread::spawn(move || acceptor(n, runs, total, r))
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
            let mut out = vec![];
            for run in 0..runs {
                // The previous acceptor deleted its binding: this connection reaches
                // the contact node again.
                wait_for("the client's binding to go", || {
                    let bc = mip6ctl_json(&cn_socket, "bc").to_string();
                    (!bc.contains(&n.sn2.to_string())).then_some(())
                });
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
                // Bound now: the client's mip6d sends to sn2 with a routing header.
                let bc = mip6ctl_json(&cn_socket, "bc").to_string();
                s.write_all(&stream(0..UPLOAD_LEN, 2))
                    .expect("upload after the handoff");
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).expect("clean end of stream");
                assert!(rest.is_empty());
                assert_eq!(
                    sha256(&got),
                    sha256(&stream(0..total, run)),
                    "run {run}: download corrupted"
                );
                out.push((gap, bc));
            }
            out
        })
    };
    let client = client_t.join();
    if client.is_err() {
        su.logs();
    }
    let client = client.expect("client");
    let donor = donor_t.join().expect("donor");
    let acc = acceptor_t.join().expect("acceptor");
    let counters = tcp_counters(&n.ns_client);
    su.stop();

    for k in [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpExtPAWSEstab",
        "TcpExtTCPAbortOnData",
    ] {
        assert_eq!(counters.get(k), Some(&0), "client {k}: {counters:?}");
    }
    let routes = su.tb.sh(
        "router",
        &["ip", "-6", "route", "show", &format!("{dsa}/128")],
    );
    assert!(
        routes.trim().is_empty(),
        "a host route for the DSA: {routes}"
    );
    for run in 0..runs {
        let (d, a, (gap, bc)) = (&donor[run], &acc[run], &client[run]);
        assert_eq!(
            a.request,
            stream(0..REQUEST_LEN, 1),
            "request did not travel"
        );
        assert_eq!(
            sha256(&a.upload),
            sha256(&stream(0..UPLOAD_LEN, 2)),
            "upload corrupted"
        );
        assert_eq!(d.outcome, Outcome::Completed);
        assert!(d.home_test > Duration::ZERO);
        // The redirect was Mobile IPv6: the client's binding cache mapped the DSA to sn2,
        // and sn2 rewrote the connection's packets both ways.
        assert!(
            bc.contains(&dsa) && bc.contains(&n.sn2.to_string()),
            "client binding cache: {bc}"
        );
        assert!(a.rewritten.0 > 0 && a.rewritten.1 > 0, "{:?}", a.rewritten);
        if run > 0 {
            assert_ne!(
                a.sequence,
                acc[run - 1].sequence,
                "a fresh BU sequence number"
            );
        }
        eprintln!(
            "{tag} run {run}: state {} B, home test {:.3} ms, BU sequence {}, client's longest pause {:.3} ms, rewritten in/out {:?}\n{}",
            d.state_bytes,
            d.home_test.as_secs_f64() * 1e3,
            a.sequence,
            gap.as_secs_f64() * 1e3,
            a.rewritten,
            d.phases
        );
        assert!(
            d.phases.0.iter().all(|t| t.micros().is_some()),
            "{}",
            d.phases
        );
    }
}

#[test]
fn handoffs_redirect_the_client_with_mobile_ipv6_and_release_the_binding() {
    scenario("m", 2, 1_000_000);
}

/// `testbed/run handoff` (the experiment, through mip6d on sn1 and sn2 with
/// `m6-ds-server app`) with a small count: every run intact, no reset, the phase table
/// from `mip6ctl handoffs`, and the extra run handed sn1 → sn2 → sn1 with the client
/// uploading during the download.
#[test]
fn testbed_run_handoff_reports_intact_transfers() {
    require("ds_handoff_e2e", &[Tool::Ip, Tool::Ip6tables, Tool::Ipset]);
    let server = env!("CARGO_BIN_EXE_m6-ds-server");
    let prefix = format!("hoft{}", std::process::id() % 100_000);
    let state = std::env::temp_dir().join(format!("mip6d-testbed-{prefix}"));
    let out = Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/run"))
        .args([
            "--prefix", &prefix, "handoff", "--count", "2", "--size", "400000",
        ])
        .env("M6_STATE_DIR", &state)
        .env("M6_QUIET", "1")
        .env("M6_DS_SERVER", server)
        .env("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d"))
        .env("M6_MIP6CTL", env!("CARGO_BIN_EXE_mip6ctl"))
        .output()
        .expect("spawn testbed/run");
    let text = testbed::text(&out);
    let _ = Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/run"))
        .args(["--prefix", &prefix, "down"])
        .env("M6_STATE_DIR", &state)
        .env("M6_QUIET", "1")
        .output();
    let _ = std::fs::remove_dir_all(&state);
    eprintln!("{text}");
    assert!(out.status.success(), "testbed/run handoff failed:\n{text}");
    assert_eq!(
        text.matches("(sn1 -> sn2): sha256 intact, request+upload intact")
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("(sn1 -> sn2 -> sn1): sha256 intact, request+upload intact")
            && text.contains("bytes uploaded during the download"),
        "{text}"
    );
    // Four handoffs, all run by the daemons and recorded by them.
    assert!(text.contains("4 of 4 handoffs completed"), "{text}");
    assert!(text.contains("phase (sn2 -> sn1)"), "{text}");
    assert!(text.contains("resets seen by the client: 0"), "{text}");
    assert!(text.contains("6 binding management"), "{text}");
    assert!(text.contains("client-perceived gap"), "{text}");
}

/// One connection handed sn1 → sn2 → sn1: the way back to the contact node is the
/// deletion of the client's binding (its traffic then comes through ha1's tunnel again),
/// with a sequence number past the acceptor's.
#[test]
fn a_connection_goes_to_sn2_and_back_to_the_contact_node() {
    const TOTAL: usize = 1_500_000;
    let mut su = setup("b");
    let n = su.n.clone();
    let cfg_donor = |me: u32, care_of: Ipv6Addr| DonorConfig {
        contact: Contact {
            dsa: n.dsa,
            home_agent: n.ha,
            care_of,
        },
        node_id: me,
        key: key(),
        drain: HandoffDrain::Off,
        drain_bound: Duration::from_secs(1),
        timeouts: Timeouts::default(),
    };
    let cfg_acceptor = |me: u32, care_of: Ipv6Addr, contact: bool| AcceptorConfig {
        dsa: n.dsa,
        care_of,
        node_id: me,
        key: key(),
        timeouts: Timeouts::default(),
        path: PathBackend::Queue(QUEUE),
        ports: vec![PORT],
        contact,
    };
    let (d1, a1) = (cfg_donor(1, n.sn1), cfg_acceptor(1, n.sn1, true));
    let (d2, a2) = (cfg_donor(2, n.sn2), cfg_acceptor(2, n.sn2, false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let sn1 = {
        let (n, r) = (n.clone(), ready_tx.clone());
        thread::spawn(move || {
            netns::enter(&n.ns_sn1).unwrap();
            let mut lock = NetLock::install("hof_lock").unwrap();
            let listener = TcpListener::bind(SocketAddrV6::new(n.dsa, PORT, 0, 0)).unwrap();
            let control = TcpListener::bind(SocketAddrV6::new(n.sn1, CONTROL_PORT, 0, 0)).unwrap();
            r.send(()).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            let t = Instant::now();
            while tcp_repair::unread_bytes(s.as_fd()).unwrap() < REQUEST_LEN as u32 {
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "request never arrived"
                );
                thread::sleep(Duration::from_millis(1));
            }
            s.write_all(&stream(0..TOTAL / 3, 0)).unwrap();
            let to = SocketAddrV6::new(n.sn2, CONTROL_PORT, 0, 0);
            let (r1, back) = hand_off(s, to, 1, vec![], &d1, &mut lock, None).unwrap();
            assert!(back.is_none());
            let mut a = accept_one(&control, &a1, &Sequences::default()).expect("back home");
            a.stream
                .write_all(&stream(2 * TOTAL / 3..TOTAL, 0))
                .unwrap();
            let mut request = vec![0; REQUEST_LEN];
            a.stream.read_exact(&mut request).unwrap();
            let mut upload = Vec::new();
            a.stream.read_to_end(&mut upload).unwrap();
            let (seq, phases) = (a.sequence, a.phases);
            a.finish();
            let _ = lock.remove();
            (r1, seq, phases, request, upload)
        })
    };
    let sn2 = {
        let (n, r) = (n.clone(), ready_tx.clone());
        thread::spawn(move || {
            netns::enter(&n.ns_sn2).unwrap();
            let mut lock = NetLock::install("hof_lock").unwrap();
            let control = TcpListener::bind(SocketAddrV6::new(n.sn2, CONTROL_PORT, 0, 0)).unwrap();
            r.send(()).unwrap();
            let mut a = accept_one(&control, &a2, &Sequences::default()).expect("accept");
            a.stream
                .write_all(&stream(TOTAL / 3..2 * TOTAL / 3, 0))
                .unwrap();
            // The client's acknowledgements reach sn2 through its binding: wait for the
            // first before handing on, or a fast handoff could freeze before any came.
            let t = Instant::now();
            while a.rewritten().0 == 0 && t.elapsed() < Duration::from_secs(5) {
                thread::sleep(Duration::from_millis(1));
            }
            let seq = a.sequence;
            let (s, prepared, path) = a.into_handoff();
            assert_eq!(prepared.bu_sequence, Some(seq));
            let counters = path.as_ref().expect("sn2's data path").counters.clone();
            let to = SocketAddrV6::new(n.sn1, CONTROL_PORT, 0, 0);
            let (r2, back) = hand_off(s, to, 1, vec![], &d2, &mut lock, Some(prepared)).unwrap();
            assert!(back.is_none());
            // Read once the data path's threads are joined: before, a packet taken off
            // the queue may not be counted yet.
            drop(path);
            let rewritten = {
                use std::sync::atomic::Ordering::Relaxed;
                (
                    counters.rewritten_in.load(Relaxed),
                    counters.rewritten_out.load(Relaxed),
                )
            };
            let _ = lock.remove();
            (r2, seq, rewritten)
        })
    };
    for _ in 0..2 {
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server nodes ready");
    }
    let cn_socket = su.daemons[1].socket.clone();
    let client = {
        let n = n.clone();
        thread::spawn(move || {
            netns::enter(&n.ns_client).unwrap();
            let mut s = TcpStream::connect(SocketAddrV6::new(n.dsa, PORT, 0, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&stream(0..REQUEST_LEN, 1)).unwrap();
            let mut got = vec![0; TOTAL];
            let mut off = 0;
            while off < TOTAL {
                let k = s.read(&mut got[off..]).expect("download");
                assert!(k > 0, "end of stream after {off} bytes");
                off += k;
            }
            let bc_after = mip6ctl_json(&cn_socket, "bc").to_string();
            s.write_all(&stream(0..UPLOAD_LEN, 2)).expect("upload");
            s.shutdown(std::net::Shutdown::Write).unwrap();
            s.read_to_end(&mut Vec::new()).expect("clean end of stream");
            (got, bc_after)
        })
    };
    let c = client.join();
    if c.is_err() {
        su.logs();
    }
    let (got, bc_after) = c.expect("client");
    let (r1, seq_home, phases_home, request, upload) = sn1.join().expect("sn1");
    let (r2, seq_sn2, rewritten) = sn2.join().expect("sn2");
    let counters = tcp_counters(&n.ns_client);
    su.stop();

    assert_eq!(
        sha256(&got),
        sha256(&stream(0..TOTAL, 0)),
        "download corrupted"
    );
    assert_eq!(
        request,
        stream(0..REQUEST_LEN, 1),
        "request did not travel twice"
    );
    assert_eq!(
        sha256(&upload),
        sha256(&stream(0..UPLOAD_LEN, 2)),
        "upload corrupted"
    );
    for k in [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpExtPAWSEstab",
        "TcpExtTCPAbortOnData",
    ] {
        assert_eq!(counters.get(k), Some(&0), "client {k}");
    }
    assert_eq!(
        (r1.outcome, r2.outcome),
        (Outcome::Completed, Outcome::Completed)
    );
    assert!(
        !bc_after.contains(&n.sn2.to_string()),
        "binding not deleted: {bc_after}"
    );
    assert_eq!(
        seq_home,
        seq_sn2.wrapping_add(1),
        "the deletion follows sn2's binding"
    );
    // sn2 took the client's segments with a routing header for the DSA: the client had
    // a binding to sn2 in between.
    assert!(rewritten.0 > 0 && rewritten.1 > 0, "{rewritten:?}");
    eprintln!(
        "A→B→A: state {} B then {} B; back home:\n{}",
        r1.state_bytes, r2.state_bytes, phases_home
    );
}
