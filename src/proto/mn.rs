//! The mobile node (RFC 6275 §11): the Binding Update List, home registration with
//! retransmission and refresh, return home, and route optimisation with correspondent
//! nodes through return routability. Sans-IO: see [`crate::proto::event`]; one [`Mn`]
//! per home address (umip: one `MnHomeLink` block each).
//!
//! # Shape
//! Events ([`MnEvent`]) only record facts — where we are, what a peer answered. After
//! each event and each timeout, [`Mn::drive`] compares what is (the Binding Update List)
//! with what should be (registered at the current care-of address with the home agent,
//! bound at the correspondents we do route optimisation with, nothing bound once home)
//! and sends what closes the gap. Because every decision is taken again from the state,
//! a lost answer, a reordered one, a movement in the middle of an exchange or a reboot of
//! a peer all end in the same place. The home registration is always driven first:
//! correspondents are only told a care-of address the home agent has accepted
//! (§11.7.2: the home registration must be in place before route optimisation).
//!
//! # Choices where the RFC leaves room (and why)
//! - **Every transmission gets a new sequence number** (§11.7.1: each BU's sequence
//!   number MUST be greater than the previous one to that destination). A
//!   retransmission that arrives after the first copy was accepted is then a refresh,
//!   not a 135. A BA matches the outstanding BU if it names any of its copies; its
//!   lifetime counts from when that copy was sent (§11.7.3).
//! - **Status 135** (§11.7.3): the next BU uses the BA's sequence number + 1 and goes
//!   out at once; the back-off keeps running, so a peer that keeps answering 135 cannot
//!   make us send faster than the retransmission timer.
//! - **Other errors from the home agent**: the next candidate of
//!   [`MnConfig::home_agents`] (the hook for DHAAD, §11.4.1); when none is left the
//!   registration stops until we move or get new candidates, and
//!   [`Action::HomeRegistrationFailed`] says so. After `max_ha_consecutive_resends`
//!   unanswered retransmissions we also move to the next candidate (umip
//!   `MnMaxHaConsecutiveResends`); with a single home agent we keep retransmitting at
//!   the 32 s cap, as §11.8 allows.
//! - **Refresh** at 95 % of the granted lifetime (umip `BU_REFRESH_DELAY`) or at the
//!   Binding Refresh Advice interval (§6.2.4), whichever comes first.
//! - **Tokens** are used only while younger than `MAX_TOKEN_LIFETIME` minus
//!   [`TOKEN_USE_MARGIN`] (§5.2.7: the correspondent may forget the nonce after that);
//!   while a binding is in use, a fresh test starts [`TOKEN_REFRESH_LEAD`] before a token
//!   ages out, so a movement needs only the care-of test (§5.2.5, §11.6.1).
//! - **Correspondent errors**: 136/137/138 (unauthenticated: no Kbm exists for them)
//!   are believed only when they name a sequence number we sent, and only drop the named
//!   tokens, so the forger gains one more round of tests. Binding Error status 2 and a
//!   Parameter Problem about the Mobility Header or the Home Address option (§11.3.5,
//!   §11.3.6) stop route optimisation with that correspondent for good, as does any
//!   other authenticated refusal (129, 130, 139, …). Binding Error status 1 drops the
//!   binding and redoes the binding (with fresh tests when the tokens are old).
//! - **Binding Refresh Request** (§11.7.4): refresh the binding at once, whoever asked.
//! - **Deregistration with a correspondent** on return home (§11.5.4 leaves it open):
//!   sent from the home address with the home token alone (§5.2.6), CoA = HoA.
//! - **Blocking** ([`Action::BlockHoa`]) whenever no accepted registration covers our
//!   location, unless `optimistic_handoff` (umip `OptimisticHandoff`) lets traffic use
//!   the tunnel as soon as the BU is out.
//! - **Rate limit** (§11.8, §12 MAX_UPDATE_RATE): at most 3 BUs per second to one peer;
//!   a BU over the limit waits.

use crate::crypto::rr::{self, Cookie, Kbm, KeygenToken, NonceIndex, MAX_TOKEN_LIFETIME};
use crate::proto::backoff::{Backoff, MAX_BINDACK_TIMEOUT};
use crate::proto::cn::{status, MAX_RR_BINDING_LIFETIME};
use crate::proto::event::{
    is_unicast_routable, lifetime_units, units_to_duration, Action, MnEvent, MnInbound, Movement,
    Transmit,
};
use crate::proto::seqno::Seqno;
use crate::wire::mh::{be_status, BuFlags, Message, MhRepr};
use crate::wire::mh_option::MobilityOption;
use crate::wire::proto;
use ring::rand::SecureRandom;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

/// Refresh a binding after this fraction of its lifetime (umip `BU_REFRESH_DELAY`).
pub const REFRESH_PERCENT: u32 = 95;
/// A keygen token is not used when it is older than `MAX_TOKEN_LIFETIME` minus this: a
/// Binding Update built on it must still reach the correspondent in time (§5.2.7).
pub const TOKEN_USE_MARGIN: Duration = Duration::from_secs(10);
/// While a binding is in use, tokens are refreshed this long before they stop being
/// usable.
pub const TOKEN_REFRESH_LEAD: Duration = Duration::from_secs(30);
/// RFC 6275 §12 MAX_UPDATE_RATE: Binding Updates per second to one destination.
pub const MAX_UPDATE_RATE: usize = 3;
/// The largest lifetime the 16-bit field can carry (65535 × 4 s).
pub const MAX_BINDING_LIFETIME: Duration = Duration::from_secs(262_140);
/// How much later than our own count a peer's binding may end: it counts the lifetime
/// from when the BU arrived, we from when it left (§11.7.3). Deciding whether a
/// deregistration is needed errs on the side of sending one.
pub const DELIVERY_SLACK: Duration = Duration::from_secs(10);
/// Copies of one outstanding BU remembered for matching their BA.
const MAX_COPIES: usize = 32;

/// Mobile-node settings (umip names in brackets).
#[derive(Clone, Debug)]
pub struct MnConfig {
    pub home_address: Ipv6Addr,
    /// Candidate home agents, most preferred first (`HomeAgentAddress`, or the DHAAD
    /// reply's list). Registration uses one at a time.
    pub home_agents: Vec<Ipv6Addr>,
    /// Lifetime asked of the home agent (`MnMaxHaBindingLife`).
    pub max_ha_binding_life: Duration,
    /// Lifetime asked of a correspondent (`MnMaxCnBindingLife`); never more than the
    /// home registration has left (§11.7.2).
    pub max_cn_binding_life: Duration,
    /// Set A in Binding Updates to correspondents (`UseCnBuAck`).
    pub use_cn_bu_ack: bool,
    /// `DoRouteOptimizationMN`.
    pub route_optimization: bool,
    /// `InitialBindackTimeoutFirstReg` (§13).
    pub initial_bindack_timeout_first_reg: Duration,
    /// `InitialBindackTimeoutReReg`.
    pub initial_bindack_timeout_rereg: Duration,
    /// `MnMaxHaConsecutiveResends`: unanswered retransmissions before trying the next
    /// candidate home agent (0: never switch).
    pub max_ha_consecutive_resends: u32,
    /// `MnMaxCnConsecutiveResends`: unanswered retransmissions of a HoTI, CoTI or BU
    /// before route optimisation with that correspondent is abandoned (0: no limit).
    pub max_cn_consecutive_resends: u32,
    /// `OptimisticHandoff`: use the tunnel as soon as the BU is sent.
    pub optimistic_handoff: bool,
    /// The sequence number before the first Binding Update.
    pub initial_sequence: u16,
    /// Start with the home registration held ([`Mn::set_home_registration`]): a
    /// Distributed Servers member registers the DSA only while it is the contact node.
    pub hold_home_registration: bool,
}

