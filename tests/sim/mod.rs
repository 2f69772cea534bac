//! A deterministic network simulation of mobile node, home agents and correspondent
//! nodes (RFC 6275), for `tests/sim_mip6.rs` and `examples/sim_sweep.rs`.
//!
//! # Model
//! - **Time** is virtual: an event queue ordered by (time, insertion number) plus each
//!   machine's `poll_timeout`; the machines see `base + t`.
//! - **Randomness of the schedule** comes from one seeded generator (splitmix64): the
//!   scenario, link delays, loss, duplication, DAD times, the attacker. The machines'
//!   own randomness (ring's sealed `SystemRandom`: CN nonces and keys, MN cookies) is
//!   not seeded; nothing the simulation decides depends on those bytes (they are only
//!   compared for equality), so a seed replays the same schedule.
//! - **Packets are bytes.** A `Transmit` becomes a whole IPv6 packet (Type 2 Routing
//!   Header, Home Address option, ip6ip6 tunnel as asked); receivers walk it with
//!   `wire::packet::parse` and re-check the Mobility Header with `MhRepr::parse_checked`
//!   as a daemon would, so wire, crypto and proto run together.
//! - **Links**: every node has an access link with a delay range (jitter reorders),
//!   loss and duplication; a packet crosses the sender's and the receiver's link. The
//!   mobile node's link can be partitioned.
//! - **Routing**: an address belongs to one node; the home address belongs to the
//!   mobile node while it is at home and otherwise to the home agent that installed a
//!   route for it (proxy ND), which tunnels to the care-of address. Home agents
//!   decapsulate reverse-tunnelled packets from the registered care-of address.
//! - **IPsec** between mobile node and home agents (RFC 6275 §5.1, RFC 4877) is
//!   modelled as a mark on home Binding Updates and on the home agent's messages to the
//!   mobile node, with anti-replay: forged or replayed ones are dropped by the
//!   "platform" before the machines see them, as the kernel's SPD/SAD would.
//! - **Data traffic**: while route optimisation is on, the mobile node sends packets
//!   with a Home Address option to the correspondent, whose platform reports
//!   `BindingUsed` or `HaoWithoutBinding` (→ Binding Error 1).
//! - **A legacy correspondent** without Mobile IPv6 answers the Mobility Header and the
//!   Home Address option with ICMPv6 Parameter Problems.
//! - **An attacker** forges Binding Updates, Binding Acknowledgements and tests, and
//!   replays packets it saw delivered.
//! - **The story** (`story.rs`, [`Profile::Story`]): one fixed, loss-free scenario told
//!   step by step for `examples/mip6_story.rs`, with a tap recording every packet and
//!   action.
#![allow(dead_code)]

pub mod story;

use mip6d::crypto::rr::MAX_NONCE_LIFETIME;
use mip6d::proto::backoff::{success_bound, MAX_BINDACK_TIMEOUT};
use mip6d::proto::cn::{Cn, CnConfig};
use mip6d::proto::event::{Action, Event, Inbound, MnEvent, MnInbound, Movement, Transmit};
use mip6d::proto::ha::{Ha, HaConfig, HaState, HomePrefix};
use mip6d::proto::mn::{Location, Mn, MnConfig};
use mip6d::proto::seqno::Seqno;
use mip6d::wire::ext_header::{DestOption, DestOptsRepr, Type2RoutingRepr};
use mip6d::wire::icmpv6::Icmpv6Repr;
use mip6d::wire::mh::{BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use mip6d::wire::packet::{self, Header, Ipv6Header, PacketBuilder, Payload, IPV6_HEADER_LEN};
use mip6d::wire::proto;
use ring::rand::SystemRandom;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---- deterministic randomness --------------------------------------------------------

mod rng;
pub use rng::Rng;

// ---- parameters ----------------------------------------------------------------------

/// How much one seed simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// For `cargo test`: about half an hour of virtual time.
    Quick,
    /// For the sweep: a few hours.
    Full,
    /// The narrated story (`story.rs`): one mobile node, home agent and correspondent,
    /// fixed link delays, no loss, no attacker, no script — the story schedules its own
    /// events and records everything through the tap.
    Story,
}

/// A deliberate defect, to show the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    None,
    /// The simulation's record of the last sequence number a home agent accepted is
    /// pushed ahead, so the next acceptance looks like it went backwards.
    SeqRecordAhead,
    /// The simulation's record of when nonces were handed out is shifted into the past,
    /// so acceptances look like they used expired nonces.
    StaleNonceRecord,
    /// A home agent loses its binding cache without the simulation knowing (a reboot
    /// the agreement check is not told about).
    SilentHaAmnesia,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub profile: Profile,
    pub plant: Plant,
    /// Print a trace of events (for replaying one seed).
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

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    pub stats: SimStats,
}

#[derive(Debug, Default, Clone)]
pub struct SimStats {
    pub packets: u64,
    pub delivered: u64,
    pub lost: u64,
    pub ipsec_dropped: u64,
    pub unroutable: u64,
    pub attacks: u64,
    pub home_accepts: u64,
    pub cn_accepts: u64,
    pub movements: u64,
    pub quiet_checks: u64,
    pub heal_checks: u64,
    pub virtual_secs: u64,
}

// ---- addresses -----------------------------------------------------------------------

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const HOA: &str = "2001:db8:1::100";

fn ha_addr(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a("2001:db8:1::a0")) + i as u128)
}

fn cn_addr(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a("2001:db8:3::1")) + i as u128)
}

fn legacy_addr() -> Ipv6Addr {
    a("2001:db8:4::1")
}

/// Care-of address number `n` on foreign link `n` (each is a different prefix).
fn coa_addr(n: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a("2001:db8:f000::100")) + (u128::from(n) << 80))
}

// ---- network -------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum NodeId {
    Mn,
    Ha(usize),
    Cn(usize),
    Legacy,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    min: Duration,
    max: Duration,
    loss: f64,
    dup: f64,
}

/// A packet in flight: the bytes, and the simulation's side notes.
#[derive(Clone, Debug)]
struct Packet {
    bytes: Vec<u8>,
    /// The IPsec model's (security association, sequence number), when protected.
    esp: Option<(u8, u64)>,
    /// Injected by the attacker (forged or replayed).
    injected: bool,
}

#[derive(Clone, Debug)]
enum Ev {
    Arrive {
        to: NodeId,
        pkt: Packet,
    },
    Move(Movement),
    Partition {
        on: bool,
    },
    HaReboot(usize),
    /// A reboot the agreement check is not told about (planted defect).
    HaAmnesia(usize),
    CnReboot(usize),
    StartRo(Ipv6Addr),
    DadDone {
        ha: usize,
        hoa: Ipv6Addr,
    },
    Data,
    Attack,
    /// Drop CoTI/CoT with this correspondent for a while (nonce expiry in the middle of
    /// return routability).
    RrStall {
        cn: usize,
        on: bool,
    },
    /// The next BU to this correspondent takes this long to arrive.
    SlowBu {
        cn: usize,
        extra: Duration,
    },
    /// The network heals for good: no more loss, partitions, movements or attacks.
    FinalHeal,
    /// Check that the registration finished within the back-off bound.
    HealCheck {
        healed_at: Duration,
    },
    End,
}

struct HaNode {
    ha: Ha,
    /// Home address → (tunnel local, tunnel remote), from RouteAdd/RouteDel.
    routes: HashMap<Ipv6Addr, (Ipv6Addr, Ipv6Addr)>,
    booted: Duration,
    /// Last sequence number this HA accepted (BA < 128) per home address since boot.
    last_accept: HashMap<Ipv6Addr, Seqno>,
    /// For a home address whose binding is gone: until when (virtual time) the HA must
    /// still remember its last sequence number (`ha::SEQUENCE_GUARD`).
    guard_until: HashMap<Ipv6Addr, Duration>,
}

struct CnNode {
    cn: Cn,
    addr: Ipv6Addr,
    booted: Duration,
    /// Nonce index → when it was first handed out (from the HoT/CoT sent).
    issued: HashMap<u16, Duration>,
    last_accept: HashMap<Ipv6Addr, Seqno>,
    link: Link,
}

