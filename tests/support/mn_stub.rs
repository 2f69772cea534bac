//! The mobile node's side of route optimisation with a real correspondent `mip6d`, over
//! the namespace testbed: a stub MN that speaks through raw sockets and a netfilter queue
//! in its own namespace, with the keys and messages of `mip6d::crypto` and `mip6d::wire`
//! (the [`MnStub`] of `tests/proto_support`, over the network).
//!
//! Used by `tests/cn_daemon.rs` (which asserts on what each step returns) and by
//! `examples/rr_client.rs` (which prints it, for `scripts/demo`). Both include it with
//! `#[path]` and must also have `mod proto_support;` (from `tests/proto_support/mod.rs`) and
//! `mod testbed;` (from `tests/support/testbed.rs`) at their crate root.
//!
//! **Stand-in for the home agent** (`tests/cn_daemon.rs`, `rr_client --stand-in`), which
//! keeps the CN test independent of the HA: the MN owns its HoA on `lo`, and
//! the router (and ha1, for its own packets) get a host route for the HoA toward the
//! MN's care-of address on foreign1 ([`install_stand_in`]). The Home Test then reaches
//! the MN "at home" without a tunnel; everything between CN and CoA is what it would be
//! with an HA.
//!
//! **With a real home agent** (`tests/ha_daemon.rs`), no stand-in: [`Mn::home_register`]
//! registers with a `mip6d` HA, and [`MnQueue::home_tunnel`] gives the MN its side of the
//! ip6ip6 tunnel (raw OUTPUT `-s HoA` → encapsulate CoA → HA; raw PREROUTING `-p 41` →
//! decapsulate what the HA sends, verdict `Repeat`).
//!
//! **The MN's receive queue.** The MN's kernel has no MIP6 either: it would answer the
//! CN's Type 2 Routing Header with a Parameter Problem. [`MnQueue`] (raw PREROUTING, in
//! the MN's namespace) takes every Mobility Header and every packet with a Type 2 Routing
//! Header: it records them, drops the Mobility Headers (the stub reads them from the
//! record) and hands data packets back with the routing header processed
//! (`rewrite::receive_rh2`), so the UDP socket on the HoA gets the datagram. A `mip6d`
//! with its data path in the same namespace would take the Mobility Headers first (its
//! `-p 135` rule); do not run one there.
#![allow(dead_code)]

use super::proto_support::{ack, MnStub};
use super::testbed::ip_netns;
use mip6d::crypto::rr;
use mip6d::datapath::rewrite;
use mip6d::sys::netns;
use mip6d::sys::nfqueue::{NfQueue, Verdict};
use mip6d::sys::raw::{RawSocket, IPPROTO_RAW};
use mip6d::wire::mh::{self, BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use mip6d::wire::packet::{self, Header, Packet, PacketBuilder, Payload};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the MN waits for an answer: long enough for a loaded CI machine, short enough
/// that a hang fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Queue number on the MN (its own namespace: no clash with the daemon's).
pub const MN_QUEUE: u16 = 7;

/// The UDP port the MN listens on at its home address.
pub const HOME_PORT: u16 = 5005;

/// The cookies of the Home and Care-of Test Init.
pub const HOME_COOKIE: [u8; 8] = [0x11; 8];
pub const CARE_OF_COOKIE: [u8; 8] = [0x22; 8];

// --- commands and the testbed's state file ------------------------------------------------------

pub fn state_addr(state: &HashMap<String, String>, key: &str) -> Result<Ipv6Addr, String> {
    state
        .get(key)
        .ok_or_else(|| format!("state file has no {key}"))?
        .parse()
        .map_err(|e| format!("{key}: {e}"))
}

// --- the stand-in for the home agent ------------------------------------------------------------

/// Where the stand-in routes go.
pub struct StandIn<'a> {
    pub mn_ns: &'a str,
    pub router_ns: &'a str,
    pub ha1_ns: &'a str,
    /// The router's address on uplink1 (`M6_ROUTER_UPLINK1_ADDR`): ha1's way to the HoA.
    pub router_uplink1: Ipv6Addr,
}

