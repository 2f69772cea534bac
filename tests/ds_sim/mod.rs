//! A deterministic simulation of the Distributed Servers membership protocol
//! (`mip6d::ds::membership`), for `tests/ds_membership_sim.rs` and
//! `examples/ds_membership_sweep.rs`. Same style as the MIPv6 simulation in `tests/sim`.
//!
//! # Model
//! - **Time** is virtual: an event queue ordered by (time, insertion number) plus each
//!   node's `poll_timeout`; the machines see `base + t` and a virtual wall clock.
//! - **Randomness** comes from one seeded splitmix64 (`tests/sim/rng.rs`): the scenario,
//!   delays, loss, duplication, the attacker. A seed replays the same run.
//! - **Frames are bytes**: every message is sealed by the sending node and opened by the
//!   receiving one with `crypto::auth`, so codec, authentication and replay windows run.
//! - **Nodes**: 3–7, of which at least 3 backups (the genesis view) and the rest snodes.
//!   A crash loses everything but what the node last asked to persist
//!   ([`Action::Persist`]); a restart builds a new `Node` from it.
//! - **The network**: per-message delay (jitter reorders), loss, duplication, and
//!   partitions into two sides. `Dest::Dsa` goes to whichever node the simulated home
//!   agent has the DSA bound to.
//! - **The home agent** keeps one binding for the DSA and accepts a registration only
//!   with a newer sequence number (RFC 1982 order on 16 bits), as RFC 6275 §9.5.1 says.
//! - **An attacker** injects frames with flipped bits, frames sealed with another key,
//!   random bytes, and replays of frames a node already accepted.
//! - **Chaos, then healing**: crashes, restarts, partitions, loss and attacks until
//!   `heal_at`; then every node is up, the network is perfect, and a contact must act
//!   within [`heal_bound`] and keep acting.
//!
//! # Invariants, checked after every event
//! 1. Never two nodes acting as contact in the same epoch (over the whole run).
//! 2. Committed views are identical for the same epoch.
//! 3. A node never acts as contact in an epoch older than one it has been told of.
//! 4. The home agent's binding only moves forward: a registration with a newer epoch
//!    always carries a newer sequence number, and an older epoch never a newer one.
//! 5. Frames from the attacker are never accepted.
//! 6. After `heal_at + heal_bound`: exactly one node acts, and it is the contact of the
//!    newest committed view; at the end it knows every snode.
//! 7. The simulation's record of who acts (from the actions) matches what each node says.
//! 8. (Failover profile) the time from the contact's crash to a new contact acting is at
//!    most `failure_timeout + 5 × max delay`.
#![allow(dead_code)]

#[path = "../sim/rng.rs"]
mod rng;
pub use rng::Rng;

use mip6d::crypto::auth::{self, SharedKey};
use mip6d::ds::membership::{
    seq_newer, Action, Command, Config, Dest, Durable, Message, Node, NodeId, Role, View,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

pub const HEARTBEAT: Duration = Duration::from_millis(100);
pub const FAILURE_TIMEOUT: Duration = Duration::from_millis(300);

/// After healing, a contact acts within this bound (see the README's argument): one
/// failure timeout for rounds and leases that were in flight to run out, one for a node
/// restarted at healing to be removed on suspicion and join again, and four heartbeat
/// intervals for everyone to hear everyone, catch up and back off.
pub fn heal_bound() -> Duration {
    FAILURE_TIMEOUT * 2 + HEARTBEAT * 4
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// For `cargo test`: 3 s of chaos, then healing.
    Quick,
    /// For the sweep: 10 s of chaos.
    Full,
    /// A quiet LAN; the acting contact is killed once: measures failover.
    Failover,
    /// A quiet LAN of 3 backups (and snodes); the two backups that are not the contact
    /// cannot reach each other for [`SPLIT`]: measures the epoch churn the rejoin
    /// back-off bounds.
    BackupSplit,
}

/// How long the backups are cut from each other in [`Profile::BackupSplit`].
pub const SPLIT: Duration = Duration::from_secs(20);

/// A deliberate defect, to show the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    None,
    /// The simulation ignores `StopContact`, as if a machine never stopped acting.
    NeverStops,
    /// Restarts lose the persisted state (a node that forgot its promises).
    Amnesia,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub profile: Profile,
    pub plant: Plant,
    pub trace: bool,
}