#[derive(Clone, Copy, Debug, Default)]
struct SimIface {
    up: bool,
    home: bool,
    coa: Option<Ipv6Addr>,
    pref: u8,
}

pub struct Sim {
    p: Params,
    rng: Rng,
    base: Instant,
    now: Duration,
    order: u64,
    queue: BTreeMap<(Duration, u64), Ev>,
    mn: Mn,
    mn_ifaces: BTreeMap<u32, SimIface>,
    mn_link: Link,
    partitioned: bool,
    healed: bool,
    has: Vec<HaNode>,
    ha_link: Link,
    cns: Vec<CnNode>,
    legacy: bool,
    legacy_link: Link,
    /// The MN's data path as its actions left it.
    mn_ro: BTreeMap<Ipv6Addr, Ipv6Addr>,
    mn_tunnel: Option<(Ipv6Addr, Ipv6Addr)>,
    /// When the MN's current home registration was accepted, for the agreement check.
    mn_reg_seen: Option<(Seqno, Duration)>,
    esp_next: u64,
    esp_seen: HashSet<(u8, u64)>,
    rr_stall: BTreeSet<usize>,
    slow_bu: HashMap<usize, Duration>,
    /// Packets seen delivered, for the attacker to replay.
    sniffed: VecDeque<(NodeId, Packet)>,
    next_coa: u64,
    report: Report,
    rtt_bound: Duration,
    heal_ok: bool,
    last_move: Duration,
    max_lifetime: Duration,
    /// The event being handled came from the attacker.
    injected_now: bool,
    /// When set (the story), every packet put on a link and every action a machine
    /// took, in order; `None` for the sweeps, which then pay nothing for it.
    tap: Option<Vec<Tapped>>,
}

/// One record of the tap.
#[derive(Clone, Debug)]
enum Tapped {
    /// A packet as it left `from` (`to` is `None` when nothing routes it).
    Packet {
        at: Duration,
        from: NodeId,
        to: Option<NodeId>,
        bytes: Vec<u8>,
    },
    /// A non-send action a machine asked its platform for.
    Action {
        at: Duration,
        who: NodeId,
        action: Action,
    },
}

fn hoa() -> Ipv6Addr {
    a(HOA)
}

impl Sim {
    pub fn new(p: Params) -> Sim {
        let mut rng = Rng::new(p.seed);
        let base = Instant::now();
        let sysrng = Arc::new(SystemRandom::new());
        let n_has = if rng.chance(0.25) { 2 } else { 1 };
        let n_cns = 1 + rng.below(3) as usize;
        let legacy = rng.chance(0.3);
        let loss = match rng.below(4) {
            0 => 0.0,
            1 => 0.05,
            2 => 0.2,
            _ => 0.0,
        };
        let link = |rng: &mut Rng, loss: f64| {
            let min = rng.ms(1, 40);
            Link {
                min,
                max: min + rng.ms(0, 40),
                loss,
                dup: if rng.chance(0.3) { 0.05 } else { 0.0 },
            }
        };
        let mn_link = link(&mut rng, loss);
        let ha_link = link(&mut rng, loss / 2.0);
        let lifetimes = [16, 40, 60, 120, 300, 600, 3600];
        let ha_life = Duration::from_secs(lifetimes[rng.below(lifetimes.len() as u64) as usize]);
        let cn_life = Duration::from_secs([40, 120, 420][rng.below(3) as usize]);
        let initial_sequence = if rng.chance(0.5) {
            65_500 + rng.below(36) as u16
        } else {
            rng.next() as u16
        };
        let config = MnConfig {
            home_address: hoa(),
            home_agents: (0..n_has).map(ha_addr).collect(),
            max_ha_binding_life: ha_life,
            max_cn_binding_life: cn_life,
            use_cn_bu_ack: rng.chance(0.5),
            optimistic_handoff: rng.chance(0.3),
            initial_sequence,
            ..MnConfig::default()
        };
        let mn = Mn::new(config, sysrng.clone());
        let prefix = HomePrefix {
            prefix: a("2001:db8:1::"),
            len: 64,
            valid_until: None,
        };
        let refuse_first = n_has == 2 && rng.chance(0.5);
        let advice = rng.chance(0.3);
        let has = (0..n_has)
            .map(|i| {
                let cfg = HaConfig {
                    home_prefixes: vec![prefix],
                    refresh_advice: advice.then(|| Duration::from_secs(12)),
                    ..HaConfig::default()
                };
                let mut ha = Ha::new(cfg, sysrng.clone(), base).unwrap();
                if i == 0 && refuse_first {
                    // The first candidate refuses (129): the MN must move on (the
                    // next-HA hook).
                    ha.set_policy(Box::new(|_: &Ipv6Addr, _: &Ipv6Addr, _: BuFlags| false));
                }
                HaNode {
                    ha,
                    routes: HashMap::new(),
                    booted: Duration::ZERO,
                    last_accept: HashMap::new(),
                    guard_until: HashMap::new(),
                }
            })
            .collect();
        let cns = (0..n_cns)
            .map(|i| CnNode {
                cn: Cn::new(CnConfig::default(), sysrng.clone(), base).unwrap(),
                addr: cn_addr(i),
                booted: Duration::ZERO,
                issued: HashMap::new(),
                last_accept: HashMap::new(),
                link: link(&mut rng, loss / 2.0),
            })
            .collect::<Vec<_>>();
        let legacy_link = link(&mut rng, 0.0);
        let max_cn_link = cns
            .iter()
            .map(|c| c.link.max)
            .chain([legacy_link.max])
            .max()
            .unwrap();
        let _ = max_cn_link;
        // Round trip MN → HA → MN plus the longest DAD the HA platform takes.
        let rtt_bound = 2 * (mn_link.max + ha_link.max)
            + Duration::from_millis(1000)
            + Duration::from_millis(1);
        let mut sim = Sim {
            p,
            rng,
            base,
            now: Duration::ZERO,
            order: 0,
            queue: BTreeMap::new(),
            mn,
            mn_ifaces: BTreeMap::new(),
            mn_link,
            partitioned: false,
            healed: false,
            has,
            ha_link,
            cns,
            legacy,
            legacy_link,
            mn_ro: BTreeMap::new(),
            mn_tunnel: None,
            mn_reg_seen: None,
            esp_next: 1,
            esp_seen: HashSet::new(),
            rr_stall: BTreeSet::new(),
            slow_bu: HashMap::new(),
            sniffed: VecDeque::new(),
            next_coa: 1,
            report: Report::default(),
            rtt_bound,
            heal_ok: n_has == 1 || !refuse_first,
            last_move: Duration::ZERO,
            injected_now: false,
            max_lifetime: ha_life,
            tap: None,
        };
        if sim.p.profile == Profile::Story {
            // After the draws above, so the other profiles' schedules stay as they were.
            story::setup(&mut sim);
        }
        sim.script();
        sim
    }

    fn at(&mut self, t: Duration, ev: Ev) {
        self.order += 1;
        self.queue.insert((t, self.order), ev);
    }

    fn violation(&mut self, what: String) {
        if self.p.trace {
            eprintln!("[{:?}] VIOLATION {what}", self.now);
        }
        if self.report.violations.len() < 20 {
            self.report
                .violations
                .push(format!("t={:.3}s: {what}", self.now.as_secs_f64()));
        }
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.p.trace {
            eprintln!("[{:>10.3}] {}", self.now.as_secs_f64(), what());
        }
    }

