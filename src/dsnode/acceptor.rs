//! The acceptor: takes an Offer on the control channel, rebuilds the socket in repair
//! mode, and after Commit redirects the client (`ds::redirect::Binder`: care-of test,
//! Binding Update for the DSA with the contact's home keygen token) with the
//! per-connection binding in place ([`ConnPath`]), then activates the socket.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use super::channel::Channel;
use super::conn_path::{ConnPath, PathBackend};
use super::donor::{send_mh, Prepared};
use super::other;
use crate::crypto::auth::SharedKey;
use crate::crypto::rr;
use crate::datapath::conn_binding::ConnBinding;
use crate::ds::conn_state::{ConnState, HomeKeygen, Limits};
use crate::ds::handoff::{
    Acceptor, AcceptorAction, Message, Outcome, RedirectTimes, RejectReason, Timeouts,
};
use crate::ds::phases::PhaseTime;
use crate::ds::phases::{Phases, Spans};
use crate::ds::redirect::{unbind, Binder, BinderAction};
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::sys::tcp_repair;

/// How the acceptor takes connections.
pub struct AcceptorConfig {
    pub dsa: Ipv6Addr,
    /// This node's own address: the care-of address of the client's binding.
    pub care_of: Ipv6Addr,
    pub node_id: u32,
    /// The shared key (the channel derives its `handoff` subkey).
    pub key: SharedKey,
    pub timeouts: Timeouts,
    /// The per-connection data path: netfilter queues (the first of two), or XFRM.
    pub path: PathBackend,
    /// The DSA's service ports taken here; an Offer for another is rejected.
    pub ports: Vec<u16>,
    /// This node holds the DSA's home registration: a connection coming here is
    /// redirected by deleting the client's binding (its traffic then comes through the
    /// home agent's tunnel), not by a binding of its own.
    pub contact: bool,
}

/// A connection taken over.
pub struct Accepted {
    pub stream: TcpStream,
    /// What the donor's application sent along.
    pub app: Vec<u8>,
    pub from_node: u32,
    pub state_bytes: usize,
    pub phases: Phases,
    /// Finer timings as this node saw them (`Spans`).
    pub spans: Spans,
    /// The BU sequence number of the redirect (the binding, or its deletion).
    pub sequence: u16,
    home: HomeKeygen,
    /// The client's binding to this node and its data path (none on the contact node).
    binding: Option<(Binder, ConnPath)>,
    raw: RawSocket,
}

impl Accepted {
    /// Ends the connection: sends our FIN through the binding and waits (1 s at most)
    /// until the client acknowledged it, then deletes the client's binding (so its next
    /// connection to the DSA reaches the contact node again) and removes the
    /// per-connection data path. In the other order the client's last ACK would go to
    /// the contact node, which has no such connection. Returns the sequence number the
    /// client now holds.
    pub fn finish(self) -> u16 {
        self.finish_with(|_| {})
    }

    /// [`finish`](Self::finish), calling `released` with the sequence number the client
    /// holds once its binding is deleted — before the deletion is sent and before the
    /// data path is torn down (which takes a few ms of rule deletions): from then on the
    /// next handoff for this client can be taken.
    pub fn finish_with(mut self, released: impl FnOnce(u16)) -> u16 {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let end = Instant::now() + Duration::from_secs(1);
        // The FIN counts in the unacknowledged bytes until the client acknowledges it.
        while Instant::now() < end
            && tcp_repair::unacked_bytes(self.stream.as_fd()).is_ok_and(|n| n > 0)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(self.stream);
        match self.binding.take() {
            Some((mut binder, path)) => {
                // The deletion's sequence number is the client's from the moment it is
                // sent: recorded first, a next handoff racing this one cannot reuse it.
                let deletion = binder.release();
                released(binder.sequence());
                if let Some(t) = deletion {
                    if let Err(e) = send_mh(&self.raw, &t) {
                        tracing::warn!("deleting the client's binding: {e}");
                    }
                }
                drop(path);
                binder.sequence()
            }
            None => {
                released(self.sequence);
                self.sequence
            }
        }
    }