/// The HoA on the MN's `lo`, a host route for it on the router toward the CoA on
/// foreign1, and one on ha1 toward the router. Returns what it did, one line each.
pub fn install_stand_in(s: &StandIn, hoa: Ipv6Addr, coa: Ipv6Addr) -> Result<Vec<String>, String> {
    let host = format!("{hoa}/128");
    let (coa_s, up_s) = (coa.to_string(), s.router_uplink1.to_string());
    let steps: [(&str, Vec<&str>, String); 3] = [
        (
            s.mn_ns,
            vec!["ip", "addr", "add", &host, "dev", "lo", "nodad"],
            format!("mn: home address {hoa} on lo"),
        ),
        (
            s.router_ns,
            vec![
                "ip", "-6", "route", "add", &host, "via", &coa_s, "dev", "foreign1",
            ],
            format!("router: {hoa} via the care-of address {coa} on foreign1"),
        ),
        (
            s.ha1_ns,
            vec![
                "ip", "-6", "route", "add", &host, "via", &up_s, "dev", "uplink1",
            ],
            format!("ha1: {hoa} via the router ({up_s}) on uplink1"),
        ),
    ];
    let mut done = Vec::new();
    for (ns, cmd, what) in steps {
        ip_netns(ns, &cmd)?;
        done.push(what);
    }
    Ok(done)
}

// --- the mobile node's receive queue -------------------------------------------------------------

/// The two rules that feed [`MN_QUEUE`], as `ip6tables` arguments after `-A`/`-D`.
fn queue_rules() -> [Vec<String>; 2] {
    let q = MN_QUEUE.to_string();
    let rule = |m: &[&str]| {
        let mut v: Vec<String> = ["-t", "raw", "PREROUTING"].map(String::from).to_vec();
        v.extend(m.iter().map(|s| s.to_string()));
        v.extend(["-j", "NFQUEUE", "--queue-num", &q].map(String::from));
        v
    };
    [rule(&["-p", "135"]), rule(&["-m", "rt", "--rt-type", "2"])]
}

/// The MN's tunnel rules: ip6ip6 arriving, and what leaves from the HoA.
fn tunnel_rules(hoa: Ipv6Addr) -> [Vec<String>; 2] {
    let q = MN_QUEUE.to_string();
    let rule = |chain: &str, m: &[&str]| {
        let mut v: Vec<String> = vec!["-t".into(), "raw".into(), chain.into()];
        v.extend(m.iter().map(|s| s.to_string()));
        v.extend(["-j", "NFQUEUE", "--queue-num", &q].map(String::from));
        v
    };
    let src = format!("{hoa}/128");
    [
        rule("PREROUTING", &["-p", "41"]),
        rule("OUTPUT", &["-s", &src]),
    ]
}

fn ip6tables(ns: &str, op: &str, rule: &[String]) -> Result<String, String> {
    // ip6tables -w -t raw -A PREROUTING ...
    let mut cmd: Vec<&str> = vec!["ip6tables", "-w", &rule[0], &rule[1], op];
    cmd.extend(rule[2..].iter().map(String::as_str));
    ip_netns(ns, &cmd)
}

/// Receives, in the MN's namespace, every Mobility Header and every packet with a Type 2
/// Routing Header, and sends each (as it arrived) to the MN's thread.
pub struct MnQueue {
    ns: String,
    hoa: Ipv6Addr,
    /// The home tunnel (home agent, care-of address) once [`MnQueue::home_tunnel`] set it.
    tunnel: Arc<Mutex<Option<(Ipv6Addr, Ipv6Addr)>>>,
    stop: Arc<AtomicBool>,
    rx: mpsc::Receiver<Vec<u8>>,
    handle: Option<JoinHandle<()>>,
}