impl Default for MnConfig {
    fn default() -> Self {
        MnConfig {
            home_address: Ipv6Addr::UNSPECIFIED,
            home_agents: vec![],
            max_ha_binding_life: MAX_BINDING_LIFETIME,
            max_cn_binding_life: MAX_RR_BINDING_LIFETIME,
            use_cn_bu_ack: false,
            route_optimization: true,
            initial_bindack_timeout_first_reg:
                crate::proto::backoff::INITIAL_BINDACK_TIMEOUT_FIRST_REG,
            initial_bindack_timeout_rereg: crate::proto::backoff::INITIAL_BINDACK_TIMEOUT,
            max_ha_consecutive_resends: 5,
            max_cn_consecutive_resends: 0,
            optimistic_handoff: false,
            initial_sequence: 0,
            hold_home_registration: false,
        }
    }
}

/// Where movement detection says we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// No usable link.
    Detached,
    /// On the home link.
    Home,
    /// On a foreign link with this care-of address.
    Away(Ipv6Addr),
}

/// A registration the home agent accepted (§11.7.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeBinding {
    pub ha: Ipv6Addr,
    pub coa: Ipv6Addr,
    /// The sequence number the BA acknowledged.
    pub seq: Seqno,
    /// Granted lifetime.
    pub lifetime: Duration,
    /// Counted from when the acknowledged copy was sent, so never after the home
    /// agent's own expiry.
    pub expires: Instant,
    pub refresh_at: Instant,
}

/// A binding at a correspondent, as far as we know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CnBinding {
    pub coa: Ipv6Addr,
    pub seq: Seqno,
    pub lifetime: Duration,
    pub expires: Instant,
    pub refresh_at: Instant,
    /// Whether a BA confirmed it (`UseCnBuAck`), or we only sent the BU.
    pub acked: bool,
}

/// The Binding Update waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub peer: Ipv6Addr,
    /// The care-of address it registers (the home address for a deregistration from
    /// home).
    pub coa: Ipv6Addr,
    /// Asked for; zero for a deregistration.
    pub lifetime: Duration,
    /// The newest copy's sequence number.
    pub seq: Seqno,
    pub first_sent: Instant,
    /// The first retransmission timeout (§11.8).
    pub initial_timeout: Duration,
    pub attempts: u32,
}

/// One Binding Update List row, for `mip6ctl` (RFC 6275 §11.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulRow {
    pub peer: Ipv6Addr,
    pub home: bool,
    pub coa: Ipv6Addr,
    pub seq: Seqno,
    pub lifetime: Duration,
    pub expires: Option<Instant>,
    pub pending: bool,
}

/// Counters, for `mip6ctl` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MnStats {
    pub home_bu_sent: u64,
    pub home_ba_accepted: u64,
    pub home_ba_rejected: u64,
    pub cn_bu_sent: u64,
    pub cn_ba_accepted: u64,
    pub test_inits_sent: u64,
    /// Messages that failed a check (wrong peer, cookie, sequence, authenticator).
    pub ignored: u64,
}

#[derive(Clone, Debug)]
struct Copy {
    seq: Seqno,
    at: Instant,
    /// The key its authenticator used (correspondents only).
    kbm: Option<Kbm>,
}

/// An outstanding Binding Update: all its copies share the content.
#[derive(Clone, Debug)]
struct Outstanding {
    peer: Ipv6Addr,
    coa: Ipv6Addr,
    lifetime: Duration,
    copies: VecDeque<Copy>,
    first_sent: Instant,
    initial: Duration,
    backoff: Backoff,
}

impl Outstanding {
    fn copy(&self, seq: u16) -> Option<&Copy> {
        self.copies.iter().find(|c| c.seq.get() == seq)
    }

    fn record(&mut self, seq: Seqno, now: Instant, kbm: Option<Kbm>) -> Instant {
        if self.copies.len() == MAX_COPIES {
            self.copies.pop_front();
        }
        self.copies.push_back(Copy { seq, at: now, kbm });
        self.backoff.on_send(now)
    }

    fn info(&self) -> Pending {
        Pending {
            peer: self.peer,
            coa: self.coa,
            lifetime: self.lifetime,
            seq: self.copies.back().map_or(Seqno(0), |c| c.seq),
            first_sent: self.first_sent,
            initial_timeout: self.initial,
            attempts: self.backoff.attempts(),
        }
    }

    fn is_dereg(&self) -> bool {
        self.lifetime.is_zero()
    }
}

/// At most [`MAX_UPDATE_RATE`] Binding Updates per second to one peer (§11.8).
#[derive(Clone, Debug, Default)]
struct SendLimiter(VecDeque<Instant>);

impl SendLimiter {
    fn allowed_at(&self, now: Instant) -> Instant {
        match self.0.front() {
            Some(first) if self.0.len() >= MAX_UPDATE_RATE => {
                (*first + Duration::from_secs(1)).max(now)
            }
            _ => now,
        }
    }

    fn record(&mut self, now: Instant) {
        if self.0.len() >= MAX_UPDATE_RATE {
            self.0.pop_front();
        }
        self.0.push_back(now);
    }
}

#[derive(Clone, Debug)]
struct Home {
    ha_index: usize,
    /// The last sequence number sent (to any home agent).
    seq: Seqno,
    out: Option<Outstanding>,
    reg: Option<HomeBinding>,
    /// Until when a home agent may hold a binding we have not heard the end of.
    maybe_until: Option<Instant>,
    /// Every candidate refused us; wait for a movement or new candidates.
    failed: bool,
    refresh_now: bool,
    limiter: SendLimiter,
    defer_until: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    index: NonceIndex,
    token: KeygenToken,
    at: Instant,
    /// The address it is bound to (home or care-of).
    addr: Ipv6Addr,
}

impl Token {
    fn usable(&self, now: Instant) -> bool {
        now < self.at + (MAX_TOKEN_LIFETIME - TOKEN_USE_MARGIN)
    }
    fn refresh_at(&self) -> Instant {
        self.at + (MAX_TOKEN_LIFETIME - TOKEN_USE_MARGIN - TOKEN_REFRESH_LEAD)
    }
}

#[derive(Clone, Debug)]
struct TestInit {
    cookie: Cookie,
    /// The address under test (home address, or the care-of address of a CoTI).
    addr: Ipv6Addr,
    backoff: Backoff,
}

#[derive(Clone, Debug)]
struct CnEntry {
    wanted: bool,
    /// No route optimisation with this correspondent any more (§11.3.5, §11.3.6).
    disabled: bool,
    home_token: Option<Token>,
    care_token: Option<Token>,
    hoti: Option<TestInit>,
    coti: Option<TestInit>,
    seq: Seqno,
    out: Option<Outstanding>,
    bound: Option<CnBinding>,
    maybe_until: Option<Instant>,
    refresh_now: bool,
    limiter: SendLimiter,
    defer_until: Option<Instant>,
}

