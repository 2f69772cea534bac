//! The handoff protocol between a donor and an acceptor, sans-IO: messages, the two state
//! machines, their timeouts and the donor's rollback. Messages travel sealed with
//! `crypto::auth` (the message kind is the frame's kind byte) over the daemons' control
//! channel; [`seal`] and [`open`] do that, the caller moves the bytes.
//!
//! ```text
//! donor                                   acceptor
//!  Prepare{id, local, peer} ────────────▶ start the per-connection data path (optional;
//!  drain                                   while the connection still serves)
//!  lock, freeze, extract (phase 1)
//!  Offer{id, state, app} ───────────────▶ restore in repair mode (phase 3)
//!                        ◀─────────────── Accept{id, re-creation time}   (or Reject)
//!  Commit{id} ──────────────────────────▶ redirect the client (phases 4–6: the mobility
//!                                          side's hook), activate (phase 7)
//!  unlock                ◀─────────────── Done{id, phases}
//! ```
//!
//! **Commit point and rollback.** The donor may roll back until it sends Commit: when
//! the acceptor rejects, or does not accept within [`Timeouts::accept`], the donor sends
//! Abort and restores the connection from its own copy of the state — `restore`, then
//! `unlock`, then `activate` on the donor — while the client's route still points at the
//! donor (nothing was redirected: the acceptor redirects only after Commit). The acceptor
//! discards its repair-mode socket (a silent close) on Abort, or when no Commit comes
//! within [`Timeouts::commit`], which must exceed the donor's accept timeout plus a round
//! trip so that a normal Abort or Commit arrives first. If the control channel fails
//! exactly between Commit and its arrival, the connection is lost rather than duplicated:
//! two live copies could both answer the client.
//!
//! Return routability and BU construction (phases 4–5) do not depend on Commit; only the
//! binding (phase 6) must wait for it. The redirect hook reports the three durations, so
//! the mobility side can start phases 4–5 early without changing this machine.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use super::conn_state::{ConnState, DecodeError, Limits};
use super::phases::{Phase, PhaseTime, Phases};
use crate::crypto::auth::{self, AuthError, ReplayWindow, SharedKey};

/// Largest application blob (what the application needs to continue, e.g. a stream
/// offset) an Offer may carry.
pub const MAX_APP_LEN: usize = 64 * 1024;

/// Why an acceptor refuses a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The socket could not be rebuilt; the errno.
    RestoreFailed(u32),
    /// No application here serves the connection's address and port.
    NoService,
    /// The acceptor is handling too much already.
    Busy,
    /// A code this version does not know.
    Other(u8),
}

impl RejectReason {
    fn code(self) -> (u8, u32) {
        match self {
            RejectReason::RestoreFailed(e) => (1, e),
            RejectReason::NoService => (2, 0),
            RejectReason::Busy => (3, 0),
            RejectReason::Other(c) => (c, 0),
        }
    }

    fn from_code(code: u8, detail: u32) -> RejectReason {
        match code {
            1 => RejectReason::RestoreFailed(detail),
            2 => RejectReason::NoService,
            3 => RejectReason::Busy,
            c => RejectReason::Other(c),
        }
    }
}

/// One protocol message; `id` names the handoff (unique per donor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Sent before the freeze, outside both machines: the connection (service address
    /// and port, client) an Offer will soon carry, so that the acceptor sets up what does
    /// not depend on the state (its per-connection data path) while the donor drains.
    Prepare {
        id: u64,
        local: SocketAddrV6,
        peer: SocketAddrV6,
    },
    Offer {
        id: u64,
        state: Box<ConnState>,
        app: Vec<u8>,
    },
    Accept {
        id: u64,
        /// Phase 3, measured by the acceptor.
        recreation_us: u32,
    },
    Reject {
        id: u64,
        reason: RejectReason,
    },
    Commit {
        id: u64,
    },
    Abort {
        id: u64,
    },
    Done {
        id: u64,
        /// Phases 3–7 as the acceptor measured them.
        phases: Phases,
    },
}

