//! One node of the membership protocol, sans-IO: frames, commands and timer expiries go
//! in with the current time, [`Action`]s come out. See `README.md` beside this file for
//! the protocol and why it is safe.

use super::codec::{DecodeError, Durable, Message, FRAME_KIND, MAX_SNODES};
use super::view::{seq_newer, EpochDisplay, Member, NodeId, View, MAX_MEMBERS};
use crate::config::model::{DistributedServer, DsRole};
use crate::crypto::auth::{self, AuthError, CounterSource, ReplayWindow, SharedKey};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// What a node may become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// May be a backup and so the contact node.
    Backup,
    /// Serves, registers with the contact, never takes part in commits.
    Snode,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub role: Role,
    /// The backups of the genesis view (epoch 0), the initial contact first. Must be the
    /// same list on every node (like etcd's initial cluster).
    pub genesis: Vec<NodeId>,
    pub heartbeat: Duration,
    pub failure_timeout: Duration,
    /// How often a registered snode registers again.
    pub register_interval: Duration,
}

impl Config {
    /// From a `DistributedServer` block: the genesis view is the nodes configured with
    /// role `contact` (normally one), then those with role `backup`, each by node id.
    pub fn from_ds(ds: &DistributedServer) -> Config {
        let mut nodes: Vec<(u8, NodeId)> = ds
            .peers
            .iter()
            .map(|p| (p.role, p.node_id))
            .chain(std::iter::once((ds.role, ds.node_id)))
            .filter_map(|(role, id)| match role {
                DsRole::Contact => Some((0, id)),
                DsRole::Backup => Some((1, id)),
                DsRole::Snode => None,
            })
            .collect();
        nodes.sort_unstable();
        nodes.dedup_by_key(|(_, id)| *id);
        Config {
            id: ds.node_id,
            role: match ds.role {
                DsRole::Snode => Role::Snode,
                DsRole::Contact | DsRole::Backup => Role::Backup,
            },
            genesis: nodes.into_iter().map(|(_, id)| id).collect(),
            heartbeat: ds.heartbeat_interval,
            failure_timeout: ds.failure_timeout,
            register_interval: ds.heartbeat_interval * 10,
        }
    }
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Node(NodeId),
    /// To the distributed server address: whoever holds it (the contact node, through the
    /// home agent's tunnel) receives it. Joins and snode registrations go there.
    Dsa,
}

/// Why a node stopped acting as contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A message told of a committed epoch newer than ours.
    NewerEpoch,
    /// Fewer than a majority of our view heard from within the failure timeout.
    LostMajority,
    /// A newer view we learned made someone else contact or removed us.
    Deposed,
}

/// Why an incoming frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Auth(AuthError),
    WrongKind(u8),
    /// An authentic frame claiming to come from ourselves: reflected by someone.
    FromSelf,
    Malformed(DecodeError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this sealed frame (UDP to the node's `control_port`).
    Send { to: Dest, frame: Vec<u8> },
    /// Write these bytes ([`Durable::encode`]) to the state file and sync it before
    /// carrying out any later action.
    Persist(Durable),
    /// We learned a newly committed view.
    Committed(View),
    /// We are now the contact node of `epoch`.
    BecomeContact { epoch: u64 },
    /// Register the DSA at the home agent (BU with our care-of address) with sequence
    /// number `seq`.
    RegisterDsa { epoch: u64, seq: u16 },
    /// Stop answering for the DSA at once.
    StopContact { epoch: u64, reason: StopReason },
    /// A view including us was committed after we asked to join.
    Joined { epoch: u64 },
    /// A view without us was committed: we join again.
    Removed { epoch: u64 },
    /// The contact's snode list changed.
    SnodesChanged(Vec<NodeId>),
    Rejected {
        sender: Option<NodeId>,
        why: Rejection,
    },
}

/// Local commands from the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// A handoff to this snode failed: drop it from the list (the seed's rule).
    HandoffFailed(NodeId),
    /// Our DSA registration needs refreshing: commit a new sequence number first.
    RefreshDsa,
    /// The home agent refused our sequence number as not newer than `last`.
    DsaSeqRejected { last: u16 },
}

/// Counters for `mip6ctl` and the simulation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub sent: u64,
    pub bad_auth: u64,
    pub replayed: u64,
    pub malformed: u64,
    pub rounds_started: u64,
    pub rounds_committed: u64,
}

#[derive(Debug)]
enum Phase {
    Prepare {
        promises: BTreeMap<NodeId, Option<View>>,
    },
    Accept {
        view: View,
        accepted: BTreeSet<NodeId>,
    },
}

#[derive(Debug)]
struct Round {
    ballot: u64,
    base: View,
    deadline: Instant,
    phase: Phase,
}

pub struct Node {
    cfg: Config,
    key: SharedKey,
    counter: CounterSource,
    replay: ReplayWindow,
    // Durable (the acceptor's state).
    committed: View,
    promised: u64,
    accepted: Option<View>,
    // Volatile.
    newest_seen: u64,
    highest_ballot_seen: u64,
    /// For failure detection; members start with a grace of one failure timeout.
    last_heard: BTreeMap<NodeId, Instant>,
    /// For the contact's lease: only members actually heard from, so a restarted node
    /// cannot act on the grace above.
    lease_heard: BTreeMap<NodeId, Instant>,
    last_now: Instant,
    next_heartbeat: Instant,
    acting: bool,
    registered_seq: Option<u16>,
    round: Option<Round>,
    retry_at: Option<Instant>,
    joins: BTreeSet<NodeId>,
    removals: BTreeSet<NodeId>,
    seq_floor: Option<u16>,
    snodes: BTreeSet<NodeId>,
    contact_hint: Option<(u64, NodeId)>,
    next_probe: Instant,
    last_registered: Option<Instant>,
    /// When we last joined, and how long we waited before joining again after the last
    /// removal: see [`Node::rejoin_delay`].
    joined_at: Option<Instant>,
    rejoin_backoff: Duration,
    stats: Stats,
    actions: VecDeque<Action>,
}