impl Params {
    pub fn new(seed: u64, profile: Profile) -> Self {
        Params {
            seed,
            profile,
            plant: Plant::None,
            trace: std::env::var_os("SIM_TRACE").is_some(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub nodes: usize,
    pub backups: usize,
    pub frames: u64,
    pub commits: u64,
    /// `Joined` / `Removed` actions: rejoins after a removal (crash or false suspicion).
    pub joined: u64,
    pub removed: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub attacks: u64,
    pub attacks_rejected: u64,
    pub checks: u64,
    /// Time from healing until a contact acted (checked against the bound).
    pub heal_to_contact: Option<Duration>,
    /// Failover profile: crash of the acting contact → a new contact acting.
    pub failover: Option<Duration>,
    /// BackupSplit profile: views (epochs) committed while the backups were cut.
    pub split_commits: u64,
    /// Total time two nodes acted at once (in different epochs: a deposed contact that
    /// had not yet heard of the newer epoch).
    pub overlap: Duration,
    pub virtual_ms: u64,
}

pub struct Outcome {
    pub stats: Stats,
    pub violations: Vec<String>,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: NodeId,
        frame: Vec<u8>,
        /// For an attacker's frame: the incarnation of `to` it was aimed at. Replay
        /// windows are not persisted, so a replay that reaches a restarted node is
        /// accepted (see the README); it is only a violation within one incarnation.
        attack: Option<u32>,
    },
    Crash(NodeId),
    CrashContact,
    Restart(NodeId),
    Partition {
        id: u32,
        side: Vec<(NodeId, u8)>,
    },
    /// Frames between these two nodes are lost (both ways) until `Heal`.
    Cut(NodeId, NodeId),
    PartitionEnd(u32),
    Attack,
    Command(Command),
    Heal,
    CheckHealed,
    End,
}

struct SimNode {
    cfg: Config,
    node: Option<Node>,
    durable: Option<Durable>,
    /// Acting as contact, as told by the node's actions.
    acting: bool,
    /// Newest committed epoch any frame the node accepted told it of (reset on restart:
    /// a restarted node knows only what it persisted).
    learned: u64,
    incarnation: u32,
    /// Frames the node accepted in this incarnation, for the attacker to replay.
    accepted: VecDeque<Vec<u8>>,
}

struct Sim {
    p: Params,
    rng: Rng,
    base: Instant,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    events: Vec<Option<Ev>>,
    seq: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    key: SharedKey,
    mkey: SharedKey,
    // Network.
    loss: f64,
    dup: f64,
    dmax_ms: u64,
    partition: Option<(u32, BTreeMap<NodeId, u8>)>,
    cut: Option<(NodeId, NodeId)>,
    split_views_before: u64,
    healed: bool,
    // Home agent: (epoch, seq, node) of the DSA binding.
    ha: Option<(u64, u16, NodeId)>,
    // Checker.
    epoch_actor: BTreeMap<u64, NodeId>,
    views: BTreeMap<u64, View>,
    crash_at: Option<Duration>,
    check_healed_from: Option<Duration>,
    heal_time: Option<Duration>,
    failover_reported: bool,
    stats: Stats,
    violations: Vec<String>,
    trace: Vec<String>,
}

const WALL_CLOCK_START_MICROS: u64 = 1_780_000_000_000_000;

pub fn run_seed(p: Params) -> Outcome {
    let seed = p.seed;
    match std::panic::catch_unwind(|| Sim::new(p).run()) {
        Ok(o) => o,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome {
                stats: Stats::default(),
                violations: vec![format!("seed {seed}: panic: {msg}")],
            }
        }
    }
}

impl Sim {
    fn new(p: Params) -> Sim {
        let mut rng = Rng::new(p.seed);
        let (total, backups) = if p.profile == Profile::BackupSplit {
            (3 + rng.below(3) as usize, 3)
        } else {
            let total = 3 + rng.below(5) as usize;
            (total, (3 + rng.below(total as u64 - 2) as usize).min(total))
        };
        // Node ids are not dense and not in genesis order, so nothing depends on that.
        let mut ids: Vec<NodeId> = Vec::new();
        while ids.len() < total {
            let id = 1 + rng.below(60) as NodeId;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let genesis: Vec<NodeId> = ids[..backups].to_vec();
        let key = SharedKey::from_bytes(&[0x42; 32]).expect("32 bytes");
        let mkey = key.derive("membership");
        let mut nodes = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let cfg = Config {
                id: *id,
                role: if i < backups {
                    Role::Backup
                } else {
                    Role::Snode
                },
                genesis: genesis.clone(),
                heartbeat: HEARTBEAT,
                failure_timeout: FAILURE_TIMEOUT,
                register_interval: HEARTBEAT * 10,
            };
            nodes.insert(
                *id,
                SimNode {
                    cfg,
                    node: None,
                    durable: None,
                    acting: false,
                    learned: 0,
                    incarnation: 0,
                    accepted: VecDeque::new(),
                },
            );
        }
        let (loss, dup, dmax_ms) = match p.profile {
            Profile::Failover | Profile::BackupSplit => (0.0, 0.0, 1 + rng.below(5)),
            _ => (
                [0.0, 0.01, 0.05, 0.2][rng.below(4) as usize],
                [0.0, 0.0, 0.02][rng.below(3) as usize],
                1 + rng.below(30),
            ),
        };
        let stats = Stats {
            nodes: total,
            backups,
            ..Stats::default()
        };
        Sim {
            p,
            rng,
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            seq: 0,
            nodes,
            key,
            mkey,
            loss,
            dup,
            dmax_ms,
            partition: None,
            cut: None,
            split_views_before: 0,
            healed: false,
            ha: None,
            epoch_actor: BTreeMap::new(),
            views: BTreeMap::new(),
            crash_at: None,
            check_healed_from: None,
            heal_time: None,
            failover_reported: false,
            stats,
            violations: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn at(&mut self, t: Duration, ev: Ev) {
        self.seq += 1;
        self.events.push(Some(ev));
        self.queue
            .push(Reverse((t, self.seq, self.events.len() - 1)));
    }

    fn log(&mut self, s: String) {
        if self.p.trace {
            eprintln!("{:>8.3} {s}", self.now.as_secs_f64());
        }
    }

    fn violation(&mut self, s: String) {
        if self.violations.len() < 20 {
            self.log(format!("VIOLATION {s}"));
            self.violations
                .push(format!("t={:.3}s: {s}", self.now.as_secs_f64()));
        }
    }

    fn script(&mut self) {
        let ms = Duration::from_millis;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        match self.p.profile {
            Profile::Failover => {
                let t = ms(1000 + self.rng.below(100));
                self.at(t, Ev::CrashContact);
                self.at(t + ms(2000), Ev::End);
            }
            Profile::BackupSplit => {
                // The genesis view's second and third: neither is the contact.
                let g = self.nodes.values().next().map(|n| n.cfg.genesis.clone());
                let g = g.unwrap_or_default();
                self.at(ms(1000), Ev::Cut(g[1], g[2]));
                let heal = ms(1000) + SPLIT;
                self.at(heal, Ev::Heal);
                self.at(heal + heal_bound(), Ev::CheckHealed);
                self.at(heal + heal_bound() + ms(2000), Ev::End);
            }
            Profile::Quick | Profile::Full => {
                let chaos = if self.p.profile == Profile::Quick {
                    3000
                } else {
                    10_000
                };
                let scale = chaos / 3000;
                for _ in 0..self.rng.below(4) * scale {
                    let id = ids[self.rng.below(ids.len() as u64) as usize];
                    let t = ms(300 + self.rng.below(chaos - 300));
                    self.at(t, Ev::Crash(id));
                    let back = t + ms(50 + self.rng.below(2000));
                    if back < ms(chaos) {
                        self.at(back, Ev::Restart(id));
                    }
                }
                if self.rng.chance(0.6) {
                    for _ in 0..=scale {
                        let t = ms(500 + self.rng.below(chaos - 500));
                        self.at(t, Ev::CrashContact);
                    }
                }
                for pid in 0..(self.rng.below(3) * scale) as u32 {
                    let t = ms(self.rng.below(chaos));
                    let mut side: Vec<(NodeId, u8)> =
                        ids.iter().map(|&i| (i, self.rng.below(2) as u8)).collect();
                    side[0].1 = 0;
                    let last = side.len() - 1;
                    side[last].1 = 1;
                    self.at(t, Ev::Partition { id: pid, side });
                    let end = t + ms(100 + self.rng.below(2000));
                    self.at(end, Ev::PartitionEnd(pid));
                }
                let mut t = ms(0);
                loop {
                    t += ms(50 + self.rng.below(400));
                    if t >= ms(chaos) {
                        break;
                    }
                    self.at(t, Ev::Attack);
                }
                for _ in 0..self.rng.below(3) * scale {
                    let t = ms(self.rng.below(chaos));
                    let cmd = if self.rng.chance(0.5) {
                        Command::RefreshDsa
                    } else {
                        let s = ids[self.rng.below(ids.len() as u64) as usize];
                        Command::HandoffFailed(s)
                    };
                    self.at(t, Ev::Command(cmd));
                }
                let heal = ms(chaos);
                self.at(heal, Ev::Heal);
                self.at(heal + heal_bound(), Ev::CheckHealed);
                let end = heal + heal_bound() + HEARTBEAT * 10 + FAILURE_TIMEOUT * 2;
                self.at(end, Ev::End);
            }
        }
    }

    fn run(mut self) -> Outcome {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.start(id);
        }
        self.script();
        loop {
            let next_ev = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| {
                    n.node
                        .as_ref()
                        .and_then(|n| n.poll_timeout())
                        .map(|t| (t.saturating_duration_since(self.base), *id))
                })
                .min();
            let timer_first = match (next_ev, next_timer) {
                (Some(e), Some((t, _))) => t < e,
                (None, Some(_)) => true,
                _ => false,
            };
            if timer_first {
                let (t, id) = next_timer.expect("checked");
                self.advance(t);
                let now = self.base + self.now;
                if let Some(n) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) {
                    n.handle_timeout(now);
                }
                self.drain(id);
            } else {
                let Some(Reverse((t, _, i))) = self.queue.pop() else {
                    break;
                };
                self.advance(t);
                let Some(ev) = self.events[i].take() else {
                    continue;
                };
                if matches!(ev, Ev::End) {
                    if self.heal_time.is_some() {
                        self.check_snodes();
                    }
                    break;
                }
                self.event(ev);
            }
            self.check();
        }
        self.stats.virtual_ms = self.now.as_millis() as u64;
        if self.p.trace {
            for l in &self.trace {
                eprintln!("{l}");
            }
        }
        Outcome {
            stats: self.stats,
            violations: self.violations,
        }
    }

