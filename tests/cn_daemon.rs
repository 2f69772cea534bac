//! The correspondent node role of the real `mip6d` on the `user` data path, end to end on
//! the namespace testbed (`testbed/run`): return routability, a Binding Update with its
//! Binding Acknowledgement, the binding in `mip6ctl bc`, route-optimised traffic from an
//! ordinary socket, and a clean SIGTERM.
//!
//! - CN: `mip6d` (`NodeConfig CN; Datapath user;`) in the `client` namespace.
//! - MN: a stub in this test, on foreign1, speaking through raw sockets from the `mn`
//!   namespace, with the keys and messages of `mip6d::crypto` and `mip6d::wire` (the
//!   same stub as `tests/proto_cn.rs`, over the network).
//!
//! **Stand-in for the home agent.** The HA role is not wired into the daemon yet, so
//! nothing tunnels the HoA's traffic to the MN. Instead the MN owns its HoA on `lo`, and
//! the router (and ha1, for its own packets) get a host route for the HoA toward the
//! MN's care-of address on foreign1. The Home Test then reaches the MN "at home" without a
//! tunnel; everything between CN and CoA is what it would be with an HA.
//!
//! The MN's kernel has no MIP6 either: it would answer the CN's Type 2 Routing Header
//! with a Parameter Problem. The test's own queue on the MN (raw PREROUTING) takes every
//! Mobility Header and every packet with a Type 2 Routing Header: it records them, drops
//! the Mobility Headers (the stub reads them from the record) and hands data packets back
//! with the routing header processed (`rewrite::receive_rh2`), so the UDP socket on the
//! HoA gets the datagram.
//!
//! Needs root, iproute2 and ip6tables; without them the test fails and says so.

mod daemon_support;
mod proto_support;

use daemon_support::{Daemon, PATIENCE};
use mip6d::crypto::rr;
use mip6d::datapath::rewrite;
use mip6d::sys::netns;
use mip6d::sys::nfqueue::{NfQueue, Verdict};
use mip6d::sys::raw::{RawSocket, IPPROTO_RAW};
use mip6d::wire::checksum;
use mip6d::wire::mh::{self, Message, MhRepr};
use mip6d::wire::packet::{self, Header, Ipv6Header, Packet, PacketBuilder, Payload};
use mip6d::wire::proto;
use proto_support::{ack, MnStub};
use serde_json::Value;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// --- environment ------------------------------------------------------------------------------

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn tool_runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn require_environment() {
    let mut missing = Vec::new();
    if effective_uid() != Some(0) {
        missing.push("root (namespaces, netfilter queues and raw sockets need it): run `sudo -E cargo test --test cn_daemon`");
    }
    if !tool_runs("ip", "-V") {
        missing.push("the `ip` command: apt-get install iproute2");
    }
    if !tool_runs("ip6tables", "-V") {
        missing.push("the `ip6tables` command: apt-get install iptables");
    }
    assert!(
        missing.is_empty(),
        "the CN daemon test cannot run; it needs:\n  - {}",
        missing.join("\n  - ")
    );
}

// --- testbed ------------------------------------------------------------------------------------

/// One testbed instance; dropping it runs `down`, so a failed assertion still removes every
/// namespace it created.
struct Testbed {
    prefix: String,
    state_dir: PathBuf,
    state: HashMap<String, String>,
}

impl Testbed {
    fn up(tag: &str) -> Testbed {
        let prefix = format!("cn{tag}{}", std::process::id());
        let state_dir = std::env::temp_dir().join(format!("mip6d-cnd-{prefix}"));
        std::fs::create_dir_all(&state_dir).expect("create state dir");
        let mut tb = Testbed {
            prefix,
            state_dir,
            state: HashMap::new(),
        };
        let out = tb.run(&["up"]);
        assert!(out.status.success(), "testbed/run up:\n{}", text(&out));
        let out = tb.run(&["move", "mn", "foreign1"]);
        assert!(out.status.success(), "testbed/run move:\n{}", text(&out));
        let path = tb.state_dir.join(format!("{}.env", tb.prefix));
        let body = std::fs::read_to_string(&path).expect("read state file");
        tb.state = body
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tb
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed/run"))
            .arg("--prefix")
            .arg(&self.prefix)
            .args(args)
            .env("M6_STATE_DIR", &self.state_dir)
            .env("M6_QUIET", "1")
            .output()
            .expect("spawn testbed/run")
    }