/// A member that stays in the view this many failure timeouts was not flapping: its next
/// removal rejoins at once.
const STABLE_TIMEOUTS: u32 = 10;
/// The rejoin back-off doubles from one failure timeout up to this many.
const MAX_BACKOFF_TIMEOUTS: u32 = 16;

impl Node {
    /// `group_key` is the group's shared key (the membership subkey is derived here);
    /// `durable` what the state file held, `None` on first start; `unix_micros` the wall
    /// clock, which seeds the frame counter.
    pub fn new(
        cfg: Config,
        group_key: &SharedKey,
        durable: Option<Durable>,
        now: Instant,
        unix_micros: u64,
    ) -> Node {
        let d = durable.unwrap_or_else(|| Durable {
            committed: View::genesis(&cfg.genesis),
            promised: 0,
            accepted: None,
            registered_seq: None,
        });
        let last_heard = d.committed.nodes().map(|n| (n, now)).collect();
        let newest_seen = d.committed.epoch;
        Node {
            key: group_key.derive("membership"),
            counter: CounterSource::new(unix_micros),
            replay: ReplayWindow::new(),
            promised: d.promised.max(d.committed.epoch),
            committed: d.committed,
            accepted: d.accepted,
            newest_seen,
            highest_ballot_seen: 0,
            last_heard,
            lease_heard: BTreeMap::new(),
            last_now: now,
            next_heartbeat: now,
            acting: false,
            registered_seq: d.registered_seq,
            round: None,
            retry_at: None,
            joins: BTreeSet::new(),
            removals: BTreeSet::new(),
            seq_floor: None,
            snodes: BTreeSet::new(),
            contact_hint: None,
            next_probe: now,
            last_registered: None,
            joined_at: None,
            rejoin_backoff: Duration::ZERO,
            stats: Stats::default(),
            actions: VecDeque::new(),
            cfg,
        }
    }

