//! The donor: the contact node's home test for the DSA with the connection's client,
//! then drain, lock, freeze, extract, and the `ds::handoff` donor machine over the
//! control channel; on rollback the connection is rebuilt here.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;

use super::channel::Channel;
use super::other;
use crate::config::model::HandoffDrain;
use crate::crypto::auth::SharedKey;
use crate::crypto::rr;
use crate::datapath::mn_user;
use crate::ds::conn_state::{HomeKeygen, Limits};
use crate::ds::drain::Drain;
use crate::ds::handoff::{Donor, DonorAction, Message, Outcome, Timeouts};
use crate::ds::phases::{Phases, Spans};
use crate::ds::redirect::HomeTest;
use crate::proto::event::Transmit;
use crate::sys::netlock::NetLock;
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::sys::{tcp_connect, tcp_repair};

/// The Mobility Header protocol number, for the raw socket the Home Test arrives on.
pub const IPPROTO_MH: i32 = 135;

/// Sends a Mobility Header the way `mn_user` builds it (tunnelled when asked).
pub fn send_mh(raw: &RawSocket, t: &Transmit) -> io::Result<()> {
    let (pkt, to) =
        mn_user::build_packet(t).ok_or_else(|| other(format!("cannot build {}", t.repr)))?;
    raw.send_to(&pkt, to).map(|_| ())
}

fn v6(a: SocketAddr) -> io::Result<SocketAddrV6> {
    match a {
        SocketAddr::V6(a) => Ok(a),
        a => Err(other(format!("{a}: not IPv6"))),
    }
}

/// How long the network lock stays after the acceptor's Done (off the client's pause:
/// the connection runs at the acceptor by then).
const UNLOCK_LINGER: Duration = Duration::from_millis(50);
/// How long connecting to the acceptor's `ControlPort` may take (before the freeze:
/// the connection still serves meanwhile).
const CONTROL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the donor knows of the DSA's registration.
#[derive(Debug, Clone, Copy)]
pub struct Contact {
    pub dsa: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    /// This node's care-of address (registered with the home agent for the DSA).
    pub care_of: Ipv6Addr,
}