/// Why bytes are not a handoff message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    Auth(AuthError),
    UnknownKind(u8),
    Truncated,
    TrailingBytes,
    AppTooLong(usize),
    BadPhase,
    State(DecodeError),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Auth(e) => write!(f, "handoff message not authentic: {e:?}"),
            MessageError::UnknownKind(k) => write!(f, "unknown handoff message kind {k}"),
            MessageError::Truncated => write!(f, "handoff message truncated"),
            MessageError::TrailingBytes => write!(f, "handoff message has trailing bytes"),
            MessageError::AppTooLong(n) => {
                write!(
                    f,
                    "handoff offer carries {n} application bytes, limit {MAX_APP_LEN}"
                )
            }
            MessageError::BadPhase => write!(f, "handoff message: bad phase code"),
            MessageError::State(e) => write!(f, "handoff offer: {e}"),
        }
    }
}

impl std::error::Error for MessageError {}

const KIND_OFFER: u8 = 1;
const KIND_ACCEPT: u8 = 2;
const KIND_REJECT: u8 = 3;
const KIND_COMMIT: u8 = 4;
const KIND_ABORT: u8 = 5;
const KIND_DONE: u8 = 6;
const KIND_PREPARE: u8 = 7;

fn put_addr(b: &mut Vec<u8>, a: &SocketAddrV6) {
    b.extend(a.ip().octets());
    b.extend(a.port().to_be_bytes());
}

fn take_addr(b: &[u8]) -> Result<(SocketAddrV6, &[u8]), MessageError> {
    let (ip, rest) = split::<16>(b)?;
    let (port, rest) = split::<2>(rest)?;
    Ok((
        SocketAddrV6::new(Ipv6Addr::from(ip), u16::from_be_bytes(port), 0, 0),
        rest,
    ))
}

impl Message {
    pub fn id(&self) -> u64 {
        match self {
            Message::Prepare { id, .. }
            | Message::Offer { id, .. }
            | Message::Accept { id, .. }
            | Message::Reject { id, .. }
            | Message::Commit { id }
            | Message::Abort { id }
            | Message::Done { id, .. } => *id,
        }
    }

    pub fn kind(&self) -> u8 {
        match self {
            Message::Prepare { .. } => KIND_PREPARE,
            Message::Offer { .. } => KIND_OFFER,
            Message::Accept { .. } => KIND_ACCEPT,
            Message::Reject { .. } => KIND_REJECT,
            Message::Commit { .. } => KIND_COMMIT,
            Message::Abort { .. } => KIND_ABORT,
            Message::Done { .. } => KIND_DONE,
        }
    }

    /// The payload (what `auth::seal` authenticates): the id, then per kind:
    /// Prepare = local, peer (address, port u16 each); Offer = app length (u32), app,
    /// connection state; Accept = re-creation µs (u32);
    /// Reject = code (u8), detail (u32); Done = 7 × (code u8, µs u32).
    pub fn payload(&self) -> Vec<u8> {
        let mut b = self.id().to_be_bytes().to_vec();
        match self {
            Message::Prepare { local, peer, .. } => {
                put_addr(&mut b, local);
                put_addr(&mut b, peer);
            }
            Message::Offer { state, app, .. } => {
                b.extend((app.len() as u32).to_be_bytes());
                b.extend(app);
                b.extend(state.encode());
            }
            Message::Accept { recreation_us, .. } => b.extend(recreation_us.to_be_bytes()),
            Message::Reject { reason, .. } => {
                let (code, detail) = reason.code();
                b.push(code);
                b.extend(detail.to_be_bytes());
            }
            Message::Commit { .. } | Message::Abort { .. } => {}
            Message::Done { phases, .. } => {
                for t in phases.0 {
                    let (code, us) = match t {
                        PhaseTime::Pending => (0u8, 0u32),
                        PhaseTime::Skipped => (1, 0),
                        PhaseTime::Took(us) => (2, us),
                    };
                    b.push(code);
                    b.extend(us.to_be_bytes());
                }
            }
        }
        b
    }