    /// To hand the connection on: the stream, what the next acceptor needs to redirect
    /// the client, and the data path, which must stay until that handoff is over (the
    /// client keeps sending here until it is redirected).
    pub fn into_handoff(self) -> (TcpStream, Prepared, Option<ConnPath>) {
        let p = Prepared {
            home: self.home,
            took: Duration::ZERO,
            bu_sequence: Some(self.sequence),
        };
        (self.stream, p, self.binding.map(|(_, path)| path))
    }

    /// Packets the per-connection binding rewrote (in, out).
    pub fn rewritten(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.binding.as_ref().map_or((0, 0), |(_, path)| {
            let c = &path.counters;
            (c.rewritten_in.load(Relaxed), c.rewritten_out.load(Relaxed))
        })
    }
}

/// How the client was redirected: our binding and its data path (none on the contact
/// node), the BU's sequence number, the home keygen token.
type Redirected = (Option<(Binder, ConnPath)>, u16, HomeKeygen);

/// Sequence numbers used per client, so that the next binding for a client is newer
/// than the last one (also after its deletion, §5.2.8). Clones share the numbers: an
/// acceptor reads them when it redirects, not when the donor connected (with `Prepare`
/// that is before the drain), so a binding released in between counts.
#[derive(Default, Clone, Debug)]
pub struct Sequences(Arc<Mutex<HashMap<Ipv6Addr, u16>>>);