/// The home test for the DSA with `client`, through the home agent's tunnel; the Home
/// Test comes back through it and the contact's mip6d delivers it to the DSA, where a raw
/// Mobility Header socket waits (`datapath::mn_user`: unawaited tests go to the home
/// address). Needs the contact's mip6d running with the DSA as home address.
pub fn home_test(c: &Contact, client: Ipv6Addr, give_up: Duration) -> io::Result<HomeKeygen> {
    let out = RawSocket::new(IPPROTO_RAW)?;
    let mh = RawSocket::new(IPPROTO_MH)?;
    let cookie = rr::generate_cookie(&SystemRandom::new()).map_err(|_| other("no randomness"))?;
    let now = Instant::now();
    let end = now + give_up;
    let (mut ht, hoti) = HomeTest::start(c.dsa, client, (c.care_of, c.home_agent), cookie, now);
    send_mh(&out, &hoti)?;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= end {
            return Err(other(format!(
                "home test with {client}: no Home Test in {give_up:?}"
            )));
        }
        let wait = ht.poll_timeout().unwrap_or(end).min(end);
        mh.set_read_timeout(Some(
            wait.saturating_duration_since(now)
                .max(Duration::from_micros(100)),
        ))?;
        match mh.recv_from(&mut buf) {
            Ok((len, src)) => {
                if let Some(token) = ht.handle_mh(src, &buf[..len]) {
                    return Ok(token);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        if let Some(t) = ht.handle_timeout(Instant::now()).map_err(other)? {
            send_mh(&out, &t)?;
        }
    }
}

/// How the donor hands off.
pub struct DonorConfig {
    pub contact: Contact,
    pub node_id: u32,
    /// The shared key (the channel derives its `handoff` subkey).
    pub key: SharedKey,
    pub drain: HandoffDrain,
    /// How long a drain may wait.
    pub drain_bound: Duration,
    pub timeouts: Timeouts,
}

/// What one handoff did, as the donor saw it.
#[derive(Debug, Clone)]
pub struct DonorReport {
    pub id: u64,
    pub client: SocketAddrV6,
    pub state_bytes: usize,
    pub send_queue: usize,
    /// Of `send_queue`, the bytes the donor never transmitted (the acceptor sends them
    /// first): the client saw the pause after byte `written - unsent`.
    pub unsent: usize,
    pub recv_queue: usize,
    /// Time of the home test (before the freeze, outside the seven phases; possibly long
    /// before, see [`prepare`]).
    pub home_test: Duration,
    pub phases: Phases,
    /// Finer timings as this node saw them (`Spans`); "frozen" is the whole pause: the
    /// network lock going on until the acceptor's Done.
    pub spans: Spans,
    pub outcome: Outcome,
}

/// What the acceptor needs to redirect the client, obtained ahead of the handoff: the
/// home test's result and the newest BU sequence number used for the DSA with the
/// client (none on the contact node, which never binds it).
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    pub home: HomeKeygen,
    pub took: Duration,
    pub bu_sequence: Option<u16>,
}

/// Runs the home test for `client` now (a home keygen token stays usable for
/// `MAX_TOKEN_LIFETIME`, 210 s): done while the connection still serves, it is off the
/// client's pause.
pub fn prepare(cfg: &DonorConfig, client: Ipv6Addr) -> io::Result<Prepared> {
    let t = Instant::now();
    let home = home_test(&cfg.contact, client, Duration::from_secs(2))?;
    Ok(Prepared {
        home,
        took: t.elapsed(),
        bu_sequence: None,
    })
}

/// Hands `s` to the acceptor at `to` (its control address and port). `app` travels with
/// the state (what the application needs to continue); `prepared` is the home test
/// already done for this client ([`prepare`]), or it is done now. Returns the report
/// and, after a rollback, the connection rebuilt here.
pub fn hand_off(
    s: TcpStream,
    to: SocketAddrV6,
    id: u64,
    app: Vec<u8>,
    cfg: &DonorConfig,
    lock: &mut NetLock,
    prepared: Option<Prepared>,
) -> io::Result<(DonorReport, Option<TcpStream>)> {
    hand_off_keeping(s, to, id, app, cfg, lock, prepared, None)
}

/// As [`hand_off`], when the socket stays open elsewhere too (`original`: another
/// descriptor of it, e.g. an application's taken with `pidfd_getfd`). A rollback then
/// resumes that socket — frozen, its queues intact — instead of rebuilding one, which
/// could not connect while the frozen one holds the same four-tuple.
#[allow(clippy::too_many_arguments)]
pub fn hand_off_keeping(
    s: TcpStream,
    to: SocketAddrV6,
    id: u64,
    app: Vec<u8>,
    cfg: &DonorConfig,
    lock: &mut NetLock,
    prepared: Option<Prepared>,
    mut original: Option<std::os::fd::OwnedFd>,
) -> io::Result<(DonorReport, Option<TcpStream>)> {
    let (local, peer) = (v6(s.local_addr()?)?, v6(s.peer_addr()?)?);
    let Prepared {
        home,
        took: home_test,
        bu_sequence,
    } = match prepared {
        Some(p) => p,
        None => prepare(cfg, *peer.ip())?,
    };
    let mut spans = Spans::default();
    // Connect before freezing: the connection's pause should not include a handshake.
    // And tell the acceptor what comes, so that it sets its data path up while we drain.
    let mut ch = spans.time("control connect", || {
        // From this node's own address: a MIP6 kernel would pick the DSA, a home
        // address, and the acceptor owns the DSA too.
        tcp_connect::connect_from(cfg.contact.care_of, to, CONTROL_CONNECT_TIMEOUT)
            .and_then(|c| Channel::new(c, &cfg.key, cfg.node_id, Limits::default()))
            .and_then(|mut ch| {
                ch.send(&Message::Prepare { id, local, peer })?;
                Ok(ch)
            })
    })?;
    let mut drain = Drain::new(cfg.drain, cfg.drain_bound);
    spans
        .time("drain", || {
            tcp_repair::drain(s.as_fd(), &mut drain, Duration::from_micros(50))
        })
        .map_err(other_repair)?;
    let t = Instant::now();
    spans.time("nft lock", || lock.lock(&local, &peer))?;
    let state = spans.time("freeze + dump", || {
        tcp_repair::freeze(s.as_fd())
            .and_then(|()| tcp_repair::extract(s.as_fd()))
            .and_then(|st| recheck(s.as_fd(), st, id))
    });
    let mut state = match state {
        Ok(st) => st,
        Err(e) => {
            lock.unlock(&local, &peer)?;
            return Err(other_repair(e));
        }
    };
    {
        let outq = state.send_queue.len() as u32;
        tracing::info!(
            "handoff {id}: dumped {peer}: snd_una {} snd_nxt {} write_seq {} rcv_nxt {} (inq {}) window {:?} timestamp {}",
            state.write_seq.wrapping_sub(outq),
            state.write_seq.wrapping_sub(state.unsent),
            state.write_seq,
            state.rcv_nxt,
            state.recv_queue.len(),
            state.window,
            state.timestamp
        );
    }
    // Closed in repair mode: nothing goes out.
    spans.time("close", || drop(s));
    let extraction = t.elapsed();
    state.bu_sequence = bu_sequence;
    state.home_keygen = Some(home);
    let (state_bytes, send_queue, recv_queue) = (
        state.encoded_len(),
        state.send_queue.len(),
        state.recv_queue.len(),
    );
    let unsent = state.send_queue_split().1.len();
    let (mut donor, mut pending) = spans.time("offer build", || {
        Donor::start(id, state, app, extraction, cfg.timeouts, Instant::now())
    });
    let mut back = None;
    let mut sent = Instant::now();
    loop {
        let mut outcome = None;
        for a in std::mem::take(&mut pending) {
            match a {
                DonorAction::Send(m) => {
                    if let Err(e) = ch.send(&m) {
                        tracing::warn!("handoff {id}: control channel: {e}");
                    }
                    if matches!(m, Message::Offer { .. }) {
                        spans.add("offer seal", ch.last_send.0);
                        spans.add("offer write", ch.last_send.1);
                    }
                    sent = Instant::now();
                }
                DonorAction::Unlock => {
                    spans.add("frozen", t.elapsed());
                    // The client's last packets to us (ACKs sent before it took the
                    // binding, through the home agent) may still be on their way: let
                    // through, they would meet no socket — or the listener — and draw
                    // a RST the client takes for its connection's.
                    std::thread::sleep(UNLOCK_LINGER);
                    spans.time("unlock", || lock.unlock(&local, &peer))?
                }
                DonorAction::RollBack(st) => {
                    // Nothing was redirected: rebuild here (or take the original back:
                    // its send queue still holds the unsent tail), unlock, activate.
                    let (fd, tail) = match original.take() {
                        Some(fd) => (fd, &[][..]),
                        None => (
                            tcp_repair::restore(&st).map_err(other_repair)?,
                            st.send_queue_split().1,
                        ),
                    };
                    lock.unlock(&local, &peer)?;
                    tcp_repair::activate(fd.as_fd(), tail).map_err(other_repair)?;
                    back = Some(TcpStream::from(fd));
                }
                DonorAction::Finished(o) => outcome = Some(o),
            }
        }
        if let Some(outcome) = outcome {
            let report = DonorReport {
                id,
                client: peer,
                state_bytes,
                send_queue,
                unsent,
                recv_queue,
                home_test,
                phases: *donor.phases(),
                spans,
                outcome,
            };
            return Ok((report, back));
        }
        let deadline = donor.poll_timeout();
        pending = match ch.recv(deadline) {
            Ok(Some((_, m))) => {
                spans.add(
                    match m {
                        Message::Accept { .. } => "offer -> accept",
                        Message::Done { .. } => "commit -> done",
                        _ => "message",
                    },
                    sent.elapsed(),
                );
                donor.handle(&m, Instant::now())
            }
            Ok(None) => donor.handle_timeout(Instant::now()),
            Err(e) => {
                // A dead or lying channel: wait for the machine's own timeout.
                tracing::warn!("handoff {id}: control channel: {e}");
                let d = deadline.unwrap_or_else(Instant::now);
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
                donor.handle_timeout(Instant::now())
            }
        };
    }
}

/// A frozen socket still transmits whatever its timers or freed transmit slots let go:
/// only the network lock keeps that from the client. Had something passed it since the
/// dump, the client would hold bytes the dump calls unsent, and the acceptor, which
/// never sent them, would drop every ACK for them (issue 9): say so, and dump again.
fn recheck(
    fd: std::os::fd::BorrowedFd<'_>,
    st: crate::ds::conn_state::ConnState,
    id: u64,
) -> Result<crate::ds::conn_state::ConnState, tcp_repair::RepairError> {
    let now = tcp_repair::send_seqs(fd)?;
    let dumped = st.write_seq.wrapping_sub(st.unsent);
    if now.snd_nxt == dumped {
        return Ok(st);
    }
    tracing::warn!(
        "handoff {id}: the frozen connection sent {} bytes past its dump (snd_nxt {dumped} -> {}): \
         the network lock did not hold; dumping again",
        now.snd_nxt.wrapping_sub(dumped),
        now.snd_nxt
    );
    tcp_repair::extract(fd)
}

fn other_repair(e: tcp_repair::RepairError) -> io::Error {
    other(e.to_string())
}