impl CnEntry {
    fn new(seq: Seqno) -> Self {
        CnEntry {
            wanted: false,
            disabled: false,
            home_token: None,
            care_token: None,
            hoti: None,
            coti: None,
            seq,
            out: None,
            bound: None,
            maybe_until: None,
            refresh_now: false,
            limiter: SendLimiter::default(),
            defer_until: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Iface {
    up: bool,
    preference: u8,
    at_home: bool,
    coa: Option<Ipv6Addr>,
}

/// What the data path was last told, to emit only changes.
#[derive(Clone, Debug, Default)]
struct Installed {
    blocked: Option<bool>,
    tunnel: Option<(Ipv6Addr, Ipv6Addr)>,
    home_bul: Option<(Ipv6Addr, Ipv6Addr, bool)>,
    cn_bul: BTreeMap<Ipv6Addr, (Ipv6Addr, bool)>,
    ro: BTreeMap<Ipv6Addr, Ipv6Addr>,
}

/// Desired outcome for one correspondent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    Idle,
    Wait,
    Bind(Ipv6Addr),
    /// Delete the binding, sending from this address (care-of, or home when at home).
    Unbind(Ipv6Addr),
}

/// The mobile node for one home address.
pub struct Mn {
    config: MnConfig,
    rng: Arc<dyn SecureRandom + Send + Sync>,
    ifaces: BTreeMap<u32, Iface>,
    home: Home,
    cns: BTreeMap<Ipv6Addr, CnEntry>,
    installed: Installed,
    wakeup: Option<Instant>,
    actions: VecDeque<Action>,
    stats: MnStats,
    /// No home registration is sent, kept or withdrawn ([`Mn::set_home_registration`]).
    held: bool,
}

impl std::fmt::Debug for Mn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mn")
            .field("config", &self.config)
            .field("location", &self.location())
            .field("home", &self.home)
            .field("cns", &self.cns)
            .finish_non_exhaustive()
    }
}

impl Mn {
    /// A mobile node that knows no interface yet (so it is [`Location::Detached`] and
    /// blocks home-address traffic until movement detection reports one). `rng` makes
    /// the home and care-of init cookies (§5.2.3).
    pub fn new(config: MnConfig, rng: Arc<dyn SecureRandom + Send + Sync>) -> Mn {
        let seq = Seqno(config.initial_sequence);
        let held = config.hold_home_registration;
        Mn {
            home: Home {
                ha_index: 0,
                seq,
                out: None,
                reg: None,
                maybe_until: None,
                failed: false,
                refresh_now: false,
                limiter: SendLimiter::default(),
                defer_until: None,
            },
            config,
            rng,
            ifaces: BTreeMap::new(),
            cns: BTreeMap::new(),
            installed: Installed::default(),
            wakeup: None,
            actions: VecDeque::new(),
            stats: MnStats::default(),
            held,
        }
    }

    pub fn config(&self) -> &MnConfig {
        &self.config
    }

    pub fn stats(&self) -> &MnStats {
        &self.stats
    }

    pub fn home_address(&self) -> Ipv6Addr {
        self.config.home_address
    }

    /// The home agent registration currently targets.
    pub fn home_agent(&self) -> Option<Ipv6Addr> {
        self.config.home_agents.get(self.home.ha_index).copied()
    }

    /// The preferred usable interface decides (lowest preference value, then index).
    pub fn location(&self) -> Location {
        self.ifaces
            .iter()
            .filter(|(_, i)| i.up && (i.at_home || i.coa.is_some()))
            .min_by_key(|(idx, i)| (i.preference, **idx))
            .map_or(Location::Detached, |(_, i)| match i.coa {
                Some(c) if !i.at_home => Location::Away(c),
                _ => Location::Home,
            })
    }

    /// The accepted home registration, if any.
    pub fn home_binding(&self) -> Option<&HomeBinding> {
        self.home.reg.as_ref()
    }

    /// The home Binding Update waiting for its BA, if any.
    pub fn home_pending(&self) -> Option<Pending> {
        self.home.out.as_ref().map(Outstanding::info)
    }

    /// Whether every candidate home agent refused the registration.
    pub fn home_failed(&self) -> bool {
        self.home.failed
    }

    /// The last sequence number sent to a home agent.
    pub fn home_sequence(&self) -> Seqno {
        self.home.seq
    }

    pub fn cn_binding(&self, cn: &Ipv6Addr) -> Option<&CnBinding> {
        self.cns.get(cn).and_then(|e| e.bound.as_ref())
    }

    pub fn cn_pending(&self, cn: &Ipv6Addr) -> Option<Pending> {
        self.cns
            .get(cn)
            .and_then(|e| e.out.as_ref().map(Outstanding::info))
    }

    /// Whether route optimisation with `cn` was abandoned.
    pub fn ro_disabled(&self, cn: &Ipv6Addr) -> bool {
        self.cns.get(cn).is_some_and(|e| e.disabled)
    }

    /// Correspondents we keep state for.
    /// Whether a Home Test or Care-of Test from `cn` with `cookie` answers a test init
    /// of ours. One that does not may answer someone else on this node: a Distributed
    /// Servers contact node runs home tests for the DSA outside the machine
    /// (`ds::redirect`), and the data path delivers those to the home address.
    pub fn awaits_test(&self, cn: &Ipv6Addr, cookie: &Cookie) -> bool {
        self.cns.get(cn).is_some_and(|e| {
            e.hoti.as_ref().is_some_and(|t| t.cookie == *cookie)
                || e.coti.as_ref().is_some_and(|t| t.cookie == *cookie)
        })
    }

    pub fn correspondents(&self) -> impl Iterator<Item = &Ipv6Addr> {
        self.cns.keys()
    }

    /// The Binding Update List (RFC 6275 §11.1).
    pub fn bul(&self) -> Vec<BulRow> {
        let mut rows = vec![];
        let row = |peer, home, out: &Option<Outstanding>, coa, seq, lifetime, expires| {
            let pending = out.as_ref().map(Outstanding::info);
            BulRow {
                peer,
                home,
                coa: pending.as_ref().map_or(coa, |p| p.coa),
                seq: pending.as_ref().map_or(seq, |p| p.seq),
                lifetime: pending.as_ref().map_or(lifetime, |p| p.lifetime),
                expires,
                pending: pending.is_some(),
            }
        };
        if let Some(ha) = self.home_agent() {
            let r = self.home.reg.as_ref();
            if r.is_some() || self.home.out.is_some() {
                rows.push(row(
                    ha,
                    true,
                    &self.home.out,
                    r.map_or(ha, |r| r.coa),
                    r.map_or(self.home.seq, |r| r.seq),
                    r.map_or(Duration::ZERO, |r| r.lifetime),
                    r.map(|r| r.expires),
                ));
            }
        }
        for (cn, e) in &self.cns {
            let b = e.bound.as_ref();
            if b.is_some() || e.out.is_some() {
                rows.push(row(
                    *cn,
                    false,
                    &e.out,
                    b.map_or(*cn, |b| b.coa),
                    b.map_or(e.seq, |b| b.seq),
                    b.map_or(Duration::ZERO, |b| b.lifetime),
                    b.map(|b| b.expires),
                ));
            }
        }
        rows
    }

    /// Whether every home agent refused the registration (it stays stopped until we
    /// move or get new candidates).
    /// Whether the home registration is held ([`Mn::set_home_registration`]).
    pub fn home_held(&self) -> bool {
        self.held
    }

    /// Distributed Servers: the DSA is this node's home address only while it is the
    /// contact node, and the sequence numbers are the membership's, not ours.
    /// `Some(seq)`: register (again) at once, the first Binding Update carrying `seq`
    /// (committed by the membership as newer than any deposed contact's). `None`: hold —
    /// stop sending and refreshing and forget the registration **without** deregistering,
    /// since the home agent's binding now belongs to the next contact.
    pub fn set_home_registration(&mut self, next: Option<u16>, now: Instant) {
        if self.held || next.is_none() {
            self.home.reg = None;
            self.home.maybe_until = None;
            self.home.failed = false;
            self.home.defer_until = None;
            self.home.limiter = SendLimiter::default();
        }
        self.home.out = None;
        match next {
            Some(seq) => {
                self.held = false;
                // A binding we hold stays in use while the new number goes out.
                self.home.refresh_now = true;
                // home_send_copy steps the number before sending.
                self.home.seq = Seqno(seq.wrapping_sub(1));
            }
            None => self.held = true,
        }
        self.drive(now);
    }