impl MnQueue {
    /// Binds the queue, then adds its rules (bind first: an unbound queue drops); dropping
    /// it removes them.
    pub fn start(ns: &str, hoa: Ipv6Addr) -> Result<MnQueue, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_ns = ns.to_string();
        let s = stop.clone();
        let tunnel: Arc<Mutex<Option<(Ipv6Addr, Ipv6Addr)>>> = Arc::default();
        let tun = tunnel.clone();
        let handle = std::thread::spawn(move || {
            let setup = netns::enter(&thread_ns).and_then(|_| {
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
                let home_tunnel = *tun.lock().unwrap();
                let src = packet::parse(&p.payload).map(|w| w.ip.src).ok();
                let r = if let Some((ha, coa)) = home_tunnel {
                    // With a home registration: HoA-sourced packets (raw OUTPUT) go into
                    // the tunnel to the HA; what the HA tunnels to us comes out, and the
                    // raw chain runs again on it (Repeat), so an inner Mobility Header
                    // meets the -p 135 rule and gets recorded.
                    if src == Some(hoa) {
                        if rewrite::encapsulate(&mut data, coa, ha, 64).is_ok() {
                            q.verdict(p.id, Verdict::Accept, Some(&data))
                        } else {
                            q.verdict(p.id, Verdict::Drop, None)
                        }
                    } else if let Ok(t) = rewrite::decapsulate(&mut data) {
                        if t.outer_src == ha && t.inner_dst == hoa {
                            q.verdict(p.id, Verdict::Repeat, Some(&data))
                        } else {
                            q.verdict(p.id, Verdict::Drop, None)
                        }
                    } else if is_mh {
                        q.verdict(p.id, Verdict::Drop, None)
                    } else if matches!(rewrite::receive_rh2(&mut data), Ok(i) if i.home == hoa) {
                        q.verdict(p.id, Verdict::Accept, Some(&data))
                    } else {
                        q.verdict(p.id, Verdict::Accept, None)
                    }
                } else if is_mh {
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
            .map_err(|e| format!("bind the MN's nfqueue: {e}"))?;
        // From here on, dropping it (also on an error) stops the worker and removes rules.
        let mq = MnQueue {
            ns: ns.to_string(),
            hoa,
            tunnel,
            stop,
            rx,
            handle: Some(handle),
        };
        for r in queue_rules() {
            ip6tables(ns, "-A", &r)?;
        }
        Ok(mq)
    }

    /// Turns the MN's side of the home tunnel on: HoA-sourced packets are encapsulated
    /// (CoA → `ha`), ip6ip6 from `ha` decapsulated. Adds its two rules (once).
    pub fn home_tunnel(&self, ha: Ipv6Addr, coa: Ipv6Addr) -> Result<(), String> {
        let was = self.tunnel.lock().unwrap().replace((ha, coa));
        if was.is_none() {
            for r in tunnel_rules(self.hoa) {
                ip6tables(&self.ns, "-A", &r)?;
            }
        }
        Ok(())
    }

    /// The next recorded packet for which `want` returns Some, within [`PATIENCE`].
    pub fn wait<T>(
        &self,
        what: &str,
        mut want: impl FnMut(&Packet, &[u8]) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = self
                .rx
                .recv_timeout(left)
                .map_err(|_| format!("the MN never received {what}"))?;
            if let Ok(p) = packet::parse(&bytes) {
                if let Some(v) = want(&p, &bytes) {
                    return Ok(v);
                }
            }
        }
    }
}

impl Drop for MnQueue {
    fn drop(&mut self) {
        // Rules first: without its listener, a queue rule drops what it matches. The
        // namespace may be gone already (a failed test's testbed): nothing to remove then.
        for r in queue_rules() {
            let _ = ip6tables(&self.ns, "-D", &r);
        }
        if self.tunnel.lock().map(|t| t.is_some()).unwrap_or(false) {
            for r in tunnel_rules(self.hoa) {
                let _ = ip6tables(&self.ns, "-D", &r);
            }
        }
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
pub fn with_mh(b: &PacketBuilder, raw: &[u8]) -> Vec<u8> {
    let repr = MhRepr::parse(raw).expect("stub MH parses");
    let mut pkt = b.build(Payload::Mobility(&repr));
    let at = pkt.len() - raw.len();
    pkt[at..].copy_from_slice(raw);
    pkt
}

pub fn test_init(message: Message, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let repr = MhRepr {
        message,
        options: vec![],
    };
    PacketBuilder::new(src, dst).build(Payload::Mobility(&repr))
}

/// The Mobility Header of `p` and its bytes as received.
pub fn mobility<'a>(p: &'a Packet, bytes: &'a [u8]) -> Option<(&'a MhRepr, &'a [u8])> {
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
pub fn udp_with_hao(
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    dst: Ipv6Addr,
    port: u16,
    data: &[u8],
) -> Vec<u8> {
    PacketBuilder {
        home_address_option: Some(hoa),
        ..PacketBuilder::new(coa, dst)
    }
    .build(Payload::Udp {
        src_port: 40000,
        dst_port: port,
        data,
    })
}

pub fn rh2_home(p: &Packet) -> Option<Ipv6Addr> {
    p.headers.iter().find_map(|h| match h {
        Header::Type2Routing(r) if r.segments_left == 1 => Some(r.home_address),
        _ => None,
    })
}

/// `recv_from`, retrying on EINTR (see the MN queue's worker).
pub fn recv_udp(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match sock.recv_from(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

fn udp_socket(ns: &str, addr: Ipv6Addr, port: u16) -> Result<UdpSocket, String> {
    netns::run_in(ns, move || {
        UdpSocket::bind(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, 0)))
    })
    .map_err(|e| format!("enter {ns}: {e}"))?
    .map_err(|e| format!("UDP socket on [{addr}]:{port} in {ns}: {e}"))
}

// --- the mobile node ---------------------------------------------------------------------------------

/// A Home Test or Care-of Test as the MN received it.
#[derive(Debug, Clone, Copy)]
pub struct TestReply {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub nonce_index: u16,
}

/// A Binding Acknowledgement as the MN received it.
#[derive(Debug, Clone, Copy)]
pub struct BindingAck {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The home address in its Type 2 Routing Header, if it had one.
    pub rh2_home: Option<Ipv6Addr>,
    pub status: u8,
    pub sequence: u16,
    pub lifetime_units: u16,
    /// Its Binding Authorization Data checks out with the BU's Kbm.
    pub authenticator_valid: bool,
    /// The Kbm of the BU it answers.
    pub kbm: rr::Kbm,
}

/// A datagram that reached a socket.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub payload: Vec<u8>,
    pub from: IpAddr,
}

/// A Binding Error as the MN received it.
#[derive(Debug, Clone, Copy)]
pub struct BindingError {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub status: u8,
    pub home_address: Ipv6Addr,
}

/// The mobile node: its addresses, keys, queue, raw socket, its UDP socket on the HoA, and
/// an ordinary UDP socket on the correspondent (the other end of the data exchanges).
pub struct Mn {
    pub stub: MnStub,
    pub queue: MnQueue,
    raw: RawSocket,
    home_sock: UdpSocket,
    client_sock: UdpSocket,
    sequence: u16,
    home_sequence: u16,
}

impl Mn {
    /// Starts the MN in namespace `mn_ns` (where `hoa` and `coa` must already exist); the
    /// correspondent's ordinary socket is opened in `cn_ns`.
    pub fn start(
        mn_ns: &str,
        cn_ns: &str,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        cn: Ipv6Addr,
    ) -> Result<Mn, String> {
        let queue = MnQueue::start(mn_ns, hoa)?;
        let raw = netns::run_in(mn_ns, || RawSocket::new(IPPROTO_RAW))
            .map_err(|e| format!("enter {mn_ns}: {e}"))?
            .map_err(|e| format!("raw socket on the MN: {e}"))?;
        let home_sock = udp_socket(mn_ns, hoa, HOME_PORT)?;
        let client_sock = udp_socket(cn_ns, Ipv6Addr::UNSPECIFIED, 0)?;
        for s in [&home_sock, &client_sock] {
            s.set_read_timeout(Some(PATIENCE))
                .map_err(|e| e.to_string())?;
        }
        Ok(Mn {
            stub: MnStub::new(&hoa.to_string(), &coa.to_string(), &cn.to_string()),
            queue,
            raw,
            home_sock,
            client_sock,
            sequence: 0,
            home_sequence: 0,
        })
    }

    pub fn hoa(&self) -> Ipv6Addr {
        self.stub.hoa
    }
    pub fn coa(&self) -> Ipv6Addr {
        self.stub.coa
    }
    pub fn cn(&self) -> Ipv6Addr {
        self.stub.cn
    }

    /// The port of the correspondent's ordinary socket.
    pub fn client_port(&self) -> u16 {
        self.client_sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    fn send(&self, what: &str, pkt: &[u8]) -> Result<(), String> {
        self.raw
            .send_to(pkt, self.cn())
            .map(|_| ())
            .map_err(|e| format!("send {what}: {e}"))
    }

    /// Sends the Home Test Init (from the HoA) and the Care-of Test Init (from the CoA).
    pub fn send_test_inits(&self) -> Result<(), String> {
        let (hoa, coa, cn) = (self.hoa(), self.coa(), self.cn());
        let hoti = Message::HomeTestInit {
            cookie: HOME_COOKIE,
        };
        self.send("HoTI", &test_init(hoti, hoa, cn))?;
        let coti = Message::CareOfTestInit {
            cookie: CARE_OF_COOKIE,
        };
        self.send("CoTI", &test_init(coti, coa, cn))
    }

    /// Waits for the Home Test and the Care-of Test (in either order), checks that each
    /// echoes its cookie, and keeps their keygen tokens. Returns (HoT, CoT).
    pub fn receive_tests(&mut self) -> Result<(TestReply, TestReply), String> {
        let (mut home, mut care_of) = (None, None);
        while home.is_none() || care_of.is_none() {
            let (is_home, cookie, token, reply) = self.queue.wait("HoT and CoT", |p, bytes| {
                let (repr, _) = mobility(p, bytes)?;
                let (is_home, nonce_index, cookie, token) = match repr.message {
                    Message::HomeTest {
                        nonce_index,
                        cookie,
                        keygen_token,
                    } => (true, nonce_index, cookie, keygen_token),
                    Message::CareOfTest {
                        nonce_index,
                        cookie,
                        keygen_token,
                    } => (false, nonce_index, cookie, keygen_token),
                    _ => return None,
                };
                let reply = TestReply {
                    src: p.ip.src,
                    dst: p.ip.dst,
                    nonce_index,
                };
                Some((is_home, cookie, token, reply))
            })?;
            let (name, want) = if is_home {
                ("HoT", HOME_COOKIE)
            } else {
                ("CoT", CARE_OF_COOKIE)
            };
            if cookie != want {
                return Err(format!(
                    "{name} echoes cookie {cookie:02x?}, not {want:02x?}"
                ));
            }
            if is_home {
                self.stub.home = Some((reply.nonce_index, token));
                home = Some(reply);
            } else {
                self.stub.care_of = Some((reply.nonce_index, token));
                care_of = Some(reply);
            }
        }
        Ok((home.unwrap(), care_of.unwrap()))
    }

    /// The sequence number of the next Binding Update.
    pub fn next_sequence(&self) -> u16 {
        self.sequence.wrapping_add(1)
    }

    /// Sends a Binding Update from the CoA with a Home Address option, Nonce Indices and
    /// Binding Authorization Data, A flag (lifetime 0: a deregistration, Kbm from the home
    /// keygen token only), and waits for its Binding Acknowledgement.
    pub fn bind(&mut self, lifetime_units: u16) -> Result<BindingAck, String> {
        self.sequence = self.next_sequence();
        let bu = self.stub.bu_bytes(self.sequence, ack(), lifetime_units);
        let kbm = self.stub.kbm(lifetime_units == 0);
        let mut b = PacketBuilder::new(self.coa(), self.cn());
        b.home_address_option = Some(self.hoa());
        self.send("BU", &with_mh(&b, &bu))?;
        let (coa, cn) = (self.coa(), self.cn());
        self.queue.wait("a Binding Acknowledgement", |p, bytes| {
            let (repr, raw) = mobility(p, bytes)?;
            let Message::BindingAck {
                status,
                sequence,
                lifetime_units,
                ..
            } = repr.message
            else {
                return None;
            };
            let authenticator_valid = mh::auth_data_region(raw).is_some_and(|(covered, auth)| {
                rr::verify_authenticator(&kbm, &coa, &cn, &covered, &auth)
            });
            Some(BindingAck {
                src: p.ip.src,
                dst: p.ip.dst,
                rh2_home: rh2_home(p),
                status,
                sequence,
                lifetime_units,
                authenticator_valid,
                kbm,
            })
        })
    }

    /// An ordinary socket on the correspondent sends `payload` to the HoA; waits until it
    /// reaches the MN at its CoA with a Type 2 Routing Header for the HoA, and returns it
    /// as the socket on the HoA received it.
    pub fn datagram_to_home(&self, payload: &[u8]) -> Result<Delivered, String> {
        let (hoa, coa, cn) = (self.hoa(), self.coa(), self.cn());
        self.client_sock
            .send_to(payload, SocketAddrV6::new(hoa, HOME_PORT, 0, 0))
            .map_err(|e| format!("send from the client: {e}"))?;
        self.queue
            .wait("the datagram with a Type 2 Routing Header", |p, _| {
                let udp = p
                    .headers
                    .iter()
                    .any(|h| matches!(h, Header::Upper { protocol: 17, .. }));
                (udp && p.ip.src == cn && p.ip.dst == coa && rh2_home(p) == Some(hoa)).then_some(())
            })?;
        let mut buf = [0u8; 1500];
        let (n, from) = recv_udp(&self.home_sock, &mut buf)
            .map_err(|e| format!("no datagram on the HoA: {e}"))?;
        Ok(Delivered {
            payload: buf[..n].to_vec(),
            from: from.ip(),
        })
    }

    /// Sends a datagram from the CoA with a Home Address option to the correspondent's
    /// ordinary socket; returns it as that socket received it, or None if nothing came
    /// within `within`.
    pub fn datagram_from_home(
        &self,
        payload: &[u8],
        within: Duration,
    ) -> Result<Option<Delivered>, String> {
        let pkt = udp_with_hao(
            self.hoa(),
            self.coa(),
            self.cn(),
            self.client_port(),
            payload,
        );
        self.client_sock
            .set_read_timeout(Some(within))
            .map_err(|e| e.to_string())?;
        self.send("UDP with HAO", &pkt)?;
        let mut buf = [0u8; 1500];
        Ok(recv_udp(&self.client_sock, &mut buf)
            .ok()
            .map(|(n, from)| Delivered {
                payload: buf[..n].to_vec(),
                from: from.ip(),
            }))
    }

    /// Waits for a Binding Error.
    pub fn binding_error(&self) -> Result<BindingError, String> {
        self.queue.wait("a Binding Error", |p, bytes| {
            let (repr, _) = mobility(p, bytes)?;
            match repr.message {
                Message::BindingError {
                    status,
                    home_address,
                } => Some(BindingError {
                    src: p.ip.src,
                    dst: p.ip.dst,
                    status,
                    home_address,
                }),
                _ => None,
            }
        })
    }

    // --- home registration with a real home agent ---------------------------------------------

    /// Sends a home registration to `ha` — a Binding Update from the CoA with a Home
    /// Address option, H and A flags and an Alternate Care-of Address option, no IPsec
    /// (the HA on this testbed does not require it) — and waits for its Binding
    /// Acknowledgement. Lifetime 0 deregisters.
    pub fn home_register(
        &mut self,
        ha: Ipv6Addr,
        lifetime_units: u16,
    ) -> Result<BindingAck, String> {
        self.home_sequence = self.home_sequence.wrapping_add(1);
        let (hoa, coa) = (self.hoa(), self.coa());
        let repr = MhRepr {
            message: Message::BindingUpdate {
                sequence: self.home_sequence,
                flags: BuFlags {
                    a: true,
                    h: true,
                    ..BuFlags::default()
                },
                lifetime_units,
            },
            options: vec![MobilityOption::AlternateCareOf(coa)],
        };
        let mut b = PacketBuilder::new(coa, ha);
        b.home_address_option = Some(hoa);
        let pkt = b.build(Payload::Mobility(&repr));
        self.raw
            .send_to(&pkt, ha)
            .map_err(|e| format!("send the home BU: {e}"))?;
        let want = self.home_sequence;
        self.queue
            .wait("the home agent's Binding Acknowledgement", |p, bytes| {
                let (repr, _) = mobility(p, bytes)?;
                let Message::BindingAck {
                    status,
                    sequence,
                    lifetime_units,
                    ..
                } = repr.message
                else {
                    return None;
                };
                (p.ip.src == ha && sequence == want).then(|| BindingAck {
                    src: p.ip.src,
                    dst: p.ip.dst,
                    rh2_home: rh2_home(p),
                    status,
                    sequence,
                    lifetime_units,
                    authenticator_valid: false,
                    kbm: [0; 20],
                })
            })
    }

    /// The client's ordinary socket sends `payload` to the HoA; waits until it reaches the
    /// MN's queue inside an ip6ip6 packet `ha` → CoA, and returns it as the socket on the
    /// HoA received it.
    pub fn datagram_to_home_via(&self, ha: Ipv6Addr, payload: &[u8]) -> Result<Delivered, String> {
        let (hoa, coa, cn) = (self.hoa(), self.coa(), self.cn());
        self.client_sock
            .send_to(payload, SocketAddrV6::new(hoa, HOME_PORT, 0, 0))
            .map_err(|e| format!("send from the client: {e}"))?;
        self.queue
            .wait("the datagram in the tunnel from the HA", |p, bytes| {
                if p.ip.src != ha || p.ip.dst != coa {
                    return None;
                }
                let mut inner = bytes.to_vec();
                let t = rewrite::decapsulate(&mut inner).ok()?;
                (t.inner_src == cn && t.inner_dst == hoa).then_some(())
            })?;
        let mut buf = [0u8; 1500];
        let (n, from) = recv_udp(&self.home_sock, &mut buf)
            .map_err(|e| format!("no datagram on the HoA: {e}"))?;
        Ok(Delivered {
            payload: buf[..n].to_vec(),
            from: from.ip(),
        })
    }

    /// The socket on the HoA answers the client's ordinary socket (through the reverse
    /// tunnel once [`MnQueue::home_tunnel`] is on); returns what the client received, or
    /// None within `within`.
    pub fn datagram_from_home_socket(
        &self,
        payload: &[u8],
        within: Duration,
    ) -> Result<Option<Delivered>, String> {
        self.client_sock
            .set_read_timeout(Some(within))
            .map_err(|e| e.to_string())?;
        self.home_sock
            .send_to(
                payload,
                SocketAddrV6::new(self.cn(), self.client_port(), 0, 0),
            )
            .map_err(|e| format!("send from the HoA: {e}"))?;
        let mut buf = [0u8; 1500];
        Ok(recv_udp(&self.client_sock, &mut buf)
            .ok()
            .map(|(n, from)| Delivered {
                payload: buf[..n].to_vec(),
                from: from.ip(),
            }))
    }
}