    /// The scenario: movements, RO triggers, reboots, partitions, stalls, attacks.
    fn script(&mut self) {
        let secs = |s: u64| Duration::from_secs(s);
        let total = match self.p.profile {
            Profile::Quick => secs(900 + self.rng.below(900)),
            Profile::Full => secs(3600 + self.rng.below(7200)),
            // The story schedules its own events, chapter by chapter.
            Profile::Story => return,
        };
        // Start on a foreign link (or, sometimes, at home).
        let first = if self.rng.chance(0.15) {
            Movement::AtHome {
                iface: 1,
                preference: 5,
            }
        } else {
            self.new_coa_move(1, 5)
        };
        self.at(Duration::ZERO, Ev::Move(first));
        for i in 0..self.cns.len() {
            let t = self.rng.ms(0, 60_000);
            self.at(t, Ev::StartRo(cn_addr(i)));
        }
        if self.legacy {
            let t = self.rng.ms(0, 60_000);
            self.at(t, Ev::StartRo(legacy_addr()));
        }
        // Movements.
        let mean = [60_000u64, 180_000, 600_000][self.rng.below(3) as usize];
        let mut t = Duration::ZERO;
        loop {
            t += self.rng.ms(mean / 4, mean * 2);
            if t >= total {
                break;
            }
            let m = match self.rng.below(10) {
                0..=4 => self.new_coa_move(1, 5),
                5 => Movement::AtHome {
                    iface: 1,
                    preference: 5,
                },
                6 => Movement::LinkDown { iface: 1 },
                7 => Movement::LinkUp { iface: 1 },
                8 => self.new_coa_move(2, 7),
                _ => {
                    // A quick double move: a BU in flight when the next one leaves.
                    let m = self.new_coa_move(1, 5);
                    let quick = t + self.rng.ms(1, 300);
                    let again = if self.rng.chance(0.5) {
                        Movement::AtHome {
                            iface: 1,
                            preference: 5,
                        }
                    } else {
                        self.new_coa_move(1, 5)
                    };
                    self.at(quick, Ev::Move(again));
                    m
                }
            };
            self.at(t, Ev::Move(m));
        }
        if self.rng.chance(0.3) {
            let t = self.rng.ms(60_000, total.as_millis() as u64);
            let i = self.rng.below(self.has.len() as u64) as usize;
            self.at(t, Ev::HaReboot(i));
        }
        if self.rng.chance(0.2) {
            let t = self.rng.ms(60_000, total.as_millis() as u64);
            let i = self.rng.below(self.cns.len() as u64) as usize;
            self.at(t, Ev::CnReboot(i));
        }
        if self.rng.chance(0.4) {
            let t = self.rng.ms(30_000, total.as_millis() as u64);
            let len = self.rng.ms(5_000, 300_000);
            self.at(t, Ev::Partition { on: true });
            self.at(t + len, Ev::Partition { on: false });
        }
        if self.rng.chance(0.3) {
            let t = self.rng.ms(30_000, total.as_millis() as u64);
            let cn = self.rng.below(self.cns.len() as u64) as usize;
            let len = self.rng.ms(200_000, 300_000);
            self.at(t, Ev::RrStall { cn, on: true });
            self.at(t + len, Ev::RrStall { cn, on: false });
        }
        if self.rng.chance(0.3) {
            let t = self.rng.ms(30_000, total.as_millis() as u64);
            let cn = self.rng.below(self.cns.len() as u64) as usize;
            let extra = self.rng.ms(230_000, 260_000);
            self.at(t, Ev::SlowBu { cn, extra });
        }
        if self.rng.chance(0.6) {
            let mut t = Duration::ZERO;
            let gap = self.rng.ms(2_000, 60_000);
            loop {
                t += self
                    .rng
                    .ms(gap.as_millis() as u64 / 2, gap.as_millis() as u64 * 2);
                if t >= total {
                    break;
                }
                self.at(t, Ev::Attack);
            }
        }
        let mut t = Duration::ZERO;
        loop {
            t += self.rng.ms(500, 10_000);
            if t >= total {
                break;
            }
            self.at(t, Ev::Data);
        }
        if self.p.plant == Plant::SilentHaAmnesia {
            let t = total / 2;
            self.at(t, Ev::HaAmnesia(0));
        }
        self.at(total, Ev::FinalHeal);
        // Long enough for a refresh of every binding and the back-off to catch up.
        let tail = self.max_lifetime.min(secs(600)) + secs(200);
        self.at(total + tail, Ev::End);
    }