    pub fn home_registration_failed(&self) -> bool {
        self.home.failed
    }

    /// New candidate home agents (e.g. from DHAAD): registration starts over with the
    /// first one.
    pub fn set_home_agents(&mut self, agents: Vec<Ipv6Addr>, now: Instant) {
        self.config.home_agents = agents;
        self.home.ha_index = 0;
        self.home.failed = false;
        self.home.out = None;
        self.home.reg = None;
        self.drive(now);
    }

    pub fn handle(&mut self, event: MnEvent<'_>, now: Instant) {
        match event {
            MnEvent::Mh(p) => self.handle_mh(&p, now),
            MnEvent::ParameterProblem {
                from,
                code,
                pointer,
                invoking,
            } => self.parameter_problem(from, code, pointer, invoking),
            MnEvent::Movement(m) => self.movement(m),
            MnEvent::StartRo { cn } => {
                if is_unicast_routable(&cn) && cn != self.config.home_address {
                    let seq = Seqno(self.config.initial_sequence);
                    self.cns
                        .entry(cn)
                        .or_insert_with(|| CnEntry::new(seq))
                        .wanted = true;
                }
            }
            MnEvent::StopRo { cn } => {
                if let Some(e) = self.cns.get_mut(&cn) {
                    e.wanted = false;
                }
            }
        }
        self.drive(now);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeup
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.home_retransmit(now);
        let cns: Vec<Ipv6Addr> = self.cns.keys().copied().collect();
        for cn in cns {
            self.cn_retransmit(cn, now);
        }
        self.drive(now);
    }

    // ---- events ----------------------------------------------------------------------

    fn movement(&mut self, m: Movement) {
        let before = self.location();
        match m {
            Movement::CoaUp {
                iface,
                coa,
                preference,
            } => {
                let i = self.ifaces.entry(iface).or_default();
                *i = Iface {
                    up: true,
                    preference,
                    at_home: false,
                    coa: Some(coa),
                };
            }
            Movement::CoaDown { iface } => {
                if let Some(i) = self.ifaces.get_mut(&iface) {
                    i.coa = None;
                }
            }
            Movement::AtHome { iface, preference } => {
                let i = self.ifaces.entry(iface).or_default();
                *i = Iface {
                    up: true,
                    preference,
                    at_home: true,
                    coa: None,
                };
            }
            Movement::LinkDown { iface } => {
                if let Some(i) = self.ifaces.get_mut(&iface) {
                    i.up = false;
                }
            }
            Movement::LinkUp { iface } => {
                if let Some(i) = self.ifaces.get_mut(&iface) {
                    i.up = true;
                }
            }
        }
        if self.location() != before {
            debug!(from = ?before, to = ?self.location(), "moved");
            // A new place is a new chance for a registration that failed (umip redoes
            // DHAAD then), starting with the preferred home agent.
            if self.home.failed {
                self.home.failed = false;
                self.home.ha_index = 0;
            }
        }
    }

    fn handle_mh(&mut self, p: &MnInbound<'_>, now: Instant) {
        let src = p.packet.src;
        let from_ha = self.home_agent() == Some(src);
        match &p.packet.repr.message {
            Message::BindingAck {
                status,
                sequence,
                lifetime_units,
                ..
            } => {
                if from_ha {
                    self.home_ba(p, *status, *sequence, *lifetime_units, now);
                } else if self.cns.contains_key(&src) {
                    self.cn_ba(p, *status, *sequence, *lifetime_units, now);
                } else {
                    self.stats.ignored += 1;
                }
            }
            Message::HomeTest {
                nonce_index,
                cookie,
                keygen_token,
            } => self.home_test(p, *nonce_index, cookie, keygen_token, now),
            Message::CareOfTest {
                nonce_index,
                cookie,
                keygen_token,
            } => self.care_of_test(p, *nonce_index, cookie, keygen_token, now),
            Message::BindingRefreshRequest => {
                // §11.7.4: answer with a Binding Update (after tests, if needed).
                if from_ha {
                    if self.home.reg.is_some() {
                        self.home.refresh_now = true;
                    }
                } else if let Some(e) = self.cns.get_mut(&src) {
                    if e.bound.is_some() {
                        e.refresh_now = true;
                    }
                }
            }
            Message::BindingError {
                status: st,
                home_address,
            } => {
                let hoa = self.config.home_address;
                if *home_address != hoa && !home_address.is_unspecified() {
                    self.stats.ignored += 1;
                    return;
                }
                if from_ha {
                    // §11.3.6: the home agent has no binding for us (it restarted):
                    // register again now.
                    if *st == be_status::UNKNOWN_BINDING_FOR_HOME_ADDRESS && self.home.reg.is_some()
                    {
                        self.home.refresh_now = true;
                    }
                } else if let Some(e) = self.cns.get_mut(&src) {
                    match *st {
                        be_status::UNKNOWN_BINDING_FOR_HOME_ADDRESS => {
                            // §11.3.6: the correspondent lost (or never got) our binding.
                            e.bound = None;
                            e.out = None;
                        }
                        be_status::UNRECOGNIZED_MH_TYPE => Self::disable(e),
                        _ => {}
                    }
                }
            }
            // A HoTI, CoTI or BU to a mobile node means nothing.
            _ => self.stats.ignored += 1,
        }
    }

    fn parameter_problem(&mut self, from: Ipv6Addr, code: u8, pointer: u32, invoking: &[u8]) {
        let Some(e) = self.cns.get_mut(&from) else {
            return;
        };
        // §11.3.5: code 1 pointing at a Next Header of 135 (the Mobility Header is
        // unknown there), or code 2 pointing at the Home Address option type: the
        // correspondent does not do Mobile IPv6.
        let at = usize::try_from(pointer).ok().and_then(|p| invoking.get(p));
        let lacks = matches!(
            (code, at),
            (1, Some(&proto::MOBILITY)) | (2, Some(&crate::wire::ext_header::OPT_HOME_ADDRESS))
        );
        if lacks {
            debug!(cn = %from, "correspondent lacks Mobile IPv6: no route optimisation");
            Self::disable(e);
        }
    }

    fn disable(e: &mut CnEntry) {
        e.disabled = true;
        e.out = None;
        e.hoti = None;
        e.coti = None;
        e.bound = None;
        e.maybe_until = None;
    }

    fn home_ba(&mut self, p: &MnInbound<'_>, st: u8, seq: u16, units: u16, now: Instant) {
        let ha = p.packet.src;
        let Some(out) = self.home.out.as_ref().filter(|o| o.peer == ha) else {
            self.stats.ignored += 1;
            return;
        };
        if st == status::SEQUENCE_OUT_OF_WINDOW {
            // §11.7.3: the home agent's last accepted number is in the BA; go on from
            // there, at once.
            debug!(seq, "home agent says 135: resynchronising");
            self.home.seq = Seqno(seq);
            self.home_send_copy(now);
            return;
        }
        let Some(sent_at) = out.copy(seq).map(|c| c.at) else {
            self.stats.ignored += 1;
            return;
        };
        let out = self.home.out.take().expect("checked above");
        if st < 128 && !out.is_dereg() && units > 0 {
            self.stats.home_ba_accepted += 1;
            let granted = units_to_duration(units).min(out.lifetime.max(units_to_duration(1)));
            let mut refresh = granted * REFRESH_PERCENT / 100;
            if let Some(advice) = p.packet.repr.options.iter().find_map(|o| match o {
                MobilityOption::BindingRefreshAdvice { interval_units } => {
                    Some(units_to_duration(*interval_units))
                }
                _ => None,
            }) {
                // §6.2.4/§11.7.3: refresh by the advice when it comes sooner.
                if !advice.is_zero() {
                    refresh = refresh.min(advice);
                }
            }
            self.home.reg = Some(HomeBinding {
                ha,
                coa: out.coa,
                seq: Seqno(seq),
                lifetime: granted,
                expires: sent_at + granted,
                refresh_at: sent_at + refresh,
            });
            self.home.refresh_now = false;
        } else if st < 128 || out.is_dereg() {
            // A deregistration is over whatever the answer: accepted, or refused
            // because there was nothing to delete (133).
            self.stats.home_ba_accepted += 1;
            self.home.reg = None;
            self.home.maybe_until = None;
        } else {
            self.stats.home_ba_rejected += 1;
            debug!(st, %ha, "home registration refused");
            self.home_give_up(ha, Some(st));
        }
    }