    /// Strict decoding of a payload of kind `kind`.
    pub fn decode(kind: u8, payload: &[u8], limits: &Limits) -> Result<Message, MessageError> {
        let (id, rest) = split::<8>(payload)?;
        let id = u64::from_be_bytes(id);
        let exact = |rest: &[u8]| {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(MessageError::TrailingBytes)
            }
        };
        match kind {
            KIND_PREPARE => {
                let (local, rest) = take_addr(rest)?;
                let (peer, rest) = take_addr(rest)?;
                exact(rest)?;
                Ok(Message::Prepare { id, local, peer })
            }
            KIND_OFFER => {
                let (len, rest) = split::<4>(rest)?;
                let len = u32::from_be_bytes(len) as usize;
                if len > MAX_APP_LEN {
                    return Err(MessageError::AppTooLong(len));
                }
                if rest.len() < len {
                    return Err(MessageError::Truncated);
                }
                let (app, state) = rest.split_at(len);
                let state = ConnState::decode(state, limits).map_err(MessageError::State)?;
                Ok(Message::Offer {
                    id,
                    state: Box::new(state),
                    app: app.to_vec(),
                })
            }
            KIND_ACCEPT => {
                let (us, rest) = split::<4>(rest)?;
                exact(rest)?;
                Ok(Message::Accept {
                    id,
                    recreation_us: u32::from_be_bytes(us),
                })
            }
            KIND_REJECT => {
                let (code, rest) = split::<1>(rest)?;
                let (detail, rest) = split::<4>(rest)?;
                exact(rest)?;
                Ok(Message::Reject {
                    id,
                    reason: RejectReason::from_code(code[0], u32::from_be_bytes(detail)),
                })
            }
            KIND_COMMIT => exact(rest).map(|_| Message::Commit { id }),
            KIND_ABORT => exact(rest).map(|_| Message::Abort { id }),
            KIND_DONE => {
                let mut phases = Phases::default();
                let mut rest = rest;
                for slot in phases.0.iter_mut() {
                    let (code, r) = split::<1>(rest)?;
                    let (us, r) = split::<4>(r)?;
                    rest = r;
                    *slot = match code[0] {
                        0 => PhaseTime::Pending,
                        1 => PhaseTime::Skipped,
                        2 => PhaseTime::Took(u32::from_be_bytes(us)),
                        _ => return Err(MessageError::BadPhase),
                    };
                }
                exact(rest)?;
                Ok(Message::Done { id, phases })
            }
            k => Err(MessageError::UnknownKind(k)),
        }
    }
}

fn split<const N: usize>(b: &[u8]) -> Result<([u8; N], &[u8]), MessageError> {
    if b.len() < N {
        return Err(MessageError::Truncated);
    }
    let (head, rest) = b.split_at(N);
    let mut a = [0; N];
    a.copy_from_slice(head);
    Ok((a, rest))
}

/// Seals `msg` for the control channel.
pub fn seal(key: &SharedKey, sender: u32, counter: u64, msg: &Message) -> Vec<u8> {
    auth::seal(key, msg.kind(), sender, counter, &msg.payload())
}

/// Opens a frame: authentic, not a replay, and a well-formed message — only then is it
/// trusted. Returns the sender's node id with the message.
pub fn open(
    key: &SharedKey,
    replay: &mut ReplayWindow,
    frame: &[u8],
    limits: &Limits,
) -> Result<(u32, Message), MessageError> {
    let o = auth::open(key, frame).map_err(MessageError::Auth)?;
    replay
        .accept(o.sender, o.counter)
        .map_err(MessageError::Auth)?;
    Ok((o.sender, Message::decode(o.kind, o.payload, limits)?))
}

/// How long each side waits for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Donor: Offer sent → Accept or Reject. Past it the donor rolls back.
    pub accept: Duration,
    /// Acceptor: Accept sent → Commit or Abort. Past it the acceptor discards the socket.
    pub commit: Duration,
    /// Donor: Commit sent → Done. Past it the donor reports the handoff lost and unlocks.
    pub done: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            // The acceptor answers once it has read, verified and restored the state:
            // hundreds of kB on a busy node took over 500 ms. Only a dead acceptor
            // waits it out, and the client just sees a longer pause.
            accept: Duration::from_secs(2),
            commit: Duration::from_secs(3),
            // Phase 6 may include one Binding Update retransmission (1 s, RFC 6275).
            done: Duration::from_secs(5),
        }
    }
}

/// How a handoff ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The acceptor serves the connection.
    Completed,
    /// The donor serves it again.
    RolledBack(RollbackCause),
    /// The acceptor dropped its copy (Abort, or no Commit in time).
    Discarded,
    /// The donor committed and the acceptor never confirmed: the connection may be gone.
    Unconfirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackCause {
    Rejected(RejectReason),
    AcceptTimeout,
}