impl Sequences {
    fn next_after(&self, client: &Ipv6Addr, carried: Option<u16>) -> Option<u16> {
        let ours = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(client)
            .copied();
        // The carried number comes from the donor side; ours from an earlier binding
        // here. Whichever is newer (RFC 6275 §9.5.1 arithmetic) must be exceeded.
        match (carried, ours) {
            (Some(a), Some(b)) => Some(if b.wrapping_sub(a) < 0x8000 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    pub fn record(&mut self, client: Ipv6Addr, seq: u16) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client, seq);
    }
}

/// Takes one handoff from `control` (the listener on `ControlPort`).
pub fn accept_one(
    control: &TcpListener,
    cfg: &AcceptorConfig,
    sequences: &Sequences,
) -> io::Result<Accepted> {
    let (stream, _) = control.accept()?;
    accept_on(stream, cfg, sequences)
}

/// Takes one handoff on `stream`, a connection already accepted on `ControlPort`.
pub fn accept_on(
    stream: TcpStream,
    cfg: &AcceptorConfig,
    sequences: &Sequences,
) -> io::Result<Accepted> {
    let mut ch = Channel::new(stream, &cfg.key, cfg.node_id, Limits::default())?;
    let (mut from_node, mut offer) = ch
        .recv(Some(Instant::now() + Duration::from_secs(5)))?
        .ok_or_else(|| other("no Offer within 5 s"))?;
    let mut spans = Spans::default();
    let mut early = None;
    if let Message::Prepare { local, peer, .. } = offer {
        if !cfg.contact && cfg.ports.contains(&local.port()) && *local.ip() == cfg.dsa {
            let t = Instant::now();
            match start_path(cfg, local, peer) {
                Ok(p) => early = Some(p),
                // Not fatal: the redirect tries again, and says why if it fails.
                Err(e) => tracing::warn!("handoff: data path at Prepare: {e}"),
            }
            spans.add("binding path start (prepare)", t.elapsed());
        }
        (from_node, offer) = ch
            .recv(Some(Instant::now() + OFFER_AFTER_PREPARE))?
            .ok_or_else(|| {
                other(format!(
                    "no Offer within {OFFER_AFTER_PREPARE:?} of Prepare"
                ))
            })?;
    }
    spans.add("offer read", ch.last_recv.0);
    spans.add("offer open", ch.last_recv.1);
    let (mut acc, app, mut pending) = Acceptor::start(from_node, offer, cfg.timeouts)
        .ok_or_else(|| other("the first message was not an Offer"))?;
    let raw = RawSocket::new(IPPROTO_RAW)?;
    let rng = SystemRandom::new();
    let mut sock: Option<OwnedFd> = None;
    let mut state: Option<Box<ConnState>> = None;
    let mut redirected: Option<Redirected> = None;
    let mut state_bytes = 0;
    let mut sent = Instant::now();
    loop {
        let mut finished = None;
        for a in std::mem::take(&mut pending) {
            match a {
                AcceptorAction::Restore(st) => {
                    state_bytes = st.encoded_len();
                    if !cfg.ports.contains(&st.local.port()) || *st.local.ip() != cfg.dsa {
                        ch.send(&Message::Reject {
                            id: acc.id(),
                            reason: RejectReason::NoService,
                        })?;
                        return Err(other(format!("no service here for {}", st.local)));
                    }
                    let t = Instant::now();
                    match tcp_repair::restore(&st) {
                        Ok(fd) => {
                            match tcp_repair::send_seqs(fd.as_fd()) {
                                Ok(q) => tracing::info!(
                                    "handoff {}: restored {}: snd_una {} snd_nxt {} write_seq {} (donor: write_seq {} unsent {})",
                                    acc.id(),
                                    st.peer,
                                    q.snd_una,
                                    q.snd_nxt,
                                    q.write_seq,
                                    st.write_seq,
                                    st.unsent
                                ),
                                Err(e) => tracing::warn!("handoff {}: {e}", acc.id()),
                            }
                            sock = Some(fd);
                            state = Some(st);
                            spans.add("restore", t.elapsed());
                            pending.extend(acc.restored(Ok(t.elapsed()), Instant::now()));
                        }
                        Err(e) => {
                            tracing::warn!("handoff: {e}");
                            let errno = e.errno().unwrap_or(0) as u32;
                            pending.extend(acc.restored(Err(errno), Instant::now()));
                        }
                    }
                }
                AcceptorAction::Send(m) => {
                    ch.send(&m)?;
                    sent = Instant::now();
                }
                AcceptorAction::Redirect => {
                    spans.add("accept -> commit", sent.elapsed());
                    let st = state
                        .as_ref()
                        .ok_or_else(|| other("redirect before restore"))?;
                    let home = st
                        .home_keygen
                        .ok_or_else(|| other("the Offer carries no home keygen token"))?;
                    let times = if cfg.contact {
                        let (seq, times) = come_home(cfg, st, home, sequences, &raw, &rng)?;
                        redirected = Some((None, seq, home));
                        times
                    } else {
                        let (binder, path, times) = redirect(
                            cfg,
                            st,
                            home,
                            sequences,
                            &raw,
                            &rng,
                            &mut spans,
                            early.take(),
                        )?;
                        let seq = binder.sequence();
                        redirected = Some((Some((binder, path)), seq, home));
                        times
                    };
                    pending.extend(acc.redirected(times));
                }
                AcceptorAction::Activate => {
                    let fd = sock
                        .as_ref()
                        .ok_or_else(|| other("activate before restore"))?;
                    let st = state
                        .as_ref()
                        .ok_or_else(|| other("activate before restore"))?;
                    let t = Instant::now();
                    tcp_repair::activate(fd.as_fd(), st.send_queue_split().1)
                        .map_err(|e| other(e.to_string()))?;
                    spans.add("activate", t.elapsed());
                    pending.extend(acc.activated(t.elapsed()));
                }
                AcceptorAction::Discard => {
                    // Closed in repair mode: silently.
                    sock = None;
                }
                AcceptorAction::Finished(o) => finished = Some(o),
            }
        }
        match finished {
            Some(Outcome::Completed) => {
                let (binding, sequence, home) =
                    redirected.ok_or_else(|| other("completed unredirected"))?;
                let stream = TcpStream::from(sock.ok_or_else(|| other("no socket"))?);
                return Ok(Accepted {
                    stream,
                    app,
                    from_node,
                    state_bytes,
                    phases: *acc.phases(),
                    spans,
                    sequence,
                    home,
                    binding,
                    raw,
                });
            }
            Some(o) => return Err(other(format!("handoff ended: {o:?}"))),
            None => {}
        }
        if pending.is_empty() {
            pending = match ch.recv(acc.poll_timeout())? {
                Some((_, m)) => acc.handle(&m, Instant::now()),
                None => acc.handle_timeout(Instant::now()),
            };
        }
    }
}

/// The connection comes back to the contact node: deleting the client's binding is the
/// redirect (phase 5 builds that BU, phase 6 sends it: no acknowledgement comes, as
/// §5.2.6 deletions from the home address need none). Returns its sequence number.
fn come_home(
    cfg: &AcceptorConfig,
    st: &ConnState,
    home: HomeKeygen,
    sequences: &Sequences,
    raw: &RawSocket,
    rng: &SystemRandom,
) -> io::Result<(u16, RedirectTimes)> {
    let client = *st.peer.ip();
    let seq = match sequences.next_after(&client, st.bu_sequence) {
        Some(s) => s.wrapping_add(1),
        None => {
            let mut b = [0u8; 2];
            rng.fill(&mut b).map_err(|_| other("no randomness"))?;
            u16::from_be_bytes(b)
        }
    };
    let t = Instant::now();
    let bu = unbind(cfg.dsa, client, &home, seq);
    let built = t.elapsed();
    let t = Instant::now();
    send_mh(raw, &bu)?;
    Ok((
        seq,
        RedirectTimes {
            return_routability: PhaseTime::Skipped,
            bu_construction: PhaseTime::took(built),
            binding_management: PhaseTime::took(t.elapsed()),
        },
    ))
}

/// The per-connection data path of a connection and the receiving end of its Mobility
/// Headers.
type EarlyPath = (ConnPath, mpsc::Receiver<Vec<u8>>);

/// How long an acceptor waits for the Offer after a Prepare: the donor drains in
/// between, bounded by its configuration (2 s by default).
const OFFER_AFTER_PREPARE: Duration = Duration::from_secs(30);

fn start_path(
    cfg: &AcceptorConfig,
    local: SocketAddrV6,
    peer: SocketAddrV6,
) -> io::Result<EarlyPath> {
    let (tx, rx) = mpsc::channel();
    let b = ConnBinding {
        local,
        peer,
        coa: cfg.care_of,
    };
    Ok((ConnPath::start(b, &cfg.path, tx)?, rx))
}

/// Phases 4–6: the per-connection binding first (the Binding Acknowledgement arrives
/// on its queue; usually started at the donor's Prepare already), then the care-of test
/// and the Binding Update.
#[allow(clippy::too_many_arguments)]
fn redirect(
    cfg: &AcceptorConfig,
    st: &ConnState,
    home: HomeKeygen,
    sequences: &Sequences,
    raw: &RawSocket,
    rng: &SystemRandom,
    spans: &mut Spans,
    early: Option<EarlyPath>,
) -> io::Result<(Binder, ConnPath, RedirectTimes)> {
    let (path, rx) = match early {
        Some((path, rx)) if path.binding().local == st.local && path.binding().peer == st.peer => {
            (path, rx)
        }
        early => {
            // None prepared, or for another connection (which then goes first).
            drop(early);
            let t = Instant::now();
            let p = start_path(cfg, st.local, st.peer)?;
            spans.add("binding path start", t.elapsed());
            p
        }
    };
    let cookie = rr::generate_cookie(rng).map_err(|_| other("no randomness"))?;
    let mut fresh = [0u8; 2];
    rng.fill(&mut fresh).map_err(|_| other("no randomness"))?;
    let client = *st.peer.ip();
    let (mut binder, mut acts) = Binder::start(
        cfg.dsa,
        cfg.care_of,
        client,
        home,
        sequences.next_after(&client, st.bu_sequence),
        u16::from_be_bytes(fresh),
        cookie,
        Instant::now(),
    );
    loop {
        for a in std::mem::take(&mut acts) {
            match a {
                BinderAction::Send(t) => send_mh(raw, &t)?,
                BinderAction::Bound { times, .. } => return Ok((binder, path, times)),
                BinderAction::Failed(e) => return Err(other(format!("redirect: {e}"))),
            }
        }
        let wait = binder.poll_timeout().map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        });
        acts = match rx.recv_timeout(wait) {
            Ok(pkt) => binder.handle_packet(&pkt, Instant::now()),
            Err(_) => binder.handle_timeout(Instant::now()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_numbers_and_the_newer_one_wins() {
        let client: Ipv6Addr = "2001:db8:10::2".parse().unwrap();
        let mut s = Sequences::default();
        let snapshot = s.clone();
        assert_eq!(snapshot.next_after(&client, None), None);
        // Recorded after the clone was taken (a binding released meanwhile): seen.
        s.record(client, 40);
        assert_eq!(snapshot.next_after(&client, None), Some(40));
        assert_eq!(snapshot.next_after(&client, Some(38)), Some(40));
        assert_eq!(snapshot.next_after(&client, Some(41)), Some(41));
        // Across the wrap: 2 is newer than 65530.
        s.record(client, 65530);
        assert_eq!(snapshot.next_after(&client, Some(2)), Some(2));
    }
}