    /// Registration at the current home agent is over: try the next one, or stop.
    fn home_give_up(&mut self, ha: Ipv6Addr, st: Option<u8>) {
        self.home.out = None;
        self.home.reg = None;
        let n = self.config.home_agents.len();
        let exhausted = st.is_some() && self.home.ha_index + 1 >= n;
        self.actions.push_back(Action::HomeRegistrationFailed {
            hoa: self.config.home_address,
            ha,
            status: st,
            exhausted,
        });
        if exhausted {
            self.home.failed = true;
        } else if n > 0 {
            self.home.ha_index = (self.home.ha_index + 1) % n;
        }
    }

    fn home_test(
        &mut self,
        p: &MnInbound<'_>,
        index: NonceIndex,
        cookie: &Cookie,
        token: &KeygenToken,
        now: Instant,
    ) {
        let hoa = self.config.home_address;
        let away = matches!(self.location(), Location::Away(_));
        let ha = self.home_agent();
        let Some(e) = self.cns.get_mut(&p.packet.src) else {
            self.stats.ignored += 1;
            return;
        };
        // §11.6.2: to the home address, through the tunnel from the home agent while
        // away, with the cookie of the outstanding HoTI.
        let ok = e.hoti.as_ref().is_some_and(|t| t.cookie == *cookie)
            && p.packet.dst == hoa
            && p.packet.hao.is_none()
            && (!away || (p.tunnel_src.is_some() && p.tunnel_src == ha));
        if !ok {
            self.stats.ignored += 1;
            return;
        }
        e.hoti = None;
        e.home_token = Some(Token {
            index,
            token: *token,
            at: now,
            addr: hoa,
        });
    }

    fn care_of_test(
        &mut self,
        p: &MnInbound<'_>,
        index: NonceIndex,
        cookie: &Cookie,
        token: &KeygenToken,
        now: Instant,
    ) {
        let Some(e) = self.cns.get_mut(&p.packet.src) else {
            self.stats.ignored += 1;
            return;
        };
        // §11.6.2: to the care-of address the CoTI came from, directly.
        let ok = e
            .coti
            .as_ref()
            .is_some_and(|t| t.cookie == *cookie && t.addr == p.packet.dst)
            && p.tunnel_src.is_none()
            && p.rh2.is_none();
        if !ok {
            self.stats.ignored += 1;
            return;
        }
        let addr = p.packet.dst;
        e.coti = None;
        e.care_token = Some(Token {
            index,
            token: *token,
            at: now,
            addr,
        });
    }

    fn cn_ba(&mut self, p: &MnInbound<'_>, st: u8, seq: u16, units: u16, now: Instant) {
        let cn = p.packet.src;
        let Some(out) = self.cns.get(&cn).and_then(|e| e.out.as_ref()) else {
            self.stats.ignored += 1;
            return;
        };
        if matches!(
            st,
            status::EXPIRED_HOME_NONCE | status::EXPIRED_CARE_OF_NONCE | status::EXPIRED_NONCES
        ) {
            // §11.7.3: no Kbm exists for these, so they come unauthenticated; believe
            // one only for a sequence number we used, and redo the tests it names.
            if out.copy(seq).is_none() {
                self.stats.ignored += 1;
                return;
            }
            let e = self.cns.get_mut(&cn).expect("present");
            if st != status::EXPIRED_CARE_OF_NONCE {
                e.home_token = None;
            }
            if st != status::EXPIRED_HOME_NONCE {
                e.care_token = None;
            }
            e.out = None;
            return;
        }
        // Everything else is authenticated with the Kbm of the BU it answers (§6.1.8).
        let Some((covered, received)) = crate::wire::mh::auth_data_region(p.packet.raw) else {
            self.stats.ignored += 1;
            return;
        };
        let authentic = |c: &Copy| {
            c.kbm
                .as_ref()
                .is_some_and(|k| rr::verify_authenticator(k, &out.coa, &cn, &covered, &received))
        };
        if st == status::SEQUENCE_OUT_OF_WINDOW {
            // §11.7.3: the number in a 135 is the correspondent's last accepted one,
            // not ours, so any of our keys may have signed it.
            if !out.copies.iter().any(authentic) {
                self.stats.ignored += 1;
                return;
            }
            self.cns.get_mut(&cn).expect("present").seq = Seqno(seq);
            self.cn_send_copy(cn, now);
            return;
        }
        let Some(sent_at) = out.copy(seq).filter(|c| authentic(c)).map(|c| c.at) else {
            self.stats.ignored += 1;
            return;
        };
        let e = self.cns.get_mut(&cn).expect("present");
        let out = e.out.take().expect("checked above");
        if st >= 128 {
            debug!(%cn, st, "correspondent refused the binding: no route optimisation");
            Self::disable(e);
            return;
        }
        self.stats.cn_ba_accepted += 1;
        if out.is_dereg() || units == 0 {
            e.bound = None;
            e.maybe_until = None;
        } else {
            let granted = units_to_duration(units).min(out.lifetime);
            e.bound = Some(CnBinding {
                coa: out.coa,
                seq: Seqno(seq),
                lifetime: granted,
                expires: sent_at + granted,
                refresh_at: sent_at + granted * REFRESH_PERCENT / 100,
                acked: true,
            });
            e.refresh_now = false;
        }
    }

    // ---- retransmissions -------------------------------------------------------------

    fn home_retransmit(&mut self, now: Instant) {
        let Some(out) = self.home.out.as_ref() else {
            return;
        };
        if out.backoff.poll_timeout().is_some_and(|d| d > now) {
            return;
        }
        let max = self.config.max_ha_consecutive_resends;
        if max > 0
            && !out.is_dereg()
            && out.backoff.attempts() > max
            && self.config.home_agents.len() > 1
        {
            // umip `MnMaxHaConsecutiveResends`: this home agent does not answer.
            let ha = out.peer;
            self.home_give_up(ha, None);
            return;
        }
        self.home_send_copy(now);
    }

    fn cn_retransmit(&mut self, cn: Ipv6Addr, now: Instant) {
        let max = self.config.max_cn_consecutive_resends;
        let Some(e) = self.cns.get_mut(&cn) else {
            return;
        };
        let due = |b: &Backoff| b.poll_timeout().is_some_and(|d| d <= now);
        let over = |b: &Backoff| max > 0 && b.attempts() > max;
        let mut give_up = false;
        let mut resend_hoti = false;
        let mut resend_coti = false;
        let mut resend_bu = false;
        if let Some(t) = e.hoti.as_ref().filter(|t| due(&t.backoff)) {
            give_up |= over(&t.backoff);
            resend_hoti = true;
        }
        if let Some(t) = e.coti.as_ref().filter(|t| due(&t.backoff)) {
            give_up |= over(&t.backoff);
            resend_coti = true;
        }
        if let Some(o) = e.out.as_ref().filter(|o| due(&o.backoff)) {
            give_up |= over(&o.backoff);
            resend_bu = true;
        }
        if give_up {
            debug!(%cn, "correspondent does not answer: no route optimisation");
            Self::disable(e);
            return;
        }
        if resend_hoti {
            self.send_hoti(cn, now);
        }
        if resend_coti {
            self.send_coti_again(cn, now);
        }
        if resend_bu {
            self.cn_send_copy(cn, now);
        }
    }