/// What the donor's caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DonorAction {
    Send(Message),
    /// Rebuild the connection here from this state: `restore`, remove the network lock,
    /// then `activate` with the unsent tail. The client's route never left this node.
    RollBack(Box<ConnState>),
    /// Remove the network lock: the client's route now points at the acceptor.
    Unlock,
    Finished(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DonorStep {
    Offered { at: Instant },
    Committed { at: Instant },
    Over,
}

/// The donor side of one handoff, from the Offer on.
#[derive(Debug)]
pub struct Donor {
    id: u64,
    state: ConnState,
    step: DonorStep,
    timeouts: Timeouts,
    phases: Phases,
}

impl Donor {
    /// `state` was extracted in `extraction` (phase 1); the Offer goes out now.
    pub fn start(
        id: u64,
        mut state: ConnState,
        app: Vec<u8>,
        extraction: Duration,
        timeouts: Timeouts,
        now: Instant,
    ) -> (Donor, Vec<DonorAction>) {
        state
            .phases
            .set(Phase::SocketExtraction, PhaseTime::took(extraction));
        let phases = state.phases;
        let offer = Message::Offer {
            id,
            state: Box::new(state.clone()),
            app,
        };
        let donor = Donor {
            id,
            state,
            step: DonorStep::Offered { at: now },
            timeouts,
            phases,
        };
        (donor, vec![DonorAction::Send(offer)])
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn phases(&self) -> &Phases {
        &self.phases
    }

    pub fn is_over(&self) -> bool {
        self.step == DonorStep::Over
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.step {
            DonorStep::Offered { at } => Some(at + self.timeouts.accept),
            DonorStep::Committed { at } => Some(at + self.timeouts.done),
            DonorStep::Over => None,
        }
    }

    fn roll_back(&mut self, cause: RollbackCause) -> Vec<DonorAction> {
        self.step = DonorStep::Over;
        vec![
            DonorAction::RollBack(Box::new(self.state.clone())),
            DonorAction::Finished(Outcome::RolledBack(cause)),
        ]
    }

    /// A message from the acceptor (already opened and authenticated).
    pub fn handle(&mut self, msg: &Message, now: Instant) -> Vec<DonorAction> {
        if msg.id() != self.id {
            return vec![];
        }
        match (self.step, msg) {
            (DonorStep::Offered { at }, Message::Accept { recreation_us, .. }) => {
                let rtt = now.saturating_duration_since(at);
                let recreation = Duration::from_micros(u64::from(*recreation_us));
                // The Offer's way there plus the Accept's (small) way back.
                self.phases.set(
                    Phase::StateTransfer,
                    PhaseTime::took(rtt.saturating_sub(recreation)),
                );
                self.phases
                    .set(Phase::SocketRecreation, PhaseTime::Took(*recreation_us));
                self.step = DonorStep::Committed { at: now };
                vec![DonorAction::Send(Message::Commit { id: self.id })]
            }
            (DonorStep::Offered { .. }, Message::Reject { reason, .. }) => {
                self.roll_back(RollbackCause::Rejected(*reason))
            }
            (DonorStep::Committed { .. }, Message::Done { phases, .. }) => {
                for p in &Phase::ALL[3..] {
                    self.phases.set(*p, phases.get(*p));
                }
                self.step = DonorStep::Over;
                vec![
                    DonorAction::Unlock,
                    DonorAction::Finished(Outcome::Completed),
                ]
            }
            // A late Accept after a rollback: make sure the acceptor lets go.
            (DonorStep::Over, Message::Accept { .. }) => {
                vec![DonorAction::Send(Message::Abort { id: self.id })]
            }
            _ => vec![],
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<DonorAction> {
        match self.step {
            DonorStep::Offered { at } if now >= at + self.timeouts.accept => {
                let mut actions = vec![DonorAction::Send(Message::Abort { id: self.id })];
                actions.extend(self.roll_back(RollbackCause::AcceptTimeout));
                actions
            }
            DonorStep::Committed { at } if now >= at + self.timeouts.done => {
                self.step = DonorStep::Over;
                vec![
                    DonorAction::Unlock,
                    DonorAction::Finished(Outcome::Unconfirmed),
                ]
            }
            _ => vec![],
        }
    }
}

/// What the acceptor's caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptorAction {
    /// Rebuild this connection in repair mode, then call `restored`.
    Restore(Box<ConnState>),
    Send(Message),
    /// Make the client's packets reach this node (phases 4–6: return routability, BU,
    /// BU/BA — or any stand-in), then call `redirected` with what each phase took.
    Redirect,
    /// Leave repair mode and write the unsent tail (`activate`), then call `activated`.
    Activate,
    /// Close the repair-mode socket silently.
    Discard,
    Finished(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptorStep {
    Restoring,
    Accepted { at: Instant },
    Redirecting,
    Activating,
    Over,
}

/// What the redirect took, phase by phase (`Skipped` where a stand-in did the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectTimes {
    pub return_routability: PhaseTime,
    pub bu_construction: PhaseTime,
    pub binding_management: PhaseTime,
}

/// The acceptor side of one handoff, from the Offer on.
#[derive(Debug)]
pub struct Acceptor {
    id: u64,
    donor: u32,
    step: AcceptorStep,
    timeouts: Timeouts,
    phases: Phases,
}

impl Acceptor {
    /// An Offer from node `donor` (already opened and authenticated).
    pub fn start(
        donor: u32,
        offer: Message,
        timeouts: Timeouts,
    ) -> Option<(Acceptor, Vec<u8>, Vec<AcceptorAction>)> {
        let Message::Offer { id, state, app } = offer else {
            return None;
        };
        let acceptor = Acceptor {
            id,
            donor,
            step: AcceptorStep::Restoring,
            timeouts,
            phases: state.phases,
        };
        Some((acceptor, app, vec![AcceptorAction::Restore(state)]))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn donor(&self) -> u32 {
        self.donor
    }

    pub fn phases(&self) -> &Phases {
        &self.phases
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.step {
            AcceptorStep::Accepted { at } => Some(at + self.timeouts.commit),
            _ => None,
        }
    }

    /// The restore finished: `Ok(time taken)` or the errno.
    pub fn restored(&mut self, result: Result<Duration, u32>, now: Instant) -> Vec<AcceptorAction> {
        if self.step != AcceptorStep::Restoring {
            return vec![];
        }
        match result {
            Ok(took) => {
                let t = PhaseTime::took(took);
                self.phases.set(Phase::SocketRecreation, t);
                self.step = AcceptorStep::Accepted { at: now };
                vec![AcceptorAction::Send(Message::Accept {
                    id: self.id,
                    recreation_us: t.micros().unwrap_or(0),
                })]
            }
            Err(errno) => {
                self.step = AcceptorStep::Over;
                vec![
                    AcceptorAction::Send(Message::Reject {
                        id: self.id,
                        reason: RejectReason::RestoreFailed(errno),
                    }),
                    AcceptorAction::Finished(Outcome::Discarded),
                ]
            }
        }
    }

    pub fn handle(&mut self, msg: &Message, _now: Instant) -> Vec<AcceptorAction> {
        if msg.id() != self.id {
            return vec![];
        }
        match (self.step, msg) {
            (AcceptorStep::Accepted { .. }, Message::Commit { .. }) => {
                self.step = AcceptorStep::Redirecting;
                vec![AcceptorAction::Redirect]
            }
            (AcceptorStep::Accepted { .. } | AcceptorStep::Restoring, Message::Abort { .. }) => {
                self.discard()
            }
            _ => vec![],
        }
    }

    fn discard(&mut self) -> Vec<AcceptorAction> {
        self.step = AcceptorStep::Over;
        vec![
            AcceptorAction::Discard,
            AcceptorAction::Finished(Outcome::Discarded),
        ]
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<AcceptorAction> {
        match self.step {
            AcceptorStep::Accepted { at } if now >= at + self.timeouts.commit => self.discard(),
            _ => vec![],
        }
    }

    pub fn redirected(&mut self, times: RedirectTimes) -> Vec<AcceptorAction> {
        if self.step != AcceptorStep::Redirecting {
            return vec![];
        }
        self.phases
            .set(Phase::ReturnRoutability, times.return_routability);
        self.phases
            .set(Phase::BuConstruction, times.bu_construction);
        self.phases
            .set(Phase::BindingManagement, times.binding_management);
        self.step = AcceptorStep::Activating;
        vec![AcceptorAction::Activate]
    }

    pub fn activated(&mut self, took: Duration) -> Vec<AcceptorAction> {
        if self.step != AcceptorStep::Activating {
            return vec![];
        }
        self.phases
            .set(Phase::SocketActivation, PhaseTime::took(took));
        self.step = AcceptorStep::Over;
        vec![
            AcceptorAction::Send(Message::Done {
                id: self.id,
                phases: self.phases,
            }),
            AcceptorAction::Finished(Outcome::Completed),
        ]
    }
}

#[cfg(test)]
mod tests;