    fn advance(&mut self, t: Duration) {
        if t > self.now {
            let acting = self.nodes.values().filter(|n| n.acting).count();
            if acting >= 2 {
                self.stats.overlap += t - self.now;
            }
            self.now = t;
        }
    }

    fn start(&mut self, id: NodeId) {
        let now = self.base + self.now;
        let wall = WALL_CLOCK_START_MICROS + self.now.as_micros() as u64;
        let amnesia = self.p.plant == Plant::Amnesia;
        let n = self.nodes.get_mut(&id).expect("node");
        let durable = if amnesia { None } else { n.durable.clone() };
        n.learned = durable.as_ref().map_or(0, |d| d.committed.epoch);
        n.node = Some(Node::new(n.cfg.clone(), &self.key, durable, now, wall));
        n.incarnation += 1;
        n.accepted.clear();
        n.acting = false;
        self.drain(id);
    }

    fn event(&mut self, ev: Ev) {
        let now = self.base + self.now;
        match ev {
            Ev::Deliver { to, frame, attack } => {
                let Some(n) = self.nodes.get_mut(&to) else {
                    return;
                };
                let incarnation = n.incarnation;
                let Some(node) = n.node.as_mut() else { return };
                let before = node.stats().received;
                node.handle_frame(&frame, now);
                let accepted = node.stats().received > before;
                self.stats.frames += 1;
                if let Some(aimed) = attack {
                    self.stats.attacks += 1;
                    if accepted && aimed == incarnation {
                        self.violation(format!("node {to} accepted an attacker's frame"));
                    } else {
                        self.stats.attacks_rejected += 1;
                    }
                } else if accepted {
                    if let Ok(o) = auth::open(&self.mkey, &frame) {
                        if let Ok(m) = Message::decode(o.payload) {
                            if let Some(e) = m.committed_epoch() {
                                n.learned = n.learned.max(e);
                            }
                            if self.p.trace {
                                let line = format!("{} -> {to}: {m:?}", o.sender);
                                self.log(line);
                            }
                        }
                    }
                    let n = self.nodes.get_mut(&to).expect("node");
                    n.accepted.push_back(frame);
                    if n.accepted.len() > 32 {
                        n.accepted.pop_front();
                    }
                }
                self.drain(to);
            }
            Ev::Crash(id) => self.crash(id),
            Ev::CrashContact => {
                let acting: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.acting)
                    .map(|(i, _)| *i)
                    .collect();
                if self.p.profile == Profile::Failover {
                    if acting.len() != 1 {
                        self.violation(format!(
                            "expected one acting contact before the crash, found {acting:?}"
                        ));
                        return;
                    }
                    self.crash_at = Some(self.now);
                }
                for id in acting {
                    self.crash(id);
                    if self.p.profile != Profile::Failover {
                        let back = self.now + Duration::from_millis(100 + self.rng.below(1500));
                        self.at(back, Ev::Restart(id));
                    }
                }
            }
            Ev::Restart(id) => {
                if !self.healed && self.nodes.get(&id).is_some_and(|n| n.node.is_none()) {
                    self.log(format!("restart {id}"));
                    self.start(id);
                }
            }
            Ev::Partition { id, side } => {
                if !self.healed {
                    self.stats.partitions += 1;
                    self.log(format!("partition {side:?}"));
                    self.partition = Some((id, side.into_iter().collect()));
                }
            }
            Ev::Cut(a, b) => {
                self.log(format!("cut {a} <-> {b}"));
                self.cut = Some((a, b));
                self.split_views_before = self.views.len() as u64;
            }
            Ev::PartitionEnd(id) => {
                if self.partition.as_ref().is_some_and(|(p, _)| *p == id) {
                    self.log("partition healed".into());
                    self.partition = None;
                }
            }
            Ev::Attack => self.attack(),
            Ev::Command(cmd) => {
                let acting: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.acting)
                    .map(|(i, _)| *i)
                    .collect();
                for id in acting {
                    if let Some(n) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) {
                        n.handle_command(cmd, now);
                    }
                    self.drain(id);
                }
            }
            Ev::Heal => {
                self.healed = true;
                self.heal_time = Some(self.now);
                self.partition = None;
                if self.cut.take().is_some() {
                    self.stats.split_commits =
                        (self.views.len() as u64).saturating_sub(self.split_views_before);
                }
                self.loss = 0.0;
                self.dup = 0.0;
                self.log("heal".into());
                let down: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.node.is_none())
                    .map(|(i, _)| *i)
                    .collect();
                for id in down {
                    self.start(id);
                }
            }
            Ev::CheckHealed => {
                self.check_healed_from = Some(self.now);
            }
            Ev::End => {}
        }
    }

    fn crash(&mut self, id: NodeId) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if n.node.take().is_some() {
            n.acting = false;
            self.stats.crashes += 1;
            self.log(format!("crash {id}"));
        }
    }

    fn attack(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let to = ids[self.rng.below(ids.len() as u64) as usize];
        let replay = self
            .nodes
            .get(&to)
            .and_then(|n| {
                n.accepted
                    .get(self.rng.below(n.accepted.len().max(1) as u64) as usize)
            })
            .cloned();
        let frame = match (self.rng.below(4), replay) {
            (0, Some(f)) => f,
            (1, Some(mut f)) => {
                let i = self.rng.below(f.len() as u64) as usize;
                f[i] ^= 1 << self.rng.below(8);
                f
            }
            (2, _) => {
                let other = SharedKey::from_bytes(&[0x66; 32]).expect("32 bytes");
                let sender = ids[self.rng.below(ids.len() as u64) as usize];
                let msg = Message::Commit {
                    view: View::genesis(&[sender]),
                };
                auth::seal(
                    &other.derive("membership"),
                    mip6d::ds::membership::codec::FRAME_KIND,
                    sender,
                    u64::MAX / 2,
                    &msg.encode(),
                )
            }
            _ => {
                let len = self.rng.below(120) as usize;
                (0..len).map(|_| self.rng.next() as u8).collect()
            }
        };
        let t = self.now + Duration::from_millis(self.rng.below(5));
        let aimed = self.nodes.get(&to).map_or(0, |n| n.incarnation);
        self.at(
            t,
            Ev::Deliver {
                to,
                frame,
                attack: Some(aimed),
            },
        );
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        if self
            .cut
            .is_some_and(|(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
        {
            return false;
        }
        match &self.partition {
            None => true,
            Some((_, side)) => side.get(&a) == side.get(&b),
        }
    }

    fn drain(&mut self, id: NodeId) {
        while let Some(a) = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.node.as_mut())
            .and_then(|n| n.poll_action())
        {
            self.apply(id, a);
        }
    }

    fn apply(&mut self, id: NodeId, a: Action) {
        match a {
            Action::Send { to, frame } => {
                let dst = match to {
                    Dest::Node(n) => Some(n),
                    Dest::Dsa => self.ha.map(|(_, _, n)| n),
                };
                let Some(dst) = dst else { return };
                if dst == id || !self.connected(id, dst) || self.rng.chance(self.loss) {
                    return;
                }
                let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let d = Duration::from_micros(500 + self.rng.below(self.dmax_ms * 1000));
                    let t = self.now + d;
                    self.at(
                        t,
                        Ev::Deliver {
                            to: dst,
                            frame: frame.clone(),
                            attack: None,
                        },
                    );
                }
            }
            Action::Persist(d) => {
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.durable = Some(d);
                }
            }
            Action::Committed(v) => {
                self.stats.commits += 1;
                self.log(format!(
                    "{id} commits epoch {} {:?} seq {}",
                    v.epoch,
                    v.nodes().collect::<Vec<_>>(),
                    v.dsa_seq
                ));
                match self.views.get(&v.epoch) {
                    Some(w) if *w != v => {
                        let msg = format!(
                            "two views committed in epoch {}: {w:?} and {v:?} (at {id})",
                            v.epoch
                        );
                        self.violation(msg);
                    }
                    Some(_) => {}
                    None => {
                        self.views.insert(v.epoch, v);
                    }
                }
            }
            Action::BecomeContact { epoch } => {
                self.log(format!("{id} acts as contact in epoch {epoch}"));
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.acting = true;
                }
                if let Some(c) = self.crash_at.take() {
                    self.stats.failover = Some(self.now - c);
                }
            }
            Action::StopContact { epoch, reason } => {
                self.log(format!("{id} stops acting in epoch {epoch}: {reason:?}"));
                if self.p.plant != Plant::NeverStops {
                    if let Some(n) = self.nodes.get_mut(&id) {
                        n.acting = false;
                    }
                }
            }
            Action::RegisterDsa { epoch, seq } => self.register(id, epoch, seq),
            Action::Joined { .. } => self.stats.joined += 1,
            Action::Removed { .. } => self.stats.removed += 1,
            Action::SnodesChanged(_) | Action::Rejected { .. } => {}
        }
    }

    fn register(&mut self, id: NodeId, epoch: u64, seq: u16) {
        self.log(format!("{id} registers the DSA: epoch {epoch} seq {seq}"));
        match self.ha {
            None => self.ha = Some((epoch, seq, id)),
            Some((e, s, n)) => {
                if seq_newer(seq, s) {
                    if epoch < e {
                        self.violation(format!(
                            "node {id} of epoch {epoch} moved the DSA binding back from node {n} of epoch {e} (seq {s} -> {seq})"
                        ));
                    }
                    self.ha = Some((epoch, seq, id));
                } else if epoch > e {
                    self.violation(format!(
                        "the contact of epoch {epoch} (node {id}) registered seq {seq}, not newer than seq {s} of epoch {e}"
                    ));
                }
            }
        }
    }

    fn check(&mut self) {
        self.stats.checks += 1;
        let mut acting: Vec<(NodeId, u64)> = vec![];
        let mut bad: Vec<String> = vec![];
        for (id, n) in &self.nodes {
            let Some(node) = &n.node else { continue };
            if self.p.plant == Plant::None && n.acting != node.acting().is_some() {
                bad.push(format!(
                    "node {id}: actions say acting={}, the node says {:?}",
                    n.acting,
                    node.acting()
                ));
            }
            if !n.acting {
                continue;
            }
            let e = node.committed().epoch;
            acting.push((*id, e));
            if n.learned > e {
                bad.push(format!(
                    "node {id} acts in epoch {e} after learning of epoch {}",
                    n.learned
                ));
            }
        }
        for (id, e) in &acting {
            let first = *self.epoch_actor.entry(*e).or_insert(*id);
            if first != *id {
                bad.push(format!(
                    "two contacts in epoch {e}: node {first} and node {id}"
                ));
            }
        }
        if let Some(h) = self.heal_time {
            let (ok, what) = self.healthy(&acting);
            if ok && self.stats.heal_to_contact.is_none() {
                self.stats.heal_to_contact = Some(self.now - h);
            }
            if !ok && self.check_healed_from.is_some() {
                bad.push(format!(
                    "{:?} after healing (bound {:?}): {what}",
                    self.now - h,
                    heal_bound()
                ));
                self.check_healed_from = None;
            }
        }
        for b in bad {
            self.violation(b);
        }
        if let (Some(f), Profile::Failover) = (self.stats.failover, self.p.profile) {
            let bound = FAILURE_TIMEOUT + Duration::from_millis(5 * (self.dmax_ms + 1));
            if f > bound && !self.failover_reported {
                let msg = format!("failover took {f:?} > {bound:?}");
                self.violation(msg);
                self.failover_reported = true;
            }
        }
    }

    /// Exactly one node acts, and it is the contact named by the newest committed view.
    fn healthy(&self, acting: &[(NodeId, u64)]) -> (bool, String) {
        let newest = self
            .nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .map(|n| n.committed().epoch)
            .max()
            .unwrap_or(0);
        let contact = self
            .views
            .get(&newest)
            .and_then(|v| v.contact())
            .or_else(|| {
                // The genesis view is never announced by a Committed action.
                self.nodes
                    .values()
                    .filter_map(|n| n.node.as_ref())
                    .find(|n| n.committed().epoch == newest)
                    .and_then(|n| n.committed().contact())
            });
        // The contact may still act in the epoch before the newest for one message delay,
        // when another member committed a change that keeps it contact.
        let ok = acting.len() == 1 && Some(acting[0].0) == contact;
        (
            ok,
            format!("acting {acting:?}, newest epoch {newest} with contact {contact:?}"),
        )
    }

    /// At the end of a healed run the acting contact knows every snode.
    fn check_snodes(&mut self) {
        let snodes: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.cfg.role == Role::Snode)
            .map(|(i, _)| *i)
            .collect();
        let known: Option<Vec<NodeId>> = self
            .nodes
            .values()
            .filter(|n| n.acting)
            .filter_map(|n| n.node.as_ref())
            .map(|n| n.snodes().collect())
            .next();
        match known {
            Some(k) if snodes.iter().all(|s| k.contains(s)) => {}
            other => {
                let msg =
                    format!("at the end the contact knows snodes {other:?}, not all of {snodes:?}");
                self.violation(msg);
            }
        }
    }
}