    // ---- the driver ------------------------------------------------------------------

    /// Brings the Binding Update List towards what our location asks for, then tells
    /// the data path what changed and computes the next wake-up.
    pub fn drive(&mut self, now: Instant) {
        let loc = self.location();
        self.expire(now);
        self.drive_home(loc, now);
        let cns: Vec<Ipv6Addr> = self.cns.keys().copied().collect();
        for cn in cns {
            self.drive_cn(cn, loc, now);
        }
        self.update_datapath(loc);
        self.wakeup = self.next_wakeup(loc, now);
    }

    fn expire(&mut self, now: Instant) {
        if self.home.reg.as_ref().is_some_and(|r| r.expires <= now) {
            debug!("home registration expired");
            self.home.reg = None;
        }
        if self.home.maybe_until.is_some_and(|t| t <= now) {
            self.home.maybe_until = None;
        }
        for e in self.cns.values_mut() {
            if e.bound.as_ref().is_some_and(|b| b.expires <= now) {
                e.bound = None;
            }
            if e.maybe_until.is_some_and(|t| t <= now) {
                e.maybe_until = None;
            }
            if e.home_token.is_some_and(|t| !t.usable(now)) {
                e.home_token = None;
            }
            if e.care_token.is_some_and(|t| !t.usable(now)) {
                e.care_token = None;
            }
        }
    }

    fn drive_home(&mut self, loc: Location, now: Instant) {
        if self.held {
            self.home.out = None;
            return;
        }
        let Some(ha) = self.home_agent() else {
            return;
        };
        if self.home.failed {
            return;
        }
        let hoa = self.config.home_address;
        let (coa, lifetime) = match loc {
            Location::Detached => {
                // Nothing can be sent; start over once attached.
                self.home.out = None;
                return;
            }
            Location::Away(coa) => {
                if self
                    .home
                    .out
                    .as_ref()
                    .is_some_and(|o| o.peer == ha && o.coa == coa && !o.is_dereg())
                {
                    return;
                }
                let current = self.home.reg.as_ref().is_some_and(|r| {
                    r.ha == ha && r.coa == coa && now < r.refresh_at && !self.home.refresh_now
                });
                if current && self.home.out.is_none() {
                    return;
                }
                (
                    coa,
                    self.config.max_ha_binding_life.min(MAX_BINDING_LIFETIME),
                )
            }
            Location::Home => {
                if self.home.out.as_ref().is_some_and(|o| o.is_dereg()) {
                    return;
                }
                // §11.5.4: deregister whatever a home agent may still hold.
                if self.home.reg.is_none() && self.home.maybe_until.is_none() {
                    self.home.out = None;
                    return;
                }
                (hoa, Duration::ZERO)
            }
        };
        let allowed = self.home.limiter.allowed_at(now);
        if allowed > now {
            self.home.defer_until = Some(allowed);
            self.home.out = None;
            return;
        }
        self.home.defer_until = None;
        // §11.8: the first registration waits longer for the home agent's DAD.
        let initial = if self.home.reg.as_ref().is_some_and(|r| r.ha == ha) {
            self.config.initial_bindack_timeout_rereg
        } else {
            self.config.initial_bindack_timeout_first_reg
        };
        self.home.out = Some(Outstanding {
            peer: ha,
            coa,
            lifetime,
            copies: VecDeque::new(),
            first_sent: now,
            initial,
            backoff: Backoff::new(initial, MAX_BINDACK_TIMEOUT),
        });
        self.home.refresh_now = false;
        self.home_send_copy(now);
    }

    /// Sends the outstanding home BU again under the next sequence number.
    fn home_send_copy(&mut self, now: Instant) {
        let hoa = self.config.home_address;
        let loc = self.location();
        let Some(out) = self.home.out.as_mut() else {
            return;
        };
        self.home.seq = self.home.seq.next();
        let seq = self.home.seq;
        out.record(seq, now, None);
        self.home.limiter.record(now);
        if !out.is_dereg() {
            let until = now + out.lifetime + DELIVERY_SLACK;
            self.home.maybe_until = Some(self.home.maybe_until.map_or(until, |t| t.max(until)));
        }
        let units = match lifetime_units(out.lifetime) {
            0 if !out.is_dereg() => 1,
            u => u,
        };
        // §11.7.1: A and H; the Alternate Care-of Address option (umip always sends
        // it, and the IPsec protection of the BU then covers the care-of address).
        let repr = MhRepr {
            message: Message::BindingUpdate {
                sequence: seq.get(),
                flags: BuFlags {
                    a: true,
                    h: true,
                    ..BuFlags::default()
                },
                lifetime_units: units,
            },
            options: vec![MobilityOption::AlternateCareOf(out.coa)],
        };
        // From the care-of address with the home address in a HAO while away; from
        // the home address itself when deregistering at home (§11.5.4).
        let (src, hao) = match loc {
            Location::Away(coa) if !out.is_dereg() || out.coa != hoa => (coa, Some(hoa)),
            _ => (hoa, None),
        };
        let peer = out.peer;
        self.stats.home_bu_sent += 1;
        self.actions
            .push_back(Action::Send(mn_transmit(src, peer, hao, None, repr, None)));
    }

    fn goal(&self, e: &CnEntry, loc: Location) -> Goal {
        if e.disabled {
            return Goal::Idle;
        }
        let registered = self.home.reg.as_ref().map(|r| r.coa);
        let maybe_bound = e.bound.is_some() || e.maybe_until.is_some() || e.out.is_some();
        match loc {
            Location::Detached => Goal::Wait,
            Location::Home if maybe_bound => Goal::Unbind(self.config.home_address),
            Location::Home => Goal::Idle,
            Location::Away(coa) => {
                let want = e.wanted && self.config.route_optimization;
                // §11.7.2: correspondents learn only a registered care-of address, and
                // HoTI/HoT need the tunnel.
                let ready = registered == Some(coa);
                match (want, maybe_bound, ready) {
                    (true, _, true) => Goal::Bind(coa),
                    (true, _, false) => Goal::Wait,
                    (false, true, true) => Goal::Unbind(coa),
                    (false, true, false) => Goal::Wait,
                    (false, false, _) => Goal::Idle,
                }
            }
        }
    }