    // ---- queries -------------------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn role(&self) -> Role {
        self.cfg.role
    }

    pub fn committed(&self) -> &View {
        &self.committed
    }

    /// The epoch we act as contact node in, if we do.
    pub fn acting(&self) -> Option<u64> {
        self.acting.then_some(self.committed.epoch)
    }

    pub fn is_member(&self) -> bool {
        self.cfg.role == Role::Backup && self.committed.contains(self.cfg.id)
    }

    pub fn snodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.snodes.iter().copied()
    }

    /// The contact as far as we know: from our view if we are a member, else from the
    /// last answer we had.
    pub fn contact(&self) -> Option<NodeId> {
        if self.is_member() {
            self.committed.contact()
        } else {
            self.contact_hint.map(|(_, c)| c)
        }
    }

    /// When we last heard from a member of our view.
    pub fn last_heard(&self, node: NodeId) -> Option<Instant> {
        self.last_heard.get(&node).copied()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn durable(&self) -> Durable {
        Durable {
            committed: self.committed.clone(),
            promised: self.promised,
            accepted: self.accepted.clone(),
            registered_seq: self.registered_seq,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next time [`Node::handle_timeout`] has something to do; always after the last
    /// time we were given.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.cfg.failure_timeout;
        // Scheduled times are moved on when handled; computed deadlines (a silence, the
        // lease) stay in the past once reached, so only future ones count.
        let mut scheduled: Vec<Instant> = Vec::with_capacity(4);
        let mut computed: Vec<Instant> = Vec::with_capacity(2);
        if self.is_member() {
            scheduled.push(self.next_heartbeat);
            if let Some(h) = self
                .committed
                .predecessor(self.cfg.id)
                .and_then(|p| self.last_heard.get(&p))
            {
                computed.push(*h + t);
            }
            if self.acting {
                computed.extend(self.lease_end());
            }
            computed.extend(
                self.removals
                    .iter()
                    .filter_map(|r| self.last_heard.get(r))
                    .map(|h| *h + t),
            );
            if let Some(r) = &self.round {
                scheduled.push(r.deadline);
            } else {
                scheduled.extend(self.retry_at);
            }
        } else {
            scheduled.push(self.next_probe);
        }
        let scheduled = scheduled.into_iter().map(|x| x.max(self.last_now));
        let computed = computed.into_iter().filter(|&x| x > self.last_now);
        scheduled.chain(computed).min()
    }

    // ---- inputs --------------------------------------------------------------------

    pub fn handle_frame(&mut self, frame: &[u8], now: Instant) {
        self.last_now = now;
        let opened = match auth::open(&self.key, frame) {
            Ok(o) => o,
            Err(e) => return self.reject(None, Rejection::Auth(e)),
        };
        let (kind, sender, counter) = (opened.kind, opened.sender, opened.counter);
        if kind != FRAME_KIND {
            return self.reject(Some(sender), Rejection::WrongKind(kind));
        }
        if sender == self.cfg.id {
            return self.reject(Some(sender), Rejection::FromSelf);
        }
        if let Err(e) = self.replay.accept(sender, counter) {
            return self.reject(Some(sender), Rejection::Auth(e));
        }
        let msg = match Message::decode(opened.payload) {
            Ok(m) => m,
            Err(e) => return self.reject(Some(sender), Rejection::Malformed(e)),
        };
        self.stats.received += 1;
        self.on_message(sender, msg, now);
        self.evaluate(now);
    }

    pub fn handle_command(&mut self, cmd: Command, now: Instant) {
        self.last_now = now;
        match cmd {
            Command::HandoffFailed(n) => {
                if self.acting && self.snodes.remove(&n) {
                    info!(snode = n, "handoff failed; snode removed");
                    self.snodes_changed();
                }
            }
            Command::RefreshDsa => {
                if self.acting {
                    self.seq_floor = Some(self.committed.dsa_seq.wrapping_add(1));
                }
            }
            Command::DsaSeqRejected { last } => {
                if self.acting {
                    self.seq_floor = Some(last.wrapping_add(1));
                }
            }
        }
        self.evaluate(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if self.is_member() {
            if now >= self.next_heartbeat {
                self.next_heartbeat = now + self.cfg.heartbeat;
                let hb = Message::Heartbeat {
                    epoch: self.committed.epoch,
                };
                self.send_to_view(&hb);
            }
            if self.round.as_ref().is_some_and(|r| now >= r.deadline) {
                self.round_timeout(now);
            }
        } else if now >= self.next_probe {
            self.probe(now);
        }
        self.evaluate(now);
    }

    // ---- messages ------------------------------------------------------------------

    fn on_message(&mut self, from: NodeId, msg: Message, now: Instant) {
        if let Some(e) = msg.committed_epoch() {
            self.newest_seen = self.newest_seen.max(e);
        }
        if self.committed.contains(from) {
            self.last_heard.insert(from, now);
            self.lease_heard.insert(from, now);
            self.removals.remove(&from);
        }
        // Before anything else, so nothing below is done as a deposed contact.
        self.update_acting(now);
        match msg {
            Message::Heartbeat { epoch } => {
                let mine = self.committed.epoch;
                if epoch > mine {
                    self.send(Dest::Node(from), &Message::SyncRequest { epoch: mine });
                } else if !self.committed.contains(from) {
                    if self.is_member() {
                        self.send(Dest::Node(from), &Message::NotMember { epoch: mine });
                    }
                } else if epoch < mine {
                    let view = self.committed.clone();
                    self.send(Dest::Node(from), &Message::Commit { view });
                }
            }
            Message::SyncRequest { epoch } => {
                if self.committed.epoch > epoch {
                    let view = self.committed.clone();
                    self.send(Dest::Node(from), &Message::Commit { view });
                }
            }
            Message::NotMember { epoch } => {
                if epoch > self.committed.epoch {
                    let mine = self.committed.epoch;
                    self.send(Dest::Node(from), &Message::SyncRequest { epoch: mine });
                }
            }
            Message::Commit { view } => self.apply_commit(view, now),
            Message::Prepare { ballot, base } => self.on_prepare(from, ballot, base, now),
            Message::Accept { base, view } => self.on_accept(from, base, view, now),
            Message::Promise {
                ballot,
                base_epoch,
                accepted,
            } => {
                if let Some(r) = &mut self.round {
                    if let Phase::Prepare { promises } = &mut r.phase {
                        if r.ballot == ballot && r.base.epoch == base_epoch && r.base.contains(from)
                        {
                            promises.insert(from, accepted.filter(|v| v.epoch < ballot));
                            self.advance_round(now);
                        }
                    }
                }
            }
            Message::Accepted { ballot } => {
                if let Some(r) = &mut self.round {
                    if let Phase::Accept { accepted, .. } = &mut r.phase {
                        if r.ballot == ballot && r.base.contains(from) {
                            accepted.insert(from);
                            self.advance_round(now);
                        }
                    }
                }
            }
            Message::Nack { ballot, promised } => {
                self.highest_ballot_seen = self.highest_ballot_seen.max(promised);
                let refused = promised > ballot;
                if refused && self.round.as_ref().is_some_and(|r| r.ballot == ballot) {
                    debug!(ballot = %EpochDisplay(ballot), by = from, "round refused");
                    self.abort_round(now);
                }
            }
            Message::Join => {
                if self.acting {
                    if self.committed.contains(from) {
                        let view = self.committed.clone();
                        self.send(Dest::Node(from), &Message::Commit { view });
                    } else if self.joins.len() < MAX_MEMBERS {
                        self.joins.insert(from);
                    }
                } else {
                    self.redirect(from);
                }
            }
            Message::Register => {
                if self.acting {
                    if !self.committed.contains(from)
                        && self.snodes.len() < MAX_SNODES
                        && self.snodes.insert(from)
                    {
                        info!(snode = from, "snode registered");
                        self.snodes_changed();
                    }
                    let epoch = self.committed.epoch;
                    self.send(Dest::Node(from), &Message::Registered { epoch });
                } else {
                    self.redirect(from);
                }
            }
            Message::ContactIs { epoch, contact } => {
                let known = self.contact_hint.map_or(0, |(e, _)| e);
                if epoch >= known && self.contact_hint != Some((epoch, contact)) {
                    self.contact_hint = Some((epoch, contact));
                    if !self.is_member() && contact != self.cfg.id {
                        let m = self.probe_message();
                        self.send(Dest::Node(contact), &m);
                    }
                }
            }
            Message::Registered { epoch } => {
                if epoch >= self.contact_hint.map_or(0, |(e, _)| e) {
                    self.contact_hint = Some((epoch, from));
                    self.last_registered = Some(now);
                }
            }
            Message::Snodes { epoch, snodes } => {
                if self.is_member()
                    && epoch == self.committed.epoch
                    && self.committed.contact() == Some(from)
                {
                    self.snodes = snodes.into_iter().collect();
                }
            }
        }
    }

    /// Redirects a join or a registration sent to a backup that is not the contact.
    fn redirect(&mut self, to: NodeId) {
        if !self.is_member() {
            return;
        }
        if let Some(contact) = self.committed.contact() {
            let epoch = self.committed.epoch;
            self.send(Dest::Node(to), &Message::ContactIs { epoch, contact });
        }
    }

    fn on_prepare(&mut self, from: NodeId, ballot: u64, base: View, now: Instant) {
        let base_epoch = base.epoch;
        self.apply_commit(base, now);
        if self.committed.epoch > base_epoch {
            let view = self.committed.clone();
            return self.send(Dest::Node(from), &Message::Commit { view });
        }
        if !self.is_member() {
            return;
        }
        self.highest_ballot_seen = self.highest_ballot_seen.max(ballot);
        // Ballots are unique per proposer, so an equal one is the same proposer's
        // Prepare arriving late or twice: promise again.
        if ballot >= self.promised {
            self.promised = ballot;
            self.persist();
            if self.round.as_ref().is_some_and(|r| r.ballot < ballot) {
                self.abort_round(now);
            }
            let accepted = self.accepted.clone();
            self.send(
                Dest::Node(from),
                &Message::Promise {
                    ballot,
                    base_epoch,
                    accepted,
                },
            );
        } else {
            let promised = self.promised;
            self.send(Dest::Node(from), &Message::Nack { ballot, promised });
        }
    }

    fn on_accept(&mut self, from: NodeId, base: View, view: View, now: Instant) {
        let base_epoch = base.epoch;
        self.apply_commit(base, now);
        if self.committed.epoch > base_epoch {
            let v = self.committed.clone();
            return self.send(Dest::Node(from), &Message::Commit { view: v });
        }
        if !self.is_member() {
            return;
        }
        let ballot = view.epoch;
        self.highest_ballot_seen = self.highest_ballot_seen.max(ballot);
        if ballot >= self.promised && ballot > self.committed.epoch {
            self.promised = ballot;
            self.accepted = Some(view);
            self.persist();
            if self.round.as_ref().is_some_and(|r| r.ballot < ballot) {
                self.abort_round(now);
            }
            self.send(Dest::Node(from), &Message::Accepted { ballot });
        } else {
            let promised = self.promised;
            self.send(Dest::Node(from), &Message::Nack { ballot, promised });
        }
    }

    /// Adopts `view` if it is newer than what we have: it was committed by a majority, and
    /// committed views form one chain with increasing epochs.
    fn apply_commit(&mut self, view: View, now: Instant) {
        if view.epoch <= self.committed.epoch {
            return;
        }
        let was_member = self.is_member();
        info!(
            epoch = %EpochDisplay(view.epoch),
            contact = ?view.contact(),
            members = ?view.nodes().collect::<Vec<_>>(),
            "view committed"
        );
        self.committed = view;
        self.promised = self.promised.max(self.committed.epoch);
        // Whatever we accepted was for the successor of an older view.
        self.accepted = None;
        self.newest_seen = self.newest_seen.max(self.committed.epoch);
        self.persist();
        self.actions
            .push_back(Action::Committed(self.committed.clone()));
        let members: Vec<NodeId> = self.committed.nodes().collect();
        for m in &members {
            self.last_heard.entry(*m).or_insert(now);
        }
        self.last_heard.retain(|n, _| members.contains(n));
        self.lease_heard.retain(|n, _| members.contains(n));
        self.joins.retain(|j| !members.contains(j));
        self.removals.retain(|r| members.contains(r));
        if let Some(f) = self.seq_floor {
            if !seq_newer(f, self.committed.dsa_seq) {
                self.seq_floor = None;
            }
        }
        if self
            .round
            .as_ref()
            .is_some_and(|r| r.base.epoch < self.committed.epoch)
        {
            self.round = None;
        }
        let epoch = self.committed.epoch;
        match (was_member, self.is_member()) {
            (true, false) => {
                warn!(epoch = %EpochDisplay(epoch), "removed from the view; joining again");
                self.actions.push_back(Action::Removed { epoch });
                self.next_probe = now + self.rejoin_delay(now);
                self.snodes.clear();
            }
            (false, true) => {
                // What we heard while outside the view is stale: a fresh grace for
                // everyone, or we would suspect live members the moment we join.
                for m in &members {
                    self.last_heard.insert(*m, now);
                }
                info!(epoch = %EpochDisplay(epoch), "joined");
                self.joined_at = Some(now);
                self.actions.push_back(Action::Joined { epoch });
                self.next_heartbeat = now;
            }
            _ => {}
        }
        self.update_acting(now);
    }

    // ---- rounds (two-phase commit with Paxos ballots) ------------------------------

    fn next_ballot(&self) -> u64 {
        let top = self
            .promised
            .max(self.highest_ballot_seen)
            .max(self.newest_seen);
        (((top >> 32) + 1) << 32) | u64::from(self.cfg.id)
    }

    fn start_round(&mut self, now: Instant) {
        let ballot = self.next_ballot();
        self.promised = ballot;
        self.persist();
        self.stats.rounds_started += 1;
        let base = self.committed.clone();
        debug!(ballot = %EpochDisplay(ballot), base = %EpochDisplay(base.epoch), "round starts");
        let mut promises = BTreeMap::new();
        promises.insert(self.cfg.id, self.accepted.clone());
        self.send_to_view(&Message::Prepare {
            ballot,
            base: base.clone(),
        });
        self.round = Some(Round {
            ballot,
            base,
            deadline: now + self.cfg.failure_timeout,
            phase: Phase::Prepare { promises },
        });
        self.advance_round(now);
    }

    fn advance_round(&mut self, now: Instant) {
        let Some(r) = &self.round else { return };
        let majority = r.base.majority();
        match &r.phase {
            Phase::Prepare { promises } => {
                if promises.len() < majority {
                    return;
                }
                let ballot = r.ballot;
                let base = r.base.clone();
                // Paxos: a value a majority may have accepted must be the one chosen.
                let earlier = promises.values().flatten().max_by_key(|v| v.epoch).cloned();
                let view = match earlier {
                    Some(mut v) => {
                        v.epoch = ballot;
                        v
                    }
                    None => match self.build_view(&base, ballot, now) {
                        Some(v) => v,
                        None => {
                            self.round = None;
                            return;
                        }
                    },
                };
                if ballot < self.promised {
                    return self.abort_round(now);
                }
                self.accepted = Some(view.clone());
                self.persist();
                let msg = Message::Accept {
                    base,
                    view: view.clone(),
                };
                self.send_to_view(&msg);
                if let Some(r) = &mut self.round {
                    r.phase = Phase::Accept {
                        view,
                        accepted: BTreeSet::from([self.cfg.id]),
                    };
                }
                self.advance_round(now);
            }
            Phase::Accept { view, accepted } => {
                // The seed's two-phase commit waits for every backup that stays; the
                // majority is what makes it safe. The deadline settles for the majority.
                let all = r
                    .base
                    .nodes()
                    .filter(|n| view.contains(*n))
                    .all(|n| accepted.contains(&n));
                if all && accepted.len() >= majority {
                    self.commit_round(now);
                }
            }
        }
    }

    fn round_timeout(&mut self, now: Instant) {
        let Some(r) = &self.round else { return };
        if let Phase::Accept { view, accepted } = &r.phase {
            if accepted.len() >= r.base.majority() {
                // The seed: a backup that did not answer is declared failed and the
                // next commit includes that change — here once our failure detector
                // agrees (silent for a failure timeout), so a slow backup is not evicted.
                let silent: Vec<NodeId> = r
                    .base
                    .nodes()
                    .filter(|n| view.contains(*n) && !accepted.contains(n))
                    .collect();
                self.removals.extend(silent);
                return self.commit_round(now);
            }
        }
        debug!(ballot = %EpochDisplay(r.ballot), "round timed out");
        self.abort_round(now);
    }

    fn abort_round(&mut self, now: Instant) {
        self.round = None;
        // Proposers back off by rank so duelling rounds settle.
        let pos = self
            .committed
            .members
            .iter()
            .position(|m| m.node == self.cfg.id)
            .unwrap_or(0) as u32;
        self.retry_at = Some(now + self.cfg.heartbeat * (pos + 1) / 2);
    }

    fn commit_round(&mut self, now: Instant) {
        let Some(r) = self.round.take() else { return };
        let Phase::Accept { view, .. } = r.phase else {
            return;
        };
        self.stats.rounds_committed += 1;
        let mut to: BTreeSet<NodeId> = r.base.nodes().chain(view.nodes()).collect();
        to.remove(&self.cfg.id);
        self.apply_commit(view.clone(), now);
        for n in to {
            self.send(Dest::Node(n), &Message::Commit { view: view.clone() });
        }
        self.retry_at = None;
    }

    /// The members silent for a failure timeout just before us in rank order (our
    /// predecessor, and its predecessors if they are silent too).
    fn silent_run(&self, now: Instant) -> Vec<NodeId> {
        let m = &self.committed.members;
        let Some(i) = m.iter().position(|x| x.node == self.cfg.id) else {
            return vec![];
        };
        let mut out = vec![];
        for k in 1..m.len() {
            let n = m[(i + m.len() - k) % m.len()].node;
            if self.silent(n, now) {
                out.push(n);
            } else {
                break;
            }
        }
        out
    }

    fn silent(&self, n: NodeId, now: Instant) -> bool {
        self.last_heard.get(&n).map_or(true, |h| {
            now.saturating_duration_since(*h) >= self.cfg.failure_timeout
        })
    }

    /// The view we would propose after `base`, if anything should change.
    fn build_view(&self, base: &View, ballot: u64, now: Instant) -> Option<View> {
        let mut remove: BTreeSet<NodeId> = self.silent_run(now).into_iter().collect();
        remove.extend(self.removals.iter().filter(|n| self.silent(**n, now)));
        remove.remove(&self.cfg.id);
        let mut v = base.clone();
        v.members.retain(|m| !remove.contains(&m.node));
        let ours = base.contact() == Some(self.cfg.id);
        if ours {
            for &j in &self.joins {
                if !v.contains(j) && v.members.len() < MAX_MEMBERS {
                    v.members.push(Member {
                        node: j,
                        rank: v.next_rank,
                    });
                    v.next_rank = v.next_rank.wrapping_add(1);
                }
            }
        }
        let mut seq = base.dsa_seq;
        if v.contact() != base.contact() {
            seq = seq.wrapping_add(1);
        }
        if let Some(f) = self.seq_floor.filter(|_| ours) {
            if seq_newer(f, seq) {
                seq = f;
            }
        }
        v.dsa_seq = seq;
        if v == *base {
            return None;
        }
        v.epoch = ballot;
        Some(v)
    }

    fn wants_change(&self, now: Instant) -> bool {
        if !self.silent_run(now).is_empty()
            || self
                .removals
                .iter()
                .any(|r| self.committed.contains(*r) && self.silent(*r, now))
        {
            return true;
        }
        self.acting
            && (self.joins.iter().any(|j| !self.committed.contains(*j)) || self.seq_floor.is_some())
    }

    // ---- contact role --------------------------------------------------------------

    /// How long a contact keeps acting after it last heard from a majority: one heartbeat
    /// interval less than a successor waits before suspecting it, so that (with delays
    /// under a heartbeat interval) a deposed contact has stopped before the successor
    /// commits.
    fn lease(&self) -> Duration {
        let t = self.cfg.failure_timeout;
        if self.cfg.heartbeat < t {
            t - self.cfg.heartbeat
        } else {
            t / 2
        }
    }

    /// When our majority lease runs out: the time the (majority − 1)-th most recently
    /// heard other member has been silent for a lease.
    fn lease_end(&self) -> Option<Instant> {
        let need = self.committed.majority().saturating_sub(1);
        if need == 0 {
            return None;
        }
        let mut heard: Vec<Instant> = self
            .committed
            .nodes()
            .filter(|n| *n != self.cfg.id)
            .filter_map(|n| self.lease_heard.get(&n).copied())
            .collect();
        heard.sort_unstable_by(|a, b| b.cmp(a));
        heard.get(need - 1).map(|h| *h + self.lease())
    }

    fn lease_ok(&self, now: Instant) -> bool {
        let need = self.committed.majority().saturating_sub(1);
        need == 0 || self.lease_end().is_some_and(|end| now < end)
    }

    fn update_acting(&mut self, now: Instant) {
        let contact = self.is_member() && self.committed.contact() == Some(self.cfg.id);
        let current = self.newest_seen <= self.committed.epoch;
        let lease = self.lease_ok(now);
        let epoch = self.committed.epoch;
        if contact && current && lease {
            if !self.acting {
                self.acting = true;
                info!(epoch = %EpochDisplay(epoch), "acting as contact node");
                self.actions.push_back(Action::BecomeContact { epoch });
                let snodes: Vec<NodeId> = self.snodes.iter().copied().collect();
                for s in snodes {
                    self.send(Dest::Node(s), &Message::Registered { epoch });
                }
            }
            let seq = self.committed.dsa_seq;
            if self.registered_seq != Some(seq) {
                self.registered_seq = Some(seq);
                self.persist();
                self.actions.push_back(Action::RegisterDsa { epoch, seq });
            }
        } else if self.acting {
            self.acting = false;
            let reason = if !contact {
                StopReason::Deposed
            } else if !current {
                StopReason::NewerEpoch
            } else {
                StopReason::LostMajority
            };
            warn!(epoch = %EpochDisplay(epoch), ?reason, "no longer acting as contact node");
            self.actions
                .push_back(Action::StopContact { epoch, reason });
            self.joins.clear();
            self.seq_floor = None;
        }
    }

    fn evaluate(&mut self, now: Instant) {
        self.update_acting(now);
        if !self.is_member() || self.round.is_some() {
            return;
        }
        if let Some(r) = self.retry_at {
            if now < r {
                return;
            }
            self.retry_at = None;
        }
        if self.wants_change(now) {
            self.start_round(now);
        }
    }

    // ---- joiners and snodes --------------------------------------------------------

    /// How long a removed node waits before joining again. Two backups that cannot reach
    /// each other (each reaching the contact) remove each other in turn — the one that
    /// rejoins goes to the end of the line, where the other is its predecessor — about
    /// five views a second with the defaults. A node removed soon after it joined
    /// (within [`STABLE_TIMEOUTS`] failure timeouts) doubles its wait, from one failure
    /// timeout up to [`MAX_BACKOFF_TIMEOUTS`]; a node that had been stable rejoins at once,
    /// so a single false suspicion costs nothing more than before.
    fn rejoin_delay(&mut self, now: Instant) -> Duration {
        let t = self.cfg.failure_timeout;
        let flapping = self
            .joined_at
            .is_some_and(|j| now.saturating_duration_since(j) < t * STABLE_TIMEOUTS);
        self.rejoin_backoff = if flapping {
            (self.rejoin_backoff * 2).clamp(t, t * MAX_BACKOFF_TIMEOUTS)
        } else {
            Duration::ZERO
        };
        if !self.rejoin_backoff.is_zero() {
            info!(
                wait_ms = self.rejoin_backoff.as_millis() as u64,
                "removed soon after joining: backing off before joining again"
            );
        }
        self.rejoin_backoff
    }

    fn probe_message(&self) -> Message {
        match self.cfg.role {
            Role::Backup => Message::Join,
            Role::Snode => Message::Register,
        }
    }

    fn probe(&mut self, now: Instant) {
        let m = self.probe_message();
        self.send(Dest::Dsa, &m);
        let mut to: BTreeSet<NodeId> = BTreeSet::new();
        if let Some((_, c)) = self.contact_hint {
            to.insert(c);
        }
        if let Some(c) = self.committed.contact() {
            to.insert(c);
        }
        to.remove(&self.cfg.id);
        for n in to {
            self.send(Dest::Node(n), &m);
        }
        let registered = self
            .last_registered
            .is_some_and(|t| now < t + self.cfg.register_interval + self.cfg.failure_timeout);
        self.next_probe = now
            + if self.cfg.role == Role::Snode && registered {
                self.cfg.register_interval
            } else {
                self.cfg.failure_timeout
            };
    }

    fn snodes_changed(&mut self) {
        let snodes: Vec<NodeId> = self.snodes.iter().copied().collect();
        self.actions
            .push_back(Action::SnodesChanged(snodes.clone()));
        let epoch = self.committed.epoch;
        self.send_to_view(&Message::Snodes { epoch, snodes });
    }

    // ---- output --------------------------------------------------------------------

    fn reject(&mut self, sender: Option<NodeId>, why: Rejection) {
        match why {
            Rejection::Auth(AuthError::Replay | AuthError::TooOld) => self.stats.replayed += 1,
            Rejection::Auth(_) | Rejection::WrongKind(_) | Rejection::FromSelf => {
                self.stats.bad_auth += 1
            }
            Rejection::Malformed(_) => self.stats.malformed += 1,
        }
        debug!(?sender, ?why, "membership frame rejected");
        self.actions.push_back(Action::Rejected { sender, why });
    }

    fn persist(&mut self) {
        let d = self.durable();
        self.actions.push_back(Action::Persist(d));
    }

    fn send(&mut self, to: Dest, msg: &Message) {
        let counter = self.counter.next();
        let frame = auth::seal(&self.key, FRAME_KIND, self.cfg.id, counter, &msg.encode());
        self.stats.sent += 1;
        self.actions.push_back(Action::Send { to, frame });
    }

    fn send_to_view(&mut self, msg: &Message) {
        let others: Vec<NodeId> = self
            .committed
            .nodes()
            .filter(|n| *n != self.cfg.id)
            .collect();
        for n in others {
            self.send(Dest::Node(n), msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_millis(100);
    const T: Duration = Duration::from_millis(300);

    fn key() -> SharedKey {
        SharedKey::from_bytes(&[0x5a; 32]).unwrap()
    }

    fn cfg(id: NodeId, role: Role) -> Config {
        Config {
            id,
            role,
            genesis: vec![1, 2, 3],
            heartbeat: H,
            failure_timeout: T,
            register_interval: H * 10,
        }
    }

    /// A loss-free network with a fixed 1 ms delay; `Dest::Dsa` goes to the node that
    /// registered the DSA last.
    struct Net {
        t0: Instant,
        now: Instant,
        nodes: BTreeMap<NodeId, Node>,
        down: BTreeSet<NodeId>,
        inflight: Vec<(Instant, NodeId, Vec<u8>)>,
        dsa: Option<NodeId>,
        log: Vec<(NodeId, Action)>,
    }

    impl Net {
        fn new(ids: &[(NodeId, Role)]) -> Net {
            let t0 = Instant::now();
            let k = key();
            let nodes = ids
                .iter()
                .map(|&(id, role)| (id, Node::new(cfg(id, role), &k, None, t0, 1_000_000)))
                .collect();
            Net {
                t0,
                now: t0,
                nodes,
                down: BTreeSet::new(),
                inflight: vec![],
                dsa: None,
                log: vec![],
            }
        }

        fn drain(&mut self, id: NodeId) {
            while let Some(a) = self.nodes.get_mut(&id).unwrap().poll_action() {
                match &a {
                    Action::Send { to, frame } => {
                        let to = match to {
                            Dest::Node(n) => Some(*n),
                            Dest::Dsa => self.dsa,
                        };
                        if let Some(to) = to {
                            let at = self.now + Duration::from_millis(1);
                            self.inflight.push((at, to, frame.clone()));
                        }
                    }
                    Action::RegisterDsa { .. } => self.dsa = Some(id),
                    _ => {}
                }
                self.log.push((id, a));
            }
        }

        fn run_until(&mut self, until: Duration) {
            let end = self.t0 + until;
            loop {
                let msg = self.inflight.iter().map(|m| m.0).min();
                let timer = self
                    .nodes
                    .iter()
                    .filter(|(id, _)| !self.down.contains(id))
                    .filter_map(|(id, n)| n.poll_timeout().map(|t| (t, *id)))
                    .min();
                let next = match (msg, timer) {
                    (Some(m), Some((t, _))) => m.min(t),
                    (Some(m), None) => m,
                    (None, Some((t, _))) => t,
                    (None, None) => break,
                };
                if next > end {
                    break;
                }
                self.now = next;
                if msg == Some(next) {
                    let i = self.inflight.iter().position(|m| m.0 == next).unwrap();
                    let (_, to, frame) = self.inflight.remove(i);
                    if !self.down.contains(&to) {
                        self.nodes.get_mut(&to).unwrap().handle_frame(&frame, next);
                        self.drain(to);
                    }
                } else if let Some((_, id)) = timer {
                    self.nodes.get_mut(&id).unwrap().handle_timeout(next);
                    self.drain(id);
                }
            }
            self.now = end;
        }

        fn acting(&self) -> Vec<NodeId> {
            self.nodes
                .iter()
                .filter(|(id, n)| !self.down.contains(id) && n.acting().is_some())
                .map(|(id, _)| *id)
                .collect()
        }
    }

    #[test]
    fn the_genesis_contact_acts_once_it_hears_a_majority_and_registers_the_dsa() {
        let mut net = Net::new(&[(1, Role::Backup), (2, Role::Backup), (3, Role::Backup)]);
        net.run_until(Duration::from_millis(50));
        assert_eq!(net.acting(), vec![1]);
        assert!(net
            .log
            .iter()
            .any(|(id, a)| *id == 1 && *a == Action::RegisterDsa { epoch: 0, seq: 0 }));
    }

    #[test]
    fn a_dead_contact_is_replaced_by_its_successor_with_a_newer_sequence_number() {
        let mut net = Net::new(&[(1, Role::Backup), (2, Role::Backup), (3, Role::Backup)]);
        net.run_until(Duration::from_millis(500));
        net.down.insert(1);
        net.run_until(Duration::from_millis(1000));
        assert_eq!(net.acting(), vec![2]);
        let v = net.nodes[&3].committed().clone();
        assert_eq!(v.nodes().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(v.dsa_seq, 1);
        assert!(net
            .log
            .iter()
            .any(|(id, a)| *id == 2 && matches!(a, Action::RegisterDsa { seq: 1, .. })));
    }

    #[test]
    fn a_falsely_suspected_backup_is_told_and_joins_again_at_the_end_of_the_line() {
        let mut net = Net::new(&[(1, Role::Backup), (2, Role::Backup), (3, Role::Backup)]);
        net.run_until(Duration::from_millis(500));
        // Node 2 pauses long enough to be removed, then comes back with its old view.
        net.down.insert(2);
        net.inflight.retain(|m| m.1 != 2);
        net.run_until(Duration::from_millis(1200));
        assert!(!net.nodes[&1].committed().contains(2));
        net.down.remove(&2);
        net.run_until(Duration::from_millis(2500));
        assert!(net
            .log
            .iter()
            .any(|(id, a)| *id == 2 && matches!(a, Action::Removed { .. })));
        assert!(net
            .log
            .iter()
            .any(|(id, a)| *id == 2 && matches!(a, Action::Joined { .. })));
        let v = net.nodes[&1].committed();
        let m2 = v.members.iter().find(|m| m.node == 2).expect("rejoined");
        assert_eq!(m2.rank, 3, "a rejoining node gets the next rank");
        assert_eq!(net.acting(), vec![1]);
    }

    #[test]
    fn snodes_register_and_a_failed_handoff_removes_one() {
        let mut net = Net::new(&[
            (1, Role::Backup),
            (2, Role::Backup),
            (3, Role::Backup),
            (7, Role::Snode),
        ]);
        net.run_until(Duration::from_millis(800));
        assert_eq!(net.nodes[&1].snodes().collect::<Vec<_>>(), vec![7]);
        // The backups got the list without a commit.
        assert_eq!(net.nodes[&2].snodes().collect::<Vec<_>>(), vec![7]);
        let now = net.now;
        net.nodes
            .get_mut(&1)
            .unwrap()
            .handle_command(Command::HandoffFailed(7), now);
        net.drain(1);
        assert_eq!(net.nodes[&1].snodes().count(), 0);
        // It registers again on its next period.
        net.run_until(Duration::from_millis(2500));
        assert_eq!(net.nodes[&1].snodes().collect::<Vec<_>>(), vec![7]);
    }

    #[test]
    fn forged_and_replayed_frames_are_rejected_and_counted() {
        let mut net = Net::new(&[(1, Role::Backup), (2, Role::Backup), (3, Role::Backup)]);
        net.run_until(Duration::from_millis(30));
        let now = net.now;
        let mkey = key().derive("membership");
        let frame = auth::seal(&mkey, FRAME_KIND, 2, 1 << 40, &Message::Join.encode());
        let n = net.nodes.get_mut(&3).unwrap();
        n.handle_frame(&frame, now);
        let received = n.stats().received;
        n.handle_frame(&frame, now);
        assert_eq!(n.stats().replayed, 1);
        let mut forged = frame.clone();
        forged[20] ^= 1;
        n.handle_frame(&forged, now);
        let other = SharedKey::from_bytes(&[1; 32])
            .unwrap()
            .derive("membership");
        n.handle_frame(
            &auth::seal(&other, FRAME_KIND, 2, 1 << 41, &Message::Join.encode()),
            now,
        );
        assert_eq!(n.stats().bad_auth, 2);
        let garbage = auth::seal(&mkey, FRAME_KIND, 2, (1 << 40) + 1, &[0xff, 1, 2]);
        n.handle_frame(&garbage, now);
        assert_eq!(n.stats().malformed, 1);
        assert_eq!(n.stats().received, received, "nothing else got through");
        let mut rejected = 0;
        while let Some(a) = n.poll_action() {
            rejected += usize::from(matches!(a, Action::Rejected { .. }));
        }
        assert_eq!(rejected, 4);
    }

    #[test]
    fn a_contact_that_learns_of_a_newer_epoch_stops_at_once() {
        let mut net = Net::new(&[(1, Role::Backup), (2, Role::Backup), (3, Role::Backup)]);
        net.run_until(Duration::from_millis(200));
        assert_eq!(net.acting(), vec![1]);
        let now = net.now;
        let mkey = key().derive("membership");
        let hb = Message::Heartbeat { epoch: 5 << 32 };
        let frame = auth::seal(&mkey, FRAME_KIND, 3, 1 << 50, &hb.encode());
        let n = net.nodes.get_mut(&1).unwrap();
        n.handle_frame(&frame, now);
        assert_eq!(n.acting(), None);
        let mut stopped = false;
        while let Some(a) = n.poll_action() {
            if let Action::StopContact { reason, .. } = a {
                assert_eq!(reason, StopReason::NewerEpoch);
                stopped = true;
            }
            assert!(
                !matches!(a, Action::RegisterDsa { .. }),
                "no registration after learning of a newer epoch"
            );
        }
        assert!(stopped);
    }

    #[test]
    fn a_minority_never_commits() {
        let mut net = Net::new(&[(1, Role::Backup), (2, Role::Backup), (3, Role::Backup)]);
        net.run_until(Duration::from_millis(300));
        net.down.insert(1);
        net.down.insert(2);
        net.run_until(Duration::from_millis(3000));
        assert_eq!(net.nodes[&3].committed().epoch, 0);
        assert!(net.acting().is_empty());
    }

    #[test]
    fn config_from_the_ds_block_puts_the_contact_first() {
        use crate::config::model::{DistributedServer, DsPeer, HandoffDrain};
        let peer = |node_id, role| DsPeer {
            node_id,
            address: "2001:db8::1".parse().unwrap(),
            role,
        };
        let ds = DistributedServer {
            name: "web".into(),
            address: "2001:db8::80".parse().unwrap(),
            home_agent_address: "2001:db8::1".parse().unwrap(),
            role: DsRole::Backup,
            node_id: 4,
            local_address: None,
            peers: vec![
                peer(9, DsRole::Snode),
                peer(7, DsRole::Contact),
                peer(2, DsRole::Backup),
            ],
            shared_key_file: "/etc/mip6d/ds.key".into(),
            heartbeat_interval: H,
            failure_timeout: T,
            handoff_drain: HandoffDrain::Auto,
            control_port: 7780,
            state_file: None,
            contact_interface: None,
        };
        let c = Config::from_ds(&ds);
        assert_eq!(c.genesis, vec![7, 2, 4]);
        assert_eq!(c.role, Role::Backup);
    }
}