    fn new_coa_move(&mut self, iface: u32, preference: u8) -> Movement {
        let coa = coa_addr(self.next_coa);
        self.next_coa += 1;
        Movement::CoaUp {
            iface,
            coa,
            preference,
        }
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    // ---- the loop --------------------------------------------------------------------

    pub fn run(mut self) -> Report {
        self.advance(None);
        self.report.stats.virtual_secs = self.now.as_secs();
        std::mem::take(&mut self.report)
    }

    /// Handles events and timers in time order until `Ev::End` (or nothing is left), or,
    /// with `until`, only those due by then — the story runs one chapter at a time and
    /// looks at the machines in between. Returns with `now` at `until`.
    fn advance(&mut self, until: Option<Duration>) {
        let mut steps: u64 = 0;
        loop {
            steps += 1;
            if steps > 5_000_000 {
                self.violation("more than 5M steps: livelock".into());
                break;
            }
            let q = self.queue.keys().next().copied();
            let timers = self.next_timer();
            if let Some(until) = until {
                let next = [q.map(|(t, _)| t), timers.map(|(t, _)| t)]
                    .into_iter()
                    .flatten()
                    .min();
                if next.map_or(true, |t| t > until) {
                    self.now = self.now.max(until);
                    break;
                }
            }
            match (q, timers) {
                (None, None) => break,
                (q, Some((t, who))) if q.map_or(true, |(qt, _)| t <= qt) => {
                    if t < self.now {
                        self.violation(format!("{who:?} timer in the past"));
                        break;
                    }
                    self.now = t;
                    self.fire_timer(who);
                    if self.timer_of(who).is_some_and(|n| n <= t) {
                        self.violation(format!("{who:?} timer did not advance past {t:?}"));
                        break;
                    }
                }
                (Some(key), _) => {
                    let ev = self.queue.remove(&key).unwrap();
                    self.now = key.0;
                    if matches!(ev, Ev::End) {
                        self.end_checks();
                        break;
                    }
                    self.event(ev);
                }
                (None, Some(_)) => unreachable!(),
            }
            self.step_checks();
        }
    }

    fn timer_of(&self, who: NodeId) -> Option<Duration> {
        let t = match who {
            NodeId::Mn => self.mn.poll_timeout(),
            NodeId::Ha(i) => self.has[i].ha.poll_timeout(),
            NodeId::Cn(i) => self.cns[i].cn.poll_timeout(),
            NodeId::Legacy => None,
        }?;
        Some(t.saturating_duration_since(self.base))
    }

    fn next_timer(&self) -> Option<(Duration, NodeId)> {
        let mut ids = vec![NodeId::Mn];
        ids.extend((0..self.has.len()).map(NodeId::Ha));
        ids.extend((0..self.cns.len()).map(NodeId::Cn));
        ids.into_iter()
            .filter_map(|id| self.timer_of(id).map(|t| (t, id)))
            .min()
    }

    fn fire_timer(&mut self, who: NodeId) {
        let now = self.instant();
        match who {
            NodeId::Mn => {
                self.mn.handle_timeout(now);
                self.mn_actions(false);
            }
            NodeId::Ha(i) => {
                self.has[i].ha.handle_timeout(now);
                self.ha_actions(i);
            }
            NodeId::Cn(i) => {
                self.cns[i].cn.handle_timeout(now);
                self.cn_actions(i, None);
            }
            NodeId::Legacy => {}
        }
    }

    fn event(&mut self, ev: Ev) {
        let now = self.instant();
        match ev {
            Ev::Arrive { to, pkt } => self.arrive(to, pkt),
            Ev::Move(m) => {
                if self.healed {
                    return;
                }
                self.report.stats.movements += 1;
                self.last_move = self.now;
                self.trace(|| format!("move {m:?}"));
                self.apply_move(m);
                self.mn.handle(MnEvent::Movement(m), now);
                self.mn_actions(false);
            }
            Ev::Partition { on } => {
                if self.healed {
                    return;
                }
                self.trace(|| format!("partition {on}"));
                self.partitioned = on;
                if !on {
                    self.schedule_heal_check();
                }
            }
            Ev::HaReboot(i) => {
                if self.healed {
                    return;
                }
                self.trace(|| format!("HA{i} reboots"));
                self.reboot_ha(i);
            }
            Ev::HaAmnesia(i) => {
                let booted = self.has[i].booted;
                self.reboot_ha(i);
                self.has[i].booted = booted;
            }
            Ev::CnReboot(i) => {
                if self.healed {
                    return;
                }
                self.trace(|| format!("CN{i} reboots"));
                let c = &mut self.cns[i];
                c.cn = Cn::new(CnConfig::default(), Arc::new(SystemRandom::new()), now).unwrap();
                c.booted = self.now;
                c.issued.clear();
                c.last_accept.clear();
            }
            Ev::StartRo(cn) => {
                self.mn.handle(MnEvent::StartRo { cn }, now);
                self.mn_actions(false);
            }
            Ev::DadDone { ha, hoa } => {
                // The mobile node defends its home address while it is at home, so DAD
                // for it fails then (RFC 6275 §10.3.1, RFC 4862).
                let ok = !(self.mn_at_home() && self.mn_owns(&hoa));
                self.has[ha].ha.handle(Event::DadResult { hoa, ok }, now);
                self.ha_actions(ha);
            }
            Ev::Data => self.data(),
            Ev::Attack => {
                if !self.healed {
                    self.attack();
                }
            }
            Ev::RrStall { cn, on } => {
                if on && !self.healed {
                    self.rr_stall.insert(cn);
                } else {
                    self.rr_stall.remove(&cn);
                }
            }
            Ev::SlowBu { cn, extra } => {
                if !self.healed {
                    self.slow_bu.insert(cn, extra);
                }
            }
            Ev::FinalHeal => {
                self.trace(|| "final heal".into());
                self.healed = true;
                self.partitioned = false;
                self.rr_stall.clear();
                self.slow_bu.clear();
                self.mn_link.loss = 0.0;
                self.ha_link.loss = 0.0;
                for c in &mut self.cns {
                    c.link.loss = 0.0;
                }
                // Make sure the MN ends somewhere it can register from.
                if self.mn.location() == Location::Detached {
                    let m = self.new_coa_move(1, 5);
                    self.apply_move(m);
                    self.mn.handle(MnEvent::Movement(m), now);
                    self.mn_actions(false);
                }
                self.schedule_heal_check();
            }
            Ev::HealCheck { healed_at } => self.heal_check(healed_at),
            Ev::End => {}
        }
    }

    fn reboot_ha(&mut self, i: usize) {
        let now = self.instant();
        let cfg = HaConfig {
            home_prefixes: vec![HomePrefix {
                prefix: a("2001:db8:1::"),
                len: 64,
                valid_until: None,
            }],
            ..HaConfig::default()
        };
        let node = &mut self.has[i];
        node.ha = Ha::new(cfg, Arc::new(SystemRandom::new()), now).unwrap();
        node.routes.clear();
        node.booted = self.now;
        node.last_accept.clear();
        node.guard_until.clear();
    }

    fn apply_move(&mut self, m: Movement) {
        match m {
            Movement::CoaUp {
                iface,
                coa,
                preference,
            } => {
                self.mn_ifaces.insert(
                    iface,
                    SimIface {
                        up: true,
                        home: false,
                        coa: Some(coa),
                        pref: preference,
                    },
                );
            }
            Movement::AtHome { iface, preference } => {
                self.mn_ifaces.insert(
                    iface,
                    SimIface {
                        up: true,
                        home: true,
                        coa: None,
                        pref: preference,
                    },
                );
            }
            Movement::CoaDown { iface } => {
                if let Some(i) = self.mn_ifaces.get_mut(&iface) {
                    i.coa = None;
                }
            }
            Movement::LinkDown { iface } => {
                if let Some(i) = self.mn_ifaces.get_mut(&iface) {
                    i.up = false;
                }
            }
            Movement::LinkUp { iface } => {
                if let Some(i) = self.mn_ifaces.get_mut(&iface) {
                    i.up = true;
                }
            }
        }
    }

    /// Whether the MN currently owns `addr` on an up interface.
    fn mn_owns(&self, addr: &Ipv6Addr) -> bool {
        self.mn_ifaces
            .values()
            .any(|i| i.up && (i.coa.as_ref() == Some(addr) || (i.home && *addr == hoa())))
    }

    fn mn_at_home(&self) -> bool {
        self.mn.location() == Location::Home
    }

    fn schedule_heal_check(&mut self) {
        // Only for loss-free runs with a well-defined single schedule (§11.8 bound).
        if !self.heal_ok || self.mn_link.loss > 0.0 && !self.healed {
            return;
        }
        let healed_at = self.now;
        let deadline = match self.mn.home_pending() {
            Some(p) if !p.lifetime.is_zero() => {
                let first = p.first_sent.saturating_duration_since(self.base);
                let after = healed_at.saturating_sub(first);
                first
                    + success_bound(
                        p.initial_timeout,
                        MAX_BINDACK_TIMEOUT,
                        after,
                        self.rtt_bound,
                    )
            }
            _ => healed_at + self.rtt_bound + Duration::from_secs(2),
        };
        self.at(deadline, Ev::HealCheck { healed_at });
    }

    fn heal_check(&mut self, healed_at: Duration) {
        if self.partitioned || self.last_move > healed_at {
            return;
        }
        let Location::Away(coa) = self.mn.location() else {
            return;
        };
        if self.mn.home_failed() {
            return;
        }
        // A BU first sent after the heal (a refresh, a movement) is not this check's
        // business.
        if let Some(p) = self.mn.home_pending() {
            if p.first_sent.saturating_duration_since(self.base) > healed_at {
                return;
            }
        }
        self.report.stats.heal_checks += 1;
        let ok = self.mn.home_binding().is_some_and(|r| r.coa == coa);
        if !ok {
            let pending = self.mn.home_pending();
            self.violation(format!(
                "not registered at {coa} within the back-off bound after the heal at {healed_at:?} (pending {pending:?})"
            ));
        }
    }

    // ---- packets ---------------------------------------------------------------------

    fn link_of(&self, n: NodeId) -> Link {
        match n {
            NodeId::Mn => self.mn_link,
            NodeId::Ha(_) => self.ha_link,
            NodeId::Cn(i) => self.cns[i].link,
            NodeId::Legacy => self.legacy_link,
        }
    }

    /// Which node an address leads to (before tunnelling).
    fn route(&self, dst: &Ipv6Addr) -> Option<NodeId> {
        if *dst == hoa() {
            if self.mn_at_home() && self.mn_owns(dst) {
                return Some(NodeId::Mn);
            }
            // Proxy ND: the HA that routes the home address takes the packet.
            return (0..self.has.len())
                .find(|i| self.has[*i].routes.contains_key(dst))
                .map(NodeId::Ha);
        }
        if let Some(i) = (0..self.has.len()).find(|i| ha_addr(*i) == *dst) {
            return Some(NodeId::Ha(i));
        }
        if let Some(i) = (0..self.cns.len()).find(|i| cn_addr(*i) == *dst) {
            return Some(NodeId::Cn(i));
        }
        if *dst == legacy_addr() && self.legacy {
            return Some(NodeId::Legacy);
        }
        if self.mn_owns(dst) {
            return Some(NodeId::Mn);
        }
        None
    }

    /// Puts a packet on the wire from `from`.
    fn send(&mut self, from: NodeId, pkt: Packet) {
        self.report.stats.packets += 1;
        let Ok(ip) = Ipv6Header::parse(&pkt.bytes) else {
            self.violation("unparsable packet sent".into());
            return;
        };
        let to = self.route(&ip.dst);
        if let Some(tap) = &mut self.tap {
            tap.push(Tapped::Packet {
                at: self.now,
                from,
                to,
                bytes: pkt.bytes.clone(),
            });
        }
        let Some(to) = to else {
            self.report.stats.unroutable += 1;
            return;
        };
        let (l1, l2) = (self.link_of(from), self.link_of(to));
        let mn_involved = from == NodeId::Mn || to == NodeId::Mn;
        if self.partitioned && mn_involved {
            self.report.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(l1.dup.max(l2.dup)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(l1.loss) || self.rng.chance(l2.loss) {
                self.report.stats.lost += 1;
                continue;
            }
            let mut d = self.delay(l1) + self.delay(l2);
            if let NodeId::Cn(i) = to {
                if let Some(extra) = self.slow_bu_for(i, &pkt) {
                    d += extra;
                }
            }
            let t = self.now + d;
            self.at(
                t,
                Ev::Arrive {
                    to,
                    pkt: pkt.clone(),
                },
            );
        }
    }

    fn slow_bu_for(&mut self, i: usize, pkt: &Packet) -> Option<Duration> {
        let extra = *self.slow_bu.get(&i)?;
        let is_bu = mh_of(&pkt.bytes)
            .is_some_and(|(r, ..)| matches!(r.message, Message::BindingUpdate { .. }));
        if is_bu && !pkt.injected {
            self.slow_bu.remove(&i);
            Some(extra)
        } else {
            None
        }
    }

    fn delay(&mut self, l: Link) -> Duration {
        let span = (l.max - l.min).as_micros() as u64;
        l.min + Duration::from_micros(self.rng.below(span + 1))
    }

    fn sniff(&mut self, to: NodeId, pkt: &Packet) {
        if pkt.injected {
            return;
        }
        if self.sniffed.len() >= 256 {
            self.sniffed.pop_front();
        }
        self.sniffed.push_back((to, pkt.clone()));
    }

    fn arrive(&mut self, to: NodeId, pkt: Packet) {
        let parsed = match packet::parse(&pkt.bytes) {
            Ok(p) if p.error.is_none() => p,
            _ => {
                self.violation(format!("{to:?} got a packet that does not parse"));
                return;
            }
        };
        // The destination may have moved away since the packet left.
        if to == NodeId::Mn && !self.mn_owns(&parsed.ip.dst) {
            self.report.stats.unroutable += 1;
            return;
        }
        self.report.stats.delivered += 1;
        self.sniff(to, &pkt);
        match to {
            NodeId::Mn => self.mn_receive(pkt, parsed),
            NodeId::Ha(i) => self.ha_receive(i, pkt, parsed),
            NodeId::Cn(i) => self.cn_receive(i, pkt, parsed),
            NodeId::Legacy => self.legacy_receive(pkt, parsed),
        }
    }

    /// The IPsec model: protected messages need a fresh mark (RFC 4303 anti-replay).
    fn esp_ok(&mut self, pkt: &Packet) -> bool {
        let Some(mark) = pkt.esp else {
            return false;
        };
        self.esp_seen.insert(mark)
    }

    fn esp_mark(&mut self, sa: u8) -> Option<(u8, u64)> {
        self.esp_next += 1;
        Some((sa, self.esp_next))
    }

    fn mn_receive(&mut self, pkt: Packet, parsed: packet::Packet) {
        let now = self.instant();
        // Tunnelled from a home agent: decapsulate.
        let tunnel_src = match parsed.headers.last() {
            Some(Header::Tunnel(_)) => {
                if !(0..self.has.len()).any(|i| ha_addr(i) == parsed.ip.src) {
                    return;
                }
                Some(parsed.ip.src)
            }
            _ => None,
        };
        let (bytes, parsed) = match tunnel_src {
            Some(_) => {
                let inner = pkt.bytes[IPV6_HEADER_LEN..].to_vec();
                match packet::parse(&inner) {
                    Ok(p) if p.error.is_none() => (inner, p),
                    _ => {
                        self.violation("undecodable tunnelled packet at the MN".into());
                        return;
                    }
                }
            }
            None => (pkt.bytes.clone(), parsed),
        };
        let rh2 = parsed.headers.iter().find_map(|h| match h {
            Header::Type2Routing(r) => Some(r.home_address),
            _ => None,
        });
        if rh2.is_some_and(|h| h != hoa()) {
            return;
        }
        if let Some(Header::Icmpv6 {
            repr:
                Icmpv6Repr::ParameterProblem {
                    code,
                    pointer,
                    invoking,
                },
            ..
        }) = parsed.headers.last()
        {
            self.mn.handle(
                MnEvent::ParameterProblem {
                    from: parsed.ip.src,
                    code: *code,
                    pointer: *pointer,
                    invoking,
                },
                now,
            );
            self.mn_actions(pkt.injected);
            return;
        }
        let Some((repr, raw)) = mh_of(&bytes) else {
            return;
        };
        let src = parsed.final_src();
        let dst = parsed.final_dst();
        if MhRepr::parse_checked(&raw, &src, &dst).is_err() {
            self.violation("MH checksum failed at the MN".into());
            return;
        }
        // Messages from a home agent are IPsec-protected (RFC 6275 §5.1).
        let from_ha = (0..self.has.len()).any(|i| ha_addr(i) == src);
        if from_ha && tunnel_src.is_none() && !self.esp_ok(&pkt) {
            self.report.stats.ipsec_dropped += 1;
            return;
        }
        let hao = parsed.headers.iter().find_map(|h| match h {
            Header::DestinationOptions(d) => d.home_address(),
            _ => None,
        });
        let inbound = MnInbound {
            packet: Inbound {
                src: parsed.ip.src,
                dst: parsed.ip.dst,
                hao,
                repr: &repr,
                raw: &raw,
            },
            rh2,
            tunnel_src,
        };
        let before = self.mn.stats().clone();
        self.mn.handle(MnEvent::Mh(inbound), now);
        let after = self.mn.stats().clone();
        if pkt.injected
            && (after.home_ba_accepted != before.home_ba_accepted
                || after.cn_ba_accepted != before.cn_ba_accepted)
        {
            self.violation(format!("MN accepted an injected {}", repr.message));
        }
        self.mn_actions(pkt.injected);
    }

    fn ha_receive(&mut self, i: usize, pkt: Packet, parsed: packet::Packet) {
        let now = self.instant();
        let me = ha_addr(i);
        if let Some(Header::Tunnel(_)) = parsed.headers.last() {
            // Reverse tunnel: only from the registered care-of address of the inner
            // source (RFC 6275 §10.4.5).
            let inner = pkt.bytes[IPV6_HEADER_LEN..].to_vec();
            let Ok(ip) = Ipv6Header::parse(&inner) else {
                return;
            };
            let ok = self.has[i]
                .routes
                .get(&ip.src)
                .is_some_and(|(_, remote)| *remote == parsed.ip.src);
            if ok {
                self.send(
                    NodeId::Ha(i),
                    Packet {
                        bytes: inner,
                        esp: None,
                        injected: pkt.injected,
                    },
                );
            }
            return;
        }
        if parsed.ip.dst != me {
            // Intercepted for a home address: tunnel it to the care-of address.
            let Some((local, remote)) = self.has[i].routes.get(&parsed.ip.dst).copied() else {
                return;
            };
            let bytes = encapsulate(local, remote, &pkt.bytes);
            self.send(
                NodeId::Ha(i),
                Packet {
                    bytes,
                    esp: None,
                    injected: pkt.injected,
                },
            );
            return;
        }
        let Some((repr, raw)) = mh_of(&pkt.bytes) else {
            return;
        };
        let (src, dst) = (parsed.final_src(), parsed.final_dst());
        if MhRepr::parse_checked(&raw, &src, &dst).is_err() {
            self.violation("MH checksum failed at the HA".into());
            return;
        }
        let hao = (src != parsed.ip.src).then_some(src);
        let home_bu = matches!(repr.message, Message::BindingUpdate { flags, .. } if flags.h);
        if home_bu && !self.esp_ok(&pkt) {
            self.report.stats.ipsec_dropped += 1;
            return;
        }
        self.has[i].ha.handle(
            Event::Mh(Inbound {
                src: parsed.ip.src,
                dst: parsed.ip.dst,
                hao,
                repr: &repr,
                raw: &raw,
            }),
            now,
        );
        self.injected_now = pkt.injected;
        self.ha_actions(i);
        self.injected_now = false;
    }

    fn cn_receive(&mut self, i: usize, pkt: Packet, parsed: packet::Packet) {
        let now = self.instant();
        let local = self.cns[i].addr;
        let hao = parsed.headers.iter().find_map(|h| match h {
            Header::DestinationOptions(d) => d.home_address(),
            _ => None,
        });
        if let Some(Header::Upper { protocol, .. }) = parsed.headers.last() {
            if *protocol == proto::UDP {
                // Data. The CN's platform: RO state for (local, HoA) with this CoA?
                if let Some(h) = hao {
                    let bound = self.cns[i]
                        .cn
                        .binding(&local, &h)
                        .is_some_and(|b| b.coa == parsed.ip.src);
                    let ev = if bound {
                        Event::BindingUsed { local, hoa: h }
                    } else {
                        Event::HaoWithoutBinding {
                            local,
                            src_coa: parsed.ip.src,
                            hoa: h,
                        }
                    };
                    self.cns[i].cn.handle(ev, now);
                    self.cn_actions(i, None);
                }
                return;
            }
        }
        let Some((repr, raw)) = mh_of(&pkt.bytes) else {
            return;
        };
        let (src, dst) = (parsed.final_src(), parsed.final_dst());
        if MhRepr::parse_checked(&raw, &src, &dst).is_err() {
            self.violation("MH checksum failed at a CN".into());
            return;
        }
        let is_rr = matches!(
            repr.message,
            Message::CareOfTestInit { .. } | Message::CareOfTest { .. }
        );
        if is_rr && self.rr_stall.contains(&i) && !pkt.injected {
            return;
        }
        let before = self.cns[i].cn.stats().bu_accepted;
        self.cns[i].cn.handle(
            Event::Mh(Inbound {
                src: parsed.ip.src,
                dst: parsed.ip.dst,
                hao,
                repr: &repr,
                raw: &raw,
            }),
            now,
        );
        if self.cns[i].cn.stats().bu_accepted != before {
            self.cn_accepted(i, &repr, hao.unwrap_or(parsed.ip.src), pkt.injected);
        }
        self.cn_actions(i, None);
    }

    /// A CN accepted this BU: check it against what the CN may accept.
    fn cn_accepted(&mut self, i: usize, repr: &MhRepr, hoa: Ipv6Addr, injected: bool) {
        self.report.stats.cn_accepts += 1;
        let Message::BindingUpdate {
            sequence,
            lifetime_units,
            ..
        } = repr.message
        else {
            return;
        };
        if injected {
            self.violation(format!("CN{i} accepted an injected BU seq {sequence}"));
        }
        let alt = repr.options.iter().find_map(|o| match o {
            MobilityOption::AlternateCareOf(c) => Some(*c),
            _ => None,
        });
        let delete = lifetime_units == 0 || alt == Some(hoa);
        let Some((home, care)) = repr.options.iter().find_map(|o| match o {
            MobilityOption::NonceIndices { home, care_of } => Some((*home, *care_of)),
            _ => None,
        }) else {
            self.violation(format!("CN{i} accepted a BU without nonce indices"));
            return;
        };
        let shift = if self.p.plant == Plant::StaleNonceRecord {
            Duration::from_secs(300)
        } else {
            Duration::ZERO
        };
        let check = |idx: u16, what: &str, sim: &mut Sim| match sim.cns[i].issued.get(&idx).copied()
        {
            None => sim.violation(format!("CN{i} accepted unknown {what} nonce index {idx}")),
            Some(t) => {
                let age = sim.now.saturating_sub(t.saturating_sub(shift));
                if age > MAX_NONCE_LIFETIME {
                    sim.violation(format!(
                            "CN{i} accepted an authenticator on an expired {what} nonce ({idx}, {age:?} old)"
                        ));
                }
            }
        };
        check(home, "home", self);
        if !delete {
            check(care, "care-of", self);
        }
        let seq = Seqno(sequence);
        if let Some(last) = self.cns[i].last_accept.get(&hoa).copied() {
            if !seq.is_newer_than(last) {
                self.violation(format!(
                    "CN{i} accepted seq {seq} not newer than the last accepted {last}"
                ));
            }
        }
        self.cns[i].last_accept.insert(hoa, seq);
    }

    fn legacy_receive(&mut self, pkt: Packet, parsed: packet::Packet) {
        // No Mobile IPv6: a Home Address option is an unknown option whose type says
        // "discard and send a Parameter Problem, code 2" (RFC 8200 §4.2); a Mobility
        // Header is an unknown next header (code 1).
        let me = legacy_addr();
        let (code, pointer) = if parsed
            .headers
            .iter()
            .any(|h| matches!(h, Header::DestinationOptions(d) if d.home_address().is_some()))
        {
            let at = pkt.bytes[IPV6_HEADER_LEN..]
                .iter()
                .position(|b| *b == mip6d::wire::ext_header::OPT_HOME_ADDRESS)
                .map(|p| p + IPV6_HEADER_LEN);
            (2, at.unwrap_or(0) as u32)
        } else if parsed.ip.next_header == proto::MOBILITY {
            (1, 6)
        } else {
            return;
        };
        let icmp = Icmpv6Repr::ParameterProblem {
            code,
            pointer,
            invoking: pkt.bytes[..pkt.bytes.len().min(1232)].to_vec(),
        };
        let bytes = PacketBuilder::new(me, parsed.ip.src).build(Payload::Icmpv6(&icmp));
        self.send(
            NodeId::Legacy,
            Packet {
                bytes,
                esp: None,
                injected: pkt.injected,
            },
        );
    }

    // ---- actions ---------------------------------------------------------------------

    fn mn_actions(&mut self, caused_by_injection: bool) {
        let _ = caused_by_injection;
        let now = self.instant();
        while let Some(act) = self.mn.poll_action() {
            self.trace(|| format!("MN → {}", describe(&act)));
            self.tap_action(NodeId::Mn, &act);
            match act {
                Action::Send(t) => {
                    // §11.7.2: never bind a correspondent longer than the home
                    // registration has left.
                    if t.hao.is_some() {
                        if let Message::BindingUpdate { lifetime_units, .. } = t.repr.message {
                            let left = self.mn.home_binding().map_or(Duration::ZERO, |r| {
                                r.expires.saturating_duration_since(now)
                            });
                            let asked = mip6d::proto::event::units_to_duration(lifetime_units);
                            let home_bu = matches!(t.repr.message, Message::BindingUpdate { flags, .. } if flags.h);
                            if !home_bu && asked > left {
                                self.violation(format!(
                                    "BU to {} asks {asked:?}, home registration has {left:?} left",
                                    t.dst
                                ));
                            }
                        }
                    }
                    if !self.mn_owns(&t.tunnel.map_or(t.src, |(o, _)| o)) {
                        // Sent from an address we no longer have: it goes nowhere.
                        continue;
                    }
                    let is_home_bu =
                        matches!(t.repr.message, Message::BindingUpdate { flags, .. } if flags.h);
                    let esp = if is_home_bu { self.esp_mark(0) } else { None };
                    let bytes = build(&t);
                    self.send(
                        NodeId::Mn,
                        Packet {
                            bytes,
                            esp,
                            injected: false,
                        },
                    );
                }
                Action::RoStart { cn, coa, .. } => {
                    self.mn_ro.insert(cn, coa);
                }
                Action::RoStop { cn, .. } => {
                    self.mn_ro.remove(&cn);
                }
                Action::HomeTunnelSet { ha, coa, .. } => self.mn_tunnel = Some((ha, coa)),
                Action::HomeTunnelClear { .. } => self.mn_tunnel = None,
                _ => {}
            }
        }
        // Note when the MN's registration changed (for the agreement check).
        let cur = self.mn.home_binding().map(|r| r.seq);
        if cur != self.mn_reg_seen.map(|(s, _)| s) {
            self.mn_reg_seen = cur.map(|s| (s, self.now));
        }
    }

    fn ha_actions(&mut self, i: usize) {
        let me = ha_addr(i);
        while let Some(act) = self.has[i].ha.poll_action() {
            self.trace(|| format!("HA{i} → {}", describe(&act)));
            self.tap_action(NodeId::Ha(i), &act);
            match act {
                Action::Send(t) => {
                    if let Message::BindingAck {
                        status, sequence, ..
                    } = t.repr.message
                    {
                        if status < 128 && (t.rh2 == Some(hoa()) || t.dst == hoa()) {
                            self.ha_accepted(i, Seqno(sequence));
                        }
                    }
                    // Everything the HA itself says to the MN is IPsec-protected.
                    let to_mn = t.rh2 == Some(hoa()) || t.dst == hoa() || !self.is_infra(&t.dst);
                    let esp = if to_mn && t.src == me {
                        self.esp_mark(1)
                    } else {
                        None
                    };
                    let bytes = build(&t);
                    self.send(
                        NodeId::Ha(i),
                        Packet {
                            bytes,
                            esp,
                            injected: false,
                        },
                    );
                }
                Action::StartDad { hoa, .. } => {
                    let t = self.now
                        + match self.p.profile {
                            Profile::Story => story::DAD_TIME,
                            _ => self.rng.ms(50, 1000),
                        };
                    self.at(t, Ev::DadDone { ha: i, hoa });
                }
                Action::RouteAdd {
                    hoa,
                    tunnel_local,
                    tunnel_remote,
                } => {
                    self.has[i]
                        .routes
                        .insert(hoa, (tunnel_local, tunnel_remote));
                }
                Action::RouteDel { hoa } => {
                    self.has[i].routes.remove(&hoa);
                }
                Action::BindingRemoved {
                    hoa, home: true, ..
                } => {
                    // §9.5.1 compares with the cached entry; once it is gone, the home
                    // agent still remembers the number for SEQUENCE_GUARD, so an old BU
                    // overtaken by the deregistration cannot start a new registration.
                    let until = self.now + mip6d::proto::ha::SEQUENCE_GUARD;
                    self.has[i].guard_until.insert(hoa, until);
                }
                _ => {}
            }
        }
    }

    /// Records a machine's action for the story; sends are recorded as packets instead,
    /// when (and if) they reach the wire.
    fn tap_action(&mut self, who: NodeId, action: &Action) {
        if let Some(tap) = &mut self.tap {
            if !matches!(action, Action::Send(_)) {
                tap.push(Tapped::Action {
                    at: self.now,
                    who,
                    action: action.clone(),
                });
            }
        }
    }

    fn is_infra(&self, a: &Ipv6Addr) -> bool {
        (0..self.has.len()).any(|i| ha_addr(i) == *a)
            || (0..self.cns.len()).any(|i| cn_addr(i) == *a)
            || *a == legacy_addr()
    }

    /// The HA sent an accepting BA for sequence `seq`.
    fn ha_accepted(&mut self, i: usize, seq: Seqno) {
        self.report.stats.home_accepts += 1;
        if self.injected_now {
            self.violation(format!("HA{i} accepted an injected BU (seq {seq})"));
        }
        if self.p.plant == Plant::SeqRecordAhead {
            if let Some(last) = self.has[i].last_accept.get_mut(&hoa()) {
                *last = Seqno(last.get().wrapping_add(1));
            }
        }
        let guarded = match self.has[i].guard_until.get(&hoa()) {
            Some(&until) => self.now < until,
            None => true,
        };
        if let Some(last) = self.has[i]
            .last_accept
            .get(&hoa())
            .copied()
            .filter(|_| guarded)
        {
            if !seq.is_newer_than(last) {
                self.violation(format!(
                    "HA{i} accepted seq {seq}, not newer than the last accepted {last}"
                ));
            }
        }
        self.has[i].last_accept.insert(hoa(), seq);
        self.has[i].guard_until.remove(&hoa());
    }

    fn cn_actions(&mut self, i: usize, _unused: Option<()>) {
        while let Some(act) = self.cns[i].cn.poll_action() {
            self.trace(|| format!("CN{i} → {}", describe(&act)));
            self.tap_action(NodeId::Cn(i), &act);
            if let Action::Send(t) = act {
                match t.repr.message {
                    Message::HomeTest { nonce_index, .. }
                    | Message::CareOfTest { nonce_index, .. } => {
                        let now = self.now;
                        self.cns[i].issued.entry(nonce_index).or_insert(now);
                        if matches!(t.repr.message, Message::CareOfTest { .. })
                            && self.rr_stall.contains(&i)
                        {
                            continue;
                        }
                    }
                    _ => {}
                }
                let bytes = build(&t);
                self.send(
                    NodeId::Cn(i),
                    Packet {
                        bytes,
                        esp: None,
                        injected: false,
                    },
                );
            }
        }
    }

    // ---- traffic and attacks ---------------------------------------------------------

    fn data(&mut self) {
        // One packet per route-optimised correspondent, from the care-of address with a
        // Home Address option (RFC 6275 §11.3.1).
        let ro: Vec<(Ipv6Addr, Ipv6Addr)> = self.mn_ro.iter().map(|(c, a)| (*c, *a)).collect();
        for (cn, coa) in ro {
            if !self.mn_owns(&coa) {
                continue;
            }
            let bytes = build_raw(coa, cn, Some(hoa()), None, proto::UDP, &[0u8; 8]);
            self.send(
                NodeId::Mn,
                Packet {
                    bytes,
                    esp: None,
                    injected: false,
                },
            );
        }
    }

    fn attack(&mut self) {
        self.report.stats.attacks += 1;
        let kind = self.rng.below(6);
        let pkt_to = match kind {
            // Replay something seen delivered.
            0 | 1 => {
                if self.sniffed.is_empty() {
                    None
                } else {
                    let k = self.rng.below(self.sniffed.len() as u64) as usize;
                    Some(self.sniffed[k].clone())
                }
            }
            // A BU to a CN with made-up tokens (nonce indices it may have sniffed).
            2 => {
                let i = self.rng.below(self.cns.len() as u64) as usize;
                let cn = cn_addr(i);
                let coa = coa_addr(1000 + self.rng.below(5));
                // The newest index (by when it was issued, never by its random value, so the
                // schedule does not depend on the CN's randomness).
                let idx = self.cns[i]
                    .issued
                    .iter()
                    .max_by_key(|(_, t)| **t)
                    .map_or(0, |(i, _)| *i);
                let repr = MhRepr {
                    message: Message::BindingUpdate {
                        sequence: self.rng.next() as u16,
                        flags: BuFlags {
                            a: true,
                            ..BuFlags::default()
                        },
                        lifetime_units: 100,
                    },
                    options: vec![
                        MobilityOption::NonceIndices {
                            home: idx,
                            care_of: idx,
                        },
                        MobilityOption::BindingAuthData([0; 12]),
                    ],
                };
                let forged: [u8; 12] = self.rng.bytes();
                let mut mh = vec![0; repr.buffer_len()];
                repr.emit_with_authenticator(&mut mh, &hoa(), &cn, |_| forged);
                let bytes = build_raw(coa, cn, Some(hoa()), None, proto::MOBILITY, &mh);
                Some((
                    NodeId::Cn(i),
                    Packet {
                        bytes,
                        esp: None,
                        injected: true,
                    },
                ))
            }
            // A home BU without IPsec.
            3 => {
                let repr = MhRepr {
                    message: Message::BindingUpdate {
                        sequence: self.rng.next() as u16,
                        flags: BuFlags {
                            a: true,
                            h: true,
                            ..BuFlags::default()
                        },
                        lifetime_units: 100,
                    },
                    options: vec![],
                };
                let coa = coa_addr(2000);
                let mh = repr.to_bytes(&hoa(), &ha_addr(0));
                let bytes = build_raw(coa, ha_addr(0), Some(hoa()), None, proto::MOBILITY, &mh);
                Some((
                    NodeId::Ha(0),
                    Packet {
                        bytes,
                        esp: None,
                        injected: true,
                    },
                ))
            }
            // A BA "from a CN" with a sniffable sequence number and a made-up authenticator,
            // or a HoT/CoT with a made-up cookie, to wherever the MN is.
            _ => {
                let Location::Away(coa) = self.mn.location() else {
                    return;
                };
                let i = self.rng.below(self.cns.len() as u64) as usize;
                let cn = cn_addr(i);
                let seq = self.mn.cn_pending(&cn).map_or(0, |p| p.seq.get());
                let (repr, rh2) = if kind == 4 {
                    (
                        MhRepr {
                            message: Message::BindingAck {
                                status: 0,
                                flags: Default::default(),
                                sequence: seq,
                                lifetime_units: 50,
                            },
                            options: vec![MobilityOption::BindingAuthData([0; 12])],
                        },
                        Some(hoa()),
                    )
                } else {
                    (
                        MhRepr {
                            message: Message::CareOfTest {
                                nonce_index: 7,
                                cookie: self.rng.bytes(),
                                keygen_token: self.rng.bytes(),
                            },
                            options: vec![],
                        },
                        None,
                    )
                };
                let forged: [u8; 12] = self.rng.bytes();
                let final_dst = rh2.unwrap_or(coa);
                let mut mh = vec![0; repr.buffer_len()];
                repr.emit_with_authenticator(&mut mh, &cn, &final_dst, |_| forged);
                let bytes = build_raw(cn, coa, None, rh2, proto::MOBILITY, &mh);
                Some((
                    NodeId::Mn,
                    Packet {
                        bytes,
                        esp: None,
                        injected: true,
                    },
                ))
            }
        };
        if let Some((to, mut pkt)) = pkt_to {
            pkt.injected = true;
            let d = self.rng.ms(1, 50);
            self.at(self.now + d, Ev::Arrive { to, pkt });
        }
    }

    // ---- invariants ------------------------------------------------------------------

    fn in_flight(&self) -> bool {
        self.queue
            .values()
            .any(|e| matches!(e, Ev::Arrive { .. } | Ev::DadDone { .. }))
    }

    fn step_checks(&mut self) {
        if self.in_flight() {
            return;
        }
        self.agreement_check(false);
    }

    /// Once nothing is in flight, the MN's Binding Update List and its home agent's
    /// binding cache must agree.
    fn agreement_check(&mut self, final_check: bool) {
        let Some(ha) = self.mn.home_agent() else {
            return;
        };
        let Some(i) = (0..self.has.len()).find(|i| ha_addr(*i) == ha) else {
            return;
        };
        if self.mn.home_pending().is_some() || self.mn.home_failed() {
            return;
        }
        let loc = self.mn.location();
        let b = self.has[i].ha.binding(&ha, &hoa()).cloned();
        match (loc, self.mn.home_binding().cloned()) {
            (Location::Away(coa), Some(r)) if r.coa == coa && r.ha == ha => {
                // Unless the HA forgot everything after accepting this registration.
                // The HA accepted it after the acknowledged copy was sent.
                let sent_at = (r.expires - r.lifetime).saturating_duration_since(self.base);
                if self.has[i].booted >= sent_at {
                    return;
                }
                self.report.stats.quiet_checks += 1;
                let now = self.instant();
                match b {
                    Some(b) if b.state == HaState::Active => {
                        if b.coa != coa {
                            self.violation(format!(
                                "MN registered {coa} at HA{i}, which binds {}",
                                b.coa
                            ));
                        }
                        if r.seq.is_newer_than(b.seq) {
                            self.violation(format!(
                                "MN registered seq {} at HA{i}, which has older seq {}",
                                r.seq, b.seq
                            ));
                        }
                        if b.expires < r.expires {
                            self.violation(format!(
                                "MN believes its registration lasts until {:?}, HA{i} until {:?}",
                                r.expires - self.base,
                                b.expires - self.base
                            ));
                        }
                    }
                    other if r.expires > now => self.violation(format!(
                        "MN registered {coa} at HA{i} (seq {}), HA{i} has {other:?}",
                        r.seq
                    )),
                    _ => {}
                }
            }
            (Location::Home, None) => {
                self.report.stats.quiet_checks += 1;
                if let Some(b) = b {
                    self.violation(format!(
                        "MN is home and deregistered, HA{i} still binds {} (seq {})",
                        b.coa, b.seq
                    ));
                }
            }
            _ if final_check => {}
            _ => {}
        }
    }

    fn end_checks(&mut self) {
        if self.in_flight() {
            // Let the last packets land: agreement needs a quiet network.
            let mut guard = 0;
            while self.in_flight() && guard < 100_000 {
                guard += 1;
                let Some(key) = self.queue.keys().next().copied() else {
                    break;
                };
                let timers = self.next_timer();
                if let Some((t, who)) = timers.filter(|(t, _)| *t <= key.0) {
                    self.now = t;
                    self.fire_timer(who);
                    continue;
                }
                let ev = self.queue.remove(&key).unwrap();
                self.now = key.0;
                if let Ev::Arrive { .. } | Ev::DadDone { .. } = ev {
                    self.event(ev);
                }
            }
        }
        self.agreement_check(true);
        // After the final heal the MN must be registered where it is (or home and
        // deregistered), and correspondents without Mobile IPv6 must be left alone.
        match self.mn.location() {
            Location::Away(coa)
                if self.heal_ok
                    && !self.mn.home_failed()
                    && !self.mn.home_binding().is_some_and(|r| r.coa == coa)
                    && self.mn.home_pending().is_none() =>
            {
                self.violation(format!("at the end the MN is not registered at {coa}"));
            }
            Location::Home if self.mn.home_binding().is_some() => {
                self.violation("at the end the MN is home but still registered".into());
            }
            _ => {}
        }
        if self.legacy && !self.mn.ro_disabled(&legacy_addr()) {
            // RO is only tried once the home registration is in place; give it that.
            if self.mn.home_binding().is_some() {
                self.violation("route optimisation still on with a legacy correspondent".into());
            }
        }
        if self.mn_ro.contains_key(&legacy_addr()) {
            self.violation("RO data path to a legacy correspondent".into());
        }
    }
}

// ---- packet helpers ------------------------------------------------------------------

/// The Mobility Header of a packet (or of the packet inside an ip6ip6 tunnel): the
/// parsed header and its bytes as received.
fn mh_of(bytes: &[u8]) -> Option<(MhRepr, Vec<u8>)> {
    let p = packet::parse(bytes).ok()?;
    p.headers.iter().find_map(|h| match h {
        Header::Mobility { repr, offset, .. } => {
            let raw = bytes.get(*offset..*offset + repr.buffer_len())?.to_vec();
            Some((repr.clone(), raw))
        }
        _ => None,
    })
}

/// A whole IPv6 packet: header, Type 2 Routing Header, Destination Options with the
/// Home Address option, then `upper` (already checksummed) — the order of RFC 6275 §6.3
/// and RFC 8200 §4.1.
fn build_raw(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hao: Option<Ipv6Addr>,
    rh2: Option<Ipv6Addr>,
    upper_proto: u8,
    upper: &[u8],
) -> Vec<u8> {
    let dest_opts = hao.map(|h| DestOptsRepr {
        next_header: upper_proto,
        options: vec![DestOption::HomeAddress(h)],
    });
    let rt = rh2.map(|h| Type2RoutingRepr {
        next_header: if dest_opts.is_some() {
            proto::DESTINATION_OPTIONS
        } else {
            upper_proto
        },
        segments_left: 1,
        home_address: h,
    });
    let first = match (&rt, &dest_opts) {
        (Some(_), _) => proto::ROUTING,
        (None, Some(_)) => proto::DESTINATION_OPTIONS,
        (None, None) => upper_proto,
    };
    let mut out = vec![0u8; IPV6_HEADER_LEN];
    if let Some(r) = &rt {
        out.extend_from_slice(&r.to_bytes());
    }
    if let Some(d) = &dest_opts {
        out.extend_from_slice(&d.to_bytes());
    }
    out.extend_from_slice(upper);
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: (out.len() - IPV6_HEADER_LEN) as u16,
        next_header: first,
        hop_limit: 64,
        src,
        dst,
    }
    .emit(&mut out);
    out
}

fn encapsulate(outer_src: Ipv6Addr, outer_dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; IPV6_HEADER_LEN];
    out.extend_from_slice(inner);
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: inner.len() as u16,
        next_header: proto::IPV6,
        hop_limit: 64,
        src: outer_src,
        dst: outer_dst,
    }
    .emit(&mut out);
    out
}

/// A `Transmit` as the platform would put it on the wire.
fn build(t: &Transmit) -> Vec<u8> {
    let inner = build_raw(t.src, t.dst, t.hao, t.rh2, proto::MOBILITY, &t.bytes);
    match t.tunnel {
        Some((outer_src, outer_dst)) => encapsulate(outer_src, outer_dst, &inner),
        None => inner,
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Send(t) => format!(
            "send {} → {}{}{}{}: {}",
            t.src,
            t.dst,
            t.hao.map_or(String::new(), |h| format!(" hao {h}")),
            t.rh2.map_or(String::new(), |h| format!(" rh2 {h}")),
            t.tunnel
                .map_or(String::new(), |(s, d)| format!(" tunnel {s}→{d}")),
            t.repr
        ),
        other => format!("{other:?}"),
    }
}

/// Runs one seed; a panic inside is reported as a violation.
pub fn run_seed(p: Params) -> Report {
    let seed = p.seed;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Sim::new(p).run())) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Report {
                violations: vec![format!("seed {seed}: panic: {msg}")],
                stats: SimStats::default(),
            }
        }
    }
}