    fn drive_cn(&mut self, cn: Ipv6Addr, loc: Location, now: Instant) {
        let Some(e) = self.cns.get(&cn) else {
            return;
        };
        let goal = self.goal(e, loc);
        let home_left = self
            .home
            .reg
            .as_ref()
            .map_or(Duration::ZERO, |r| r.expires.saturating_duration_since(now));
        let max_life = self.config.max_cn_binding_life;
        let e = self.cns.get_mut(&cn).expect("looked up above");
        let (coa, lifetime) = match goal {
            Goal::Idle => {
                e.out = None;
                e.hoti = None;
                e.coti = None;
                if !e.wanted && !e.disabled && e.bound.is_none() {
                    // Nothing left to remember about this correspondent.
                    self.cns.remove(&cn);
                }
                return;
            }
            Goal::Wait => return,
            Goal::Bind(coa) => {
                if e.out
                    .as_ref()
                    .is_some_and(|o| o.coa == coa && !o.is_dereg())
                {
                    return;
                }
                let current = e
                    .bound
                    .as_ref()
                    .is_some_and(|b| b.coa == coa && now < b.refresh_at && !e.refresh_now);
                if current && e.out.is_none() {
                    // Keep the tokens fresh while the binding is in use, so the next
                    // movement or refresh needs no home test (§5.2.5).
                    if e.hoti.is_none() && e.home_token.map_or(true, |t| t.refresh_at() <= now) {
                        self.send_hoti(cn, now);
                    }
                    let e = self.cns.get_mut(&cn).expect("present");
                    if e.coti.is_none()
                        && e.care_token
                            .map_or(true, |t| t.refresh_at() <= now || t.addr != coa)
                    {
                        self.send_coti(cn, coa, now);
                    }
                    return;
                }
                // §11.7.2: no longer than the home registration has left.
                (coa, max_life.min(home_left).min(MAX_BINDING_LIFETIME))
            }
            Goal::Unbind(from) => {
                if e.out.as_ref().is_some_and(|o| o.is_dereg()) {
                    return;
                }
                (from, Duration::ZERO)
            }
        };
        let dereg = lifetime.is_zero();
        if !dereg && lifetime_units(lifetime) == 0 {
            // The home registration is about to end: wait for its refresh.
            return;
        }
        let home_ok = e.home_token.is_some_and(|t| t.usable(now));
        let care_ok = dereg || e.care_token.is_some_and(|t| t.usable(now) && t.addr == coa);
        if !home_ok && e.hoti.is_none() {
            self.send_hoti(cn, now);
        }
        let e = self.cns.get_mut(&cn).expect("present");
        if !care_ok && e.coti.as_ref().map_or(true, |t| t.addr != coa) {
            self.send_coti(cn, coa, now);
        }
        if !(home_ok && care_ok) {
            return;
        }
        let e = self.cns.get_mut(&cn).expect("present");
        let allowed = e.limiter.allowed_at(now);
        if allowed > now {
            e.defer_until = Some(allowed);
            e.out = None;
            return;
        }
        e.defer_until = None;
        e.refresh_now = false;
        let initial = self.config.initial_bindack_timeout_rereg;
        e.out = Some(Outstanding {
            peer: cn,
            coa,
            lifetime,
            copies: VecDeque::new(),
            first_sent: now,
            initial,
            backoff: Backoff::new(initial, MAX_BINDACK_TIMEOUT),
        });
        self.cn_send_copy(cn, now);
    }

    /// Sends the outstanding BU to `cn` under the next sequence number, or drops it
    /// when its tokens are too old (the driver then reruns the tests).
    fn cn_send_copy(&mut self, cn: Ipv6Addr, now: Instant) {
        let hoa = self.config.home_address;
        let ack = self.config.use_cn_bu_ack;
        // §11.7.2: each copy asks no more than the home registration has left then.
        let home_left = self
            .home
            .reg
            .as_ref()
            .map_or(Duration::ZERO, |r| r.expires.saturating_duration_since(now));
        let Some(e) = self.cns.get_mut(&cn) else {
            return;
        };
        let Some(out) = e.out.as_mut() else {
            return;
        };
        let dereg = out.is_dereg();
        let home = e.home_token.filter(|t| t.usable(now));
        let care = e.care_token.filter(|t| t.usable(now) && t.addr == out.coa);
        let Some(home) = home else {
            e.out = None;
            return;
        };
        if !dereg && (care.is_none() || lifetime_units(out.lifetime.min(home_left)) == 0) {
            // Stale tokens (rerun the tests), or the home registration is about to end
            // (wait for its refresh): the driver takes it from here.
            e.out = None;
            return;
        }
        // §5.2.6: a deletion is authorised by the home token alone.
        let care = if dereg { None } else { care };
        let kbm = rr::kbm(&home.token, care.as_ref().map(|t| &t.token));
        e.seq = e.seq.next();
        let seq = e.seq;
        if ack {
            out.record(seq, now, Some(kbm));
        }
        e.limiter.record(now);
        let units = lifetime_units(out.lifetime.min(home_left));
        let repr = MhRepr {
            message: Message::BindingUpdate {
                sequence: seq.get(),
                flags: BuFlags {
                    a: ack,
                    ..BuFlags::default()
                },
                lifetime_units: units,
            },
            options: vec![
                MobilityOption::NonceIndices {
                    home: home.index,
                    care_of: care.map_or(0, |t| t.index),
                },
                // §6.2.7: always last; the authenticator is filled in on emission.
                MobilityOption::BindingAuthData([0; 12]),
            ],
        };
        let coa = out.coa;
        // At home (CoA = HoA) the BU goes from the home address without a HAO.
        let (src, hao) = if coa == hoa {
            (hoa, None)
        } else {
            (coa, Some(hoa))
        };
        let lifetime = units_to_duration(units);
        let first_sent = out.first_sent;
        if dereg {
            e.maybe_until = e.maybe_until.filter(|_| ack);
        } else {
            let until = now + lifetime + DELIVERY_SLACK;
            e.maybe_until = Some(e.maybe_until.map_or(until, |t| t.max(until)));
        }
        if !ack {
            // Nothing will confirm it: believe it (a Binding Error will tell otherwise,
            // §11.3.6).
            e.out = None;
            e.bound = (!dereg).then(|| CnBinding {
                coa,
                seq,
                lifetime,
                expires: first_sent + lifetime,
                refresh_at: first_sent + lifetime * REFRESH_PERCENT / 100,
                acked: false,
            });
        }
        self.stats.cn_bu_sent += 1;
        self.actions.push_back(Action::Send(mn_transmit(
            src,
            cn,
            hao,
            None,
            repr,
            Some((&kbm, coa)),
        )));
    }