    fn addr(&self, key: &str) -> Ipv6Addr {
        self.state
            .get(key)
            .unwrap_or_else(|| panic!("state file has no {key}: {:?}", self.state.keys()))
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn sh(&self, node: &str, cmd: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(cmd)
            .output()
            .expect("spawn ip netns exec");
        assert!(out.status.success(), "{node}: {cmd:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
        let _ = std::fs::remove_dir_all(&self.state_dir);
        let left = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mine = format!("{}-", self.prefix);
        if !std::thread::panicking() {
            assert!(
                !left.lines().any(|l| l.starts_with(&mine)),
                "namespaces left behind:\n{left}"
            );
        }
    }
}

// --- the mobile node's receive queue -------------------------------------------------------------

/// Queue number on the MN (its own namespace: no clash with the daemon's).
const MN_QUEUE: u16 = 7;

/// Receives, in the MN's namespace, every Mobility Header and every packet with a Type 2
/// Routing Header, and sends each (as it arrived) to the test thread.
struct MnQueue {
    stop: Arc<AtomicBool>,
    rx: mpsc::Receiver<Vec<u8>>,
    handle: Option<JoinHandle<()>>,
}

impl MnQueue {
    /// Returns once the queue is bound, so the rules added afterwards never meet an
    /// unbound queue.
    fn start(ns: &str, hoa: Ipv6Addr) -> MnQueue {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns = ns.to_string();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let setup = netns::enter(&ns).and_then(|_| {
                let q = NfQueue::bind(MN_QUEUE)?;
                q.set_read_timeout(Some(Duration::from_millis(50)))?;
                Ok(q)
            });
            let mut q = match setup {
                Ok(q) => {
                    ready_tx.send(Ok(())).unwrap();
                    q
                }
                Err(e) => {
                    ready_tx.send(Err(e)).unwrap();
                    return;
                }
            };
            while !s.load(Ordering::Relaxed) {
                let p = match q.recv() {
                    Ok(p) => p,
                    // EINTR: a socket with a receive timeout returns it after the
                    // process was stopped and continued, even without a handler.
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
                    {
                        continue
                    }
                    Err(e) => panic!("MN nfqueue recv: {e}"),
                };
                let _ = tx.send(p.payload.clone());
                let is_mh = packet::parse(&p.payload)
                    .map(|w| w.mobility().is_some())
                    .unwrap_or(false);
                let mut data = p.payload.clone();
                let r = if is_mh {
                    // The stub reads it from the record; the kernel has no MH handler.
                    q.verdict(p.id, Verdict::Drop, None)
                } else if matches!(rewrite::receive_rh2(&mut data), Ok(i) if i.home == hoa) {
                    q.verdict(p.id, Verdict::Accept, Some(&data))
                } else {
                    q.verdict(p.id, Verdict::Accept, None)
                };
                r.expect("MN verdict");
            }
        });
        ready_rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("bind the MN's nfqueue: {e}"));
        MnQueue {
            stop,
            rx,
            handle: Some(handle),
        }
    }

    /// The next recorded packet for which `want` returns Some, within `PATIENCE`.
    fn wait<T>(&self, what: &str, mut want: impl FnMut(&Packet, &[u8]) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the MN never received {what}"));
            if let Ok(p) = packet::parse(&bytes) {
                if let Some(v) = want(&p, &bytes) {
                    return v;
                }
            }
        }
    }
}

impl Drop for MnQueue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let r = h.join();
            if !std::thread::panicking() {
                r.expect("MN queue worker panicked");
            }
        }
    }
}

// --- packets ---------------------------------------------------------------------------------------

/// A whole IPv6 packet from `b` carrying the Mobility Header `raw` exactly as given (its
/// checksum and authenticator stay as the stub computed them).
fn with_mh(b: &PacketBuilder, raw: &[u8]) -> Vec<u8> {
    let repr = MhRepr::parse(raw).expect("stub MH parses");
    let mut pkt = b.build(Payload::Mobility(&repr));
    let at = pkt.len() - raw.len();
    pkt[at..].copy_from_slice(raw);
    pkt
}

fn test_init(message: Message, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let repr = MhRepr {
        message,
        options: vec![],
    };
    PacketBuilder::new(src, dst).build(Payload::Mobility(&repr))
}

/// The Mobility Header of `p` and its bytes as received.
fn mobility<'a>(p: &'a Packet, bytes: &'a [u8]) -> Option<(&'a MhRepr, &'a [u8])> {
    p.headers.iter().find_map(|h| match h {
        Header::Mobility {
            repr,
            checksum_ok: true,
            offset,
        } => Some((repr, bytes.get(*offset..*offset + repr.buffer_len())?)),
        _ => None,
    })
}

/// A UDP datagram CoA → `dst` with a Home Address option, its checksum over the HoA (as a
/// route-optimising MN sends it, RFC 6275 §11.3.1).
fn udp_with_hao(hoa: Ipv6Addr, coa: Ipv6Addr, dst: Ipv6Addr, port: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&port.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let ck = checksum::compute(&hoa, &dst, proto::UDP, &u);
    u[6..8].copy_from_slice(&ck.to_be_bytes());
    let mut pkt = vec![0u8; 40];
    // Destination Options, 24 bytes: PadN(4) puts the HAO at 8n+6 (RFC 6275 §6.3), as
    // Linux lays it out.
    pkt.extend_from_slice(&[proto::UDP, 2, 1, 2, 0, 0, 0xc9, 16]);
    pkt.extend_from_slice(&hoa.octets());
    pkt.extend_from_slice(&u);
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: (pkt.len() - 40) as u16,
        next_header: proto::DESTINATION_OPTIONS,
        hop_limit: 64,
        src: coa,
        dst,
    }
    .emit(&mut pkt);
    pkt
}

fn rh2_home(p: &Packet) -> Option<Ipv6Addr> {
    p.headers.iter().find_map(|h| match h {
        Header::Type2Routing(r) if r.segments_left == 1 => Some(r.home_address),
        _ => None,
    })
}