    fn cookie(&mut self) -> Option<Cookie> {
        match rr::generate_cookie(self.rng.as_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                debug!(?e, "no randomness for a cookie");
                None
            }
        }
    }

    /// HoTI (or its retransmission): from the home address, through the tunnel while
    /// away (§11.6.1).
    fn send_hoti(&mut self, cn: Ipv6Addr, now: Instant) {
        let hoa = self.config.home_address;
        let route = match self.location() {
            Location::Home => Some(None),
            Location::Away(coa) => self
                .home
                .reg
                .as_ref()
                .filter(|r| r.coa == coa)
                .map(|r| Some((coa, r.ha))),
            Location::Detached => None,
        };
        let Some(tunnel) = route else {
            if let Some(e) = self.cns.get_mut(&cn) {
                e.hoti = None;
            }
            return;
        };
        let fresh = self.cns.get(&cn).is_some_and(|e| e.hoti.is_none());
        let cookie = if fresh {
            match self.cookie() {
                Some(c) => c,
                None => return,
            }
        } else {
            [0; 8]
        };
        let Some(e) = self.cns.get_mut(&cn) else {
            return;
        };
        let t = e.hoti.get_or_insert_with(|| TestInit {
            cookie,
            addr: hoa,
            backoff: Backoff::standard(),
        });
        t.backoff.on_send(now);
        let repr = MhRepr {
            message: Message::HomeTestInit { cookie: t.cookie },
            options: vec![],
        };
        self.stats.test_inits_sent += 1;
        self.actions
            .push_back(Action::Send(mn_transmit(hoa, cn, None, tunnel, repr, None)));
    }

    /// CoTI: directly from the care-of address (§11.6.1). A retransmission keeps the
    /// address it tests.
    fn send_coti_again(&mut self, cn: Ipv6Addr, now: Instant) {
        let Some(coa) = self
            .cns
            .get(&cn)
            .and_then(|e| e.coti.as_ref().map(|t| t.addr))
        else {
            return;
        };
        if self.location() != Location::Away(coa) {
            if let Some(e) = self.cns.get_mut(&cn) {
                e.coti = None;
            }
            return;
        }
        self.send_coti(cn, coa, now);
    }

    fn send_coti(&mut self, cn: Ipv6Addr, coa: Ipv6Addr, now: Instant) {
        let fresh = self
            .cns
            .get(&cn)
            .is_some_and(|e| e.coti.as_ref().map_or(true, |t| t.addr != coa));
        let cookie = if fresh {
            match self.cookie() {
                Some(c) => c,
                None => return,
            }
        } else {
            [0; 8]
        };
        let Some(e) = self.cns.get_mut(&cn) else {
            return;
        };
        if fresh {
            e.coti = Some(TestInit {
                cookie,
                addr: coa,
                backoff: Backoff::standard(),
            });
        }
        let t = e.coti.as_mut().expect("set above");
        t.backoff.on_send(now);
        let repr = MhRepr {
            message: Message::CareOfTestInit { cookie: t.cookie },
            options: vec![],
        };
        self.stats.test_inits_sent += 1;
        self.actions
            .push_back(Action::Send(mn_transmit(coa, cn, None, None, repr, None)));
    }

    // ---- data path -------------------------------------------------------------------

    fn update_datapath(&mut self, loc: Location) {
        let hoa = self.config.home_address;
        let tunnel = match loc {
            Location::Away(coa) => {
                let registered = self
                    .home
                    .reg
                    .as_ref()
                    .filter(|r| r.coa == coa)
                    .map(|r| (r.ha, coa));
                let optimistic = self
                    .home
                    .out
                    .as_ref()
                    .filter(|o| self.config.optimistic_handoff && o.coa == coa && !o.is_dereg())
                    .map(|o| (o.peer, coa));
                registered.or(optimistic)
            }
            _ => None,
        };
        let at_home_done = loc == Location::Home
            && self.home.reg.is_none()
            && self.home.out.is_none()
            && self.home.maybe_until.is_none();
        // A held home address is not ours to use: nothing to protect from leaking.
        let blocked = tunnel.is_none() && !at_home_done && !self.held;
        if self.installed.tunnel != tunnel {
            self.actions.push_back(match tunnel {
                Some((ha, coa)) => Action::HomeTunnelSet { hoa, ha, coa },
                None => Action::HomeTunnelClear { hoa },
            });
            self.installed.tunnel = tunnel;
        }
        if self.installed.blocked != Some(blocked) {
            self.actions.push_back(if blocked {
                Action::BlockHoa { hoa }
            } else {
                Action::UnblockHoa { hoa }
            });
            self.installed.blocked = Some(blocked);
        }
        let home_bul = match (&self.home.out, &self.home.reg) {
            (Some(o), _) => Some((o.peer, o.coa, o.is_dereg(), o.lifetime)),
            (None, Some(r)) => Some((r.ha, r.coa, false, r.lifetime)),
            (None, None) => None,
        };
        let key = home_bul.map(|(p, c, d, _)| (p, c, d));
        if self.installed.home_bul != key {
            if let Some((peer, ..)) = self.installed.home_bul {
                if key.map_or(true, |k| k.0 != peer) {
                    self.actions.push_back(Action::BulRemoved {
                        hoa,
                        peer,
                        home: true,
                    });
                }
            }
            if let Some((peer, coa, _, lifetime)) = home_bul {
                self.actions.push_back(Action::BulUpdated {
                    hoa,
                    peer,
                    coa,
                    lifetime,
                    home: true,
                });
            }
            self.installed.home_bul = key;
        }
        // Correspondents, including ones forgotten since the last call.
        let mut peers: Vec<Ipv6Addr> = self.cns.keys().copied().collect();
        peers.extend(self.installed.cn_bul.keys().copied());
        peers.extend(self.installed.ro.keys().copied());
        peers.sort();
        peers.dedup();
        for cn in peers {
            let e = self.cns.get(&cn);
            let ro = e
                .and_then(|e| e.bound.as_ref())
                .filter(|b| loc == Location::Away(b.coa))
                .map(|b| b.coa);
            if self.installed.ro.get(&cn).copied() != ro {
                self.actions.push_back(match ro {
                    Some(coa) => Action::RoStart { hoa, cn, coa },
                    None => Action::RoStop { hoa, cn },
                });
                match ro {
                    Some(coa) => self.installed.ro.insert(cn, coa),
                    None => self.installed.ro.remove(&cn),
                };
            }
            let bul = e.and_then(|e| match (&e.out, &e.bound) {
                (Some(o), _) => Some((o.coa, o.is_dereg(), o.lifetime)),
                (None, Some(b)) => Some((b.coa, false, b.lifetime)),
                (None, None) => None,
            });
            let key = bul.map(|(c, d, _)| (c, d));
            if self.installed.cn_bul.get(&cn).copied() != key {
                match bul {
                    Some((coa, dereg, lifetime)) => {
                        self.actions.push_back(Action::BulUpdated {
                            hoa,
                            peer: cn,
                            coa,
                            lifetime,
                            home: false,
                        });
                        self.installed.cn_bul.insert(cn, (coa, dereg));
                    }
                    None => {
                        self.actions.push_back(Action::BulRemoved {
                            hoa,
                            peer: cn,
                            home: false,
                        });
                        self.installed.cn_bul.remove(&cn);
                    }
                }
            }
        }
    }

    fn next_wakeup(&self, loc: Location, now: Instant) -> Option<Instant> {
        let mut times: Vec<Instant> = vec![];
        let h = &self.home;
        times.extend(h.out.as_ref().and_then(|o| o.backoff.poll_timeout()));
        times.extend(h.defer_until);
        times.extend(h.maybe_until);
        if let Some(r) = &h.reg {
            times.push(r.expires);
            if h.out.is_none() && loc == Location::Away(r.coa) {
                times.push(r.refresh_at);
            }
        }
        for e in self.cns.values() {
            times.extend(e.hoti.as_ref().and_then(|t| t.backoff.poll_timeout()));
            times.extend(e.coti.as_ref().and_then(|t| t.backoff.poll_timeout()));
            times.extend(e.out.as_ref().and_then(|o| o.backoff.poll_timeout()));
            times.extend(e.defer_until);
            times.extend(e.maybe_until);
            for t in [e.home_token, e.care_token].into_iter().flatten() {
                times.push(t.refresh_at());
                times.push(t.at + (MAX_TOKEN_LIFETIME - TOKEN_USE_MARGIN));
            }
            if let Some(b) = &e.bound {
                times.push(b.expires);
                if e.out.is_none() {
                    times.push(b.refresh_at);
                }
            }
        }
        // Deadlines already behind us were acted on (or wait for an event).
        times.into_iter().filter(|t| *t > now).min()
    }
}

/// A Mobility Header from the mobile node. The checksum pseudo-header uses the home
/// address as source when a HAO carries it (§6.1.1); the authenticator, if any, covers
/// (care-of address | correspondent | MH data) (§6.2.7, §11.7.2). Also what a
/// Distributed Servers node sends for the DSA (`ds::redirect`).
pub fn mn_transmit(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hao: Option<Ipv6Addr>,
    tunnel: Option<(Ipv6Addr, Ipv6Addr)>,
    repr: MhRepr,
    auth: Option<(&Kbm, Ipv6Addr)>,
) -> Transmit {
    let mut bytes = vec![0; repr.buffer_len()];
    let final_src = hao.unwrap_or(src);
    match auth {
        Some((kbm, coa)) => {
            repr.emit_with_authenticator(&mut bytes, &final_src, &dst, |covered| {
                rr::authenticator(kbm, &coa, &dst, covered)
            });
        }
        None => repr.emit(&mut bytes, &final_src, &dst),
    }
    Transmit {
        src,
        dst,
        rh2: None,
        repr,
        bytes,
        hao,
        tunnel,
    }
}