/// `recv_from`, retrying on EINTR (see the MN queue's worker).
fn recv_udp(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match sock.recv_from(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

fn mip6ctl_json(socket: &std::path::Path, what: &str) -> Value {
    let out = daemon_support::mip6ctl(&[what, "--json", "--socket", socket.to_str().unwrap()]);
    assert!(out.status.success(), "mip6ctl {what}:\n{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("mip6ctl --json prints JSON")
}

// --- the test ------------------------------------------------------------------------------------

#[test]
fn correspondent_daemon_binds_a_mobile_node_and_route_optimises_its_traffic() {
    require_environment();
    let started = Instant::now();
    let tb = Testbed::up("d");
    let (hoa, coa, cn) = (
        tb.addr("M6_MN_HOME_ADDR"),
        tb.addr("M6_MN_COA_FOREIGN1"),
        tb.addr("M6_CLIENT_ADDR"),
    );

    // The stand-in for the HA tunnel (see the top of the file).
    tb.sh(
        "mn",
        &[
            "ip",
            "addr",
            "add",
            &format!("{hoa}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    );
    tb.sh(
        "router",
        &[
            "ip",
            "-6",
            "route",
            "add",
            &format!("{hoa}/128"),
            "via",
            &coa.to_string(),
            "dev",
            "foreign1",
        ],
    );
    let router_uplink1 = tb.addr("M6_ROUTER_UPLINK1_ADDR");
    tb.sh(
        "ha1",
        &[
            "ip",
            "-6",
            "route",
            "add",
            &format!("{hoa}/128"),
            "via",
            &router_uplink1.to_string(),
            "dev",
            "uplink1",
        ],
    );

    // The MN's queue, then its rules (bind first: an unbound queue drops).
    let mnq = MnQueue::start(&tb.ns("mn"), hoa);
    let q = MN_QUEUE.to_string();
    tb.sh(
        "mn",
        &[
            "ip6tables",
            "-w",
            "-t",
            "raw",
            "-A",
            "PREROUTING",
            "-p",
            "135",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q,
        ],
    );
    tb.sh(
        "mn",
        &[
            "ip6tables",
            "-w",
            "-t",
            "raw",
            "-A",
            "PREROUTING",
            "-m",
            "rt",
            "--rt-type",
            "2",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q,
        ],
    );

    // The daemon, in the client's namespace (`ip netns exec` execs it: same pid).
    let mut d = Daemon::new(
        "cnd",
        "NodeConfig CN;\nDatapath user;\nDebugLevel 1;\nDoRouteOptimizationCN enabled;\n",
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &tb.ns("client")])
        .arg(env!("CARGO_BIN_EXE_mip6d"))
        .arg("-f")
        .arg("-c")
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
    let rules = tb.sh("client", &["ip6tables-save"]);
    assert_eq!(
        rules.matches("NFQUEUE").count(),
        2,
        "the two receive rules:\n{rules}"
    );

    let send = netns::run_in(&tb.ns("mn"), || RawSocket::new(IPPROTO_RAW))
        .unwrap()
        .expect("raw socket on the MN");
    let mut m = MnStub::new(&hoa.to_string(), &coa.to_string(), &cn.to_string());

    // Return routability: HoTI from the HoA, CoTI from the CoA.
    send.send_to(
        &test_init(Message::HomeTestInit { cookie: [0x11; 8] }, hoa, cn),
        cn,
    )
    .expect("send HoTI");
    send.send_to(
        &test_init(Message::CareOfTestInit { cookie: [0x22; 8] }, coa, cn),
        cn,
    )
    .expect("send CoTI");
    while m.home.is_none() || m.care_of.is_none() {
        mnq.wait("HoT and CoT", |p, bytes| {
            let (repr, _) = mobility(p, bytes)?;
            match repr.message {
                Message::HomeTest {
                    nonce_index,
                    cookie,
                    keygen_token,
                } => {
                    assert_eq!((p.ip.src, p.ip.dst, cookie), (cn, hoa, [0x11; 8]));
                    m.home = Some((nonce_index, keygen_token));
                    Some(())
                }
                Message::CareOfTest {
                    nonce_index,
                    cookie,
                    keygen_token,
                } => {
                    assert_eq!((p.ip.src, p.ip.dst, cookie), (cn, coa, [0x22; 8]));
                    m.care_of = Some((nonce_index, keygen_token));
                    Some(())
                }
                _ => None,
            }
        });
    }

    // The Binding Update: from the CoA, Home Address option, Nonce Indices and Binding
    // Authorization Data, A flag; lifetime 50 units (200 s).
    let bu = m.bu_bytes(1, ack(), 50);
    let mut b = PacketBuilder::new(coa, cn);
    b.home_address_option = Some(hoa);
    send.send_to(&with_mh(&b, &bu), cn).expect("send BU");
    let (status, sequence) = mnq.wait("a Binding Acknowledgement", |p, bytes| {
        let (repr, raw) = mobility(p, bytes)?;
        let Message::BindingAck {
            status, sequence, ..
        } = repr.message
        else {
            return None;
        };
        // §9.5.4, §6.4: to the CoA, with a Type 2 Routing Header holding the HoA.
        assert_eq!((p.ip.src, p.ip.dst, rh2_home(p)), (cn, coa, Some(hoa)));
        let (covered, auth) = mh::auth_data_region(raw).expect("BA carries an authenticator");
        assert!(
            rr::verify_authenticator(&m.kbm(false), &coa, &cn, &covered, &auth),
            "BA authenticator"
        );
        Some((status, sequence))
    });
    assert_eq!((status, sequence), (0, 1), "BA accepted, sequence 1");

    // The binding as the operator sees it.
    let bc = mip6ctl_json(&d.socket, "bc");
    let entries = bc["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{bc}");
    assert_eq!(entries[0]["home_address"], hoa.to_string());
    assert_eq!(entries[0]["care_of_address"], coa.to_string());
    assert_eq!(entries[0]["kind"], "cache");
    let rules = tb.sh("client", &["ip6tables-save"]);
    assert_eq!(
        rules.matches("NFQUEUE").count(),
        3,
        "receive rules plus the binding's route optimisation rule:\n{rules}"
    );

    // Route optimisation on the CN's data path: an ordinary socket on the client sends to
    // the HoA; it leaves toward the CoA with a Type 2 Routing Header.
    let mn_sock = netns::run_in(&tb.ns("mn"), move || {
        UdpSocket::bind(SocketAddr::V6(SocketAddrV6::new(hoa, 5005, 0, 0)))
    })
    .unwrap()
    .expect("UDP socket on the HoA");
    mn_sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let cn_sock = netns::run_in(&tb.ns("client"), || {
        UdpSocket::bind(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::UNSPECIFIED,
            0,
            0,
            0,
        )))
    })
    .unwrap()
    .expect("UDP socket on the client");
    cn_sock
        .send_to(b"route optimised", SocketAddrV6::new(hoa, 5005, 0, 0))
        .unwrap();
    mnq.wait("the datagram with a Type 2 Routing Header", |p, _| {
        let udp = p
            .headers
            .iter()
            .any(|h| matches!(h, Header::Upper { protocol: 17, .. }));
        (udp && p.ip.src == cn && p.ip.dst == coa && rh2_home(p) == Some(hoa)).then_some(())
    });
    let mut buf = [0u8; 64];
    let (n, from) = recv_udp(&mn_sock, &mut buf).expect("datagram on the HoA");
    assert_eq!(&buf[..n], b"route optimised");
    assert_eq!(from.ip(), std::net::IpAddr::V6(cn));

    // The other direction: the MN sends from its CoA with a Home Address option; the
    // CN's receive queue gives the datagram to the client's socket as coming from the HoA.
    let cn_port = cn_sock.local_addr().unwrap().port();
    cn_sock.set_read_timeout(Some(PATIENCE)).unwrap();
    send.send_to(&udp_with_hao(hoa, coa, cn, cn_port, b"from the HoA"), cn)
        .expect("send UDP with HAO");
    let (n, from) = recv_udp(&cn_sock, &mut buf).expect("datagram with HAO delivered");
    assert_eq!(&buf[..n], b"from the HoA");
    assert_eq!(from.ip(), std::net::IpAddr::V6(hoa), "source is the HoA");

    // Deregistration (lifetime 0, Kbm from the home keygen token only): BA, and the
    // binding and its rule are gone.
    let bu = m.bu_bytes(2, ack(), 0);
    send.send_to(&with_mh(&b, &bu), cn)
        .expect("send deregistration BU");
    let (status, sequence) = mnq.wait("the deregistration BA", |p, bytes| {
        let (repr, raw) = mobility(p, bytes)?;
        let Message::BindingAck {
            status, sequence, ..
        } = repr.message
        else {
            return None;
        };
        let (covered, auth) = mh::auth_data_region(raw).expect("BA carries an authenticator");
        assert!(
            rr::verify_authenticator(&m.kbm(true), &coa, &cn, &covered, &auth),
            "deregistration BA authenticator"
        );
        Some((status, sequence))
    });
    assert_eq!((status, sequence), (0, 2));
    let bc = mip6ctl_json(&d.socket, "bc");
    assert_eq!(bc["entries"].as_array().map(Vec::len), Some(0), "{bc}");
    let rules = tb.sh("client", &["ip6tables-save"]);
    assert_eq!(
        rules.matches("NFQUEUE").count(),
        2,
        "the binding's rule went with it:\n{rules}"
    );
    // Without a binding, a Home Address option is refused with Binding Error status 1
    // (RFC 6275 §9.3.1), and the datagram is not delivered.
    send.send_to(&udp_with_hao(hoa, coa, cn, cn_port, b"unbound"), cn)
        .expect("send UDP with HAO");
    mnq.wait("a Binding Error", |p, bytes| {
        let (repr, _) = mobility(p, bytes)?;
        match repr.message {
            Message::BindingError {
                status,
                home_address,
            } => {
                assert_eq!(
                    (p.ip.src, p.ip.dst, status, home_address),
                    (cn, coa, 1, hoa)
                );
                Some(())
            }
            _ => None,
        }
    });
    cn_sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        recv_udp(&cn_sock, &mut buf).is_err(),
        "a HAO without binding must not be delivered"
    );

    let stats = mip6ctl_json(&d.socket, "stats");
    let count = |name: &str, dir: &str| {
        stats["mobility_header"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e[dir].as_u64())
            .unwrap()
    };
    assert_eq!(
        (
            count("HoTI", "received"),
            count("CoTI", "received"),
            count("BU", "received")
        ),
        (1, 1, 2),
        "{stats}"
    );
    assert_eq!(
        (
            count("HoT", "sent"),
            count("CoT", "sent"),
            count("BA", "sent"),
            count("BE", "sent")
        ),
        (1, 1, 2, 1),
        "{stats}"
    );

    // SIGTERM: exit 0, and every rule the daemon added is gone.
    d.signal(libc::SIGTERM);
    let st = d.wait_exit();
    assert!(st.success(), "mip6d exit: {st}\n{}", d.stderr());
    let rules = tb.sh("client", &["ip6tables-save"]);
    assert!(
        !rules.contains("NFQUEUE"),
        "rules left behind after SIGTERM:\n{rules}"
    );
    drop(mnq);
    let log = d.stderr();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "the daemon warned:\n{log}"
    );
    // MIP6D_TEST_LOG=1 shows what the daemon said (run with --nocapture).
    if std::env::var_os("MIP6D_TEST_LOG").is_some() {
        eprintln!("{log}");
    }
    eprintln!("cn_daemon: end to end in {:?}", started.elapsed());
}
