//! The mobile node role (RFC 6275 §11), [`MnPath`]: the [`Mn`] machine (with the
//! correspondent node every role embeds) driven by movement detection over rtnetlink,
//! the home address kept on the node, DHAAD, and one of two engines for the packets —
//! the kernel's own MIP6 code ([`MnKernel`], `Datapath kernel`) or, on a kernel without
//! `CONFIG_IPV6_MIP6` and without `ip6_tunnel`, this file's `user` engine: netfilter
//! queues for what the node receives and what it sends from its home address, and an
//! `IPPROTO_RAW` socket for the Mobility Headers the machines write. What follows is
//! the `user` engine's.
//!
//! Queues (each bound before any rule that feeds it exists):
//!
//! - `N` (receive), raw PREROUTING, in this order, all `-m addrtype --dst-type LOCAL`:
//!   1. `-p 41`: the home agent's tunnel. Decapsulated only when the outer source is our
//!      home agent and the inner destination our home address (§11.3.1 / §10.4.5 seen
//!      from the mobile node); a Mobility Header inside (the Home Test, a Binding Refresh
//!      Request) goes to the machine with the tunnel's source, anything else is handed
//!      back with verdict `Repeat`, so the raw chain runs again on the inner packet.
//!   2. `-p 135`: every Mobility Header. Home Test Init, Care-of Test Init and Binding
//!      Update go to the correspondent node, the rest (BA, HoT, CoT, BRR, BE) to the
//!      mobile node, with the Type 2 Routing Header and Home Address option it came with.
//!   3. `-m rt --rt-type 2`: route-optimised traffic from a correspondent:
//!      [`rewrite::receive_rh2`], accepted only for our home address arriving at our
//!      current care-of address.
//!   4. `-m ipv6header --header dst --soft`: Home Address options, for the
//!      correspondent node part (as in [`super::user`]).
//!
//!   Plus the counting conntrack rule of the home agent ([`super::ha_user::defrag_rule`]):
//!   a tunnelled full-size packet may arrive fragmented.
//! - `N + 1` (home address out), raw OUTPUT `-s HoA/128 ! -p 135`, present while the
//!   node is away (or blocked): route-optimised correspondents get
//!   [`rewrite::send_hao`] (source := care-of address), everything else
//!   [`rewrite::encapsulate`] (CoA → HA), or is dropped while no registration covers the
//!   current location ([`Action::BlockHoa`]). The first packet to a new destination asks
//!   the machine for route optimisation with it ([`MnEvent::StartRo`], the ACQUIRE of
//!   umip's trigger policy), as `DoRouteOptimizationMN` and `MnRoPolicy` allow.
//!   Mobility Headers are left out: the machine builds its own, already tunnelled or
//!   with their Home Address option.
//! - `N + 2`: the correspondent node's route-optimisation queue ([`RoRules`]).
//!
//! Kernel state, each piece recorded in the daemon's registry with its undo:
//!
//! - **The home address stays on the node.** Away (or detached), as a /128 on `lo`
//!   (`nodad`, `IFA_F_HOMEADDRESS`; umip puts it on its tunnel device); at home, with the
//!   home prefix length on the interface attached to the home link. Without it, sockets
//!   could not bind to it and the Type 2 rewrite would have no local destination.
//! - **Home-address routing with a smaller MTU.** Away, a rule `from HoA lookup 252`
//!   and, in table 252 (umip's), a default route through the current link's router with
//!   an MTU 40 bytes below the link's (`proto 16`), so that TCP sizes its segments for
//!   the tunnel (and the 24 bytes of a Home Address option) instead of relying on
//!   fragmentation of the outer packet.
//!
//! Returning home (deregistration accepted) removes the rule, the route, the `lo` address
//! and the output rule; SIGTERM removes everything through the registry.

use super::drain;
use super::ha_user::defrag_rule;
use super::kernel::mn::MnKernel;
use super::mn_dhaad::MnDhaad;
use super::rewrite;
use super::user::{
    self, bind_queue, bind_receive_queue, check_ip6tables, drain_route_optimisation, send_transmit,
    Disposition, RoRules, Rule,
};
use super::Binding;
use crate::config::RoPolicy;
use crate::daemon::machine::{BindingCacheEntry, BindingUpdateListEntry, Ctx, Machine};
use crate::daemon::registry::{EntryId, Registry};
use crate::proto::cn::Cn;
use crate::proto::event::{is_unicast_routable, Action, Inbound, MnEvent, MnInbound, Transmit};
use crate::proto::mn::{Location, Mn};
use crate::proto::movement::{Attachment, Detector, Observation};
use crate::sys::nfqueue::{NfQueue, QueuedPacket, Verdict};
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::wire::mh::mh_type;
use crate::wire::packet::{self, Header, Ipv6Header, PacketBuilder, Payload};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::time::Instant;

/// Outer hop limit of the reverse tunnel (RFC 2473 §6.3).
const TUNNEL_HOP_LIMIT: u8 = 64;
/// What the tunnel (40 bytes) or a Home Address option (24) adds; HoA-sourced routes
/// get an MTU this much smaller than the link's.
pub const TUNNEL_OVERHEAD: u32 = 40;

// --- rules -------------------------------------------------------------------------------------

fn queue_rule(table: &'static str, chain: &'static str, m: &[&str], queue: u16) -> Rule {
    let q = queue.to_string();
    let mut spec: Vec<&str> = m.to_vec();
    spec.extend(["-j", "NFQUEUE", "--queue-num", q.as_str()]);
    Rule::new(table, chain, &spec)
}

/// The receive rules on queue `queue`, in evaluation order.
pub fn receive_rules(queue: u16) -> Vec<Rule> {
    let local = ["-m", "addrtype", "--dst-type", "LOCAL"];
    let with_local = |m: &[&str]| {
        let mut v = m.to_vec();
        v.extend(local);
        queue_rule("raw", "PREROUTING", &v, queue)
    };
    vec![
        with_local(&["-p", "41"]),
        with_local(&["-p", "135"]),
        with_local(&["-m", "rt", "--rt-type", "2"]),
        with_local(&["-m", "ipv6header", "--header", "dst", "--soft"]),
    ]
}

/// The rule that brings what leaves from the home address to queue `queue`.
pub fn output_rule(hoa: Ipv6Addr, queue: u16) -> Rule {
    let s = format!("{hoa}/128");
    queue_rule("raw", "OUTPUT", &["-s", &s, "!", "-p", "135"], queue)
}

// --- packets ---------------------------------------------------------------------------------

/// What the data path was told by the machine: where home-address traffic goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paths {
    /// (home agent, care-of address) of the accepted registration.
    pub tunnel: Option<(Ipv6Addr, Ipv6Addr)>,
    pub blocked: bool,
    /// Correspondent → care-of address, for route-optimised ones.
    pub ro: HashMap<Ipv6Addr, Ipv6Addr>,
    /// The kernel encapsulates for `tunnel` ([`super::mn_seg6`]): tunnelled packets pass
    /// unchanged.
    pub kernel_tunnel: bool,
}

/// What to do with a packet from the output queue.
#[derive(Debug, PartialEq, Eq)]
pub enum OutVerdict {
    /// Rewritten (tunnelled or with a Home Address option): let the kernel re-route it.
    Rewritten(Vec<u8>),
    /// At home and unblocked (or not from the home address): unchanged.
    Pass,
    Drop,
}

/// Decides a packet the node sends from its home address. Never panics.
pub fn outgoing(paths: &Paths, hoa: Ipv6Addr, payload: &[u8]) -> OutVerdict {
    let Ok(ip) = Ipv6Header::parse(payload) else {
        return OutVerdict::Pass;
    };
    if ip.src != hoa || super::ha_user::is_neighbour_discovery(&ip, payload) {
        // Neighbour Discovery stays on the link it is about: back home, the answer to the
        // home agent's solicitation for the home address is what lets the deregistration's
        // acknowledgement reach us.
        return OutVerdict::Pass;
    }
    let mut buf = payload.to_vec();
    if let Some(coa) = paths.ro.get(&ip.dst) {
        return match rewrite::send_hao(&mut buf, *coa) {
            Ok(()) => OutVerdict::Rewritten(buf),
            Err(_) => OutVerdict::Drop,
        };
    }
    if let Some((ha, coa)) = paths.tunnel {
        if paths.kernel_tunnel {
            return OutVerdict::Pass;
        }
        return match rewrite::encapsulate(&mut buf, coa, ha, TUNNEL_HOP_LIMIT) {
            Ok(()) => OutVerdict::Rewritten(buf),
            Err(_) => OutVerdict::Drop,
        };
    }
    if paths.blocked {
        OutVerdict::Drop
    } else {
        OutVerdict::Pass
    }
}

/// What to do with a packet from the receive queue.
#[derive(Debug, PartialEq, Eq)]
pub enum InVerdict {
    /// A Mobility Header for a machine: dropped from the kernel's path.
    Consumed,
    Accept(Option<Vec<u8>>),
    /// Decapsulated: run the chain again on the inner packet.
    Repeat(Vec<u8>),
    Drop,
}

/// Message types the correspondent node part answers (the rest are the mobile node's).
pub(crate) fn for_correspondent(t: u8) -> bool {
    matches!(
        t,
        mh_type::HOME_TEST_INIT | mh_type::CARE_OF_TEST_INIT | mh_type::BINDING_UPDATE
    )
}

/// Hands a Mobility Header to the mobile node machine. `Err` when the packet has none
/// (or a bad checksum: then `Ok(false)`, to be dropped).
fn mn_mobility(
    mn: &mut Mn,
    payload: &[u8],
    tunnel_src: Option<Ipv6Addr>,
    now: Instant,
    count: &mut impl FnMut(u8),
) -> Option<bool> {
    let pkt = packet::parse(payload).ok()?;
    let (repr, ok, offset) = pkt.headers.iter().find_map(|h| match h {
        Header::Mobility {
            repr,
            checksum_ok,
            offset,
        } => Some((repr, *checksum_ok, *offset)),
        _ => None,
    })?;
    if !ok {
        return Some(false);
    }
    let end = offset.saturating_add(repr.buffer_len()).min(payload.len());
    let raw = payload.get(offset..end)?;
    let hao = pkt.headers.iter().find_map(|h| match h {
        Header::DestinationOptions(d) => d.home_address(),
        _ => None,
    });
    let rh2 = pkt.headers.iter().find_map(|h| match h {
        Header::Type2Routing(r) => Some(r.home_address),
        _ => None,
    });
    count(repr.mh_type());
    mn.handle(
        MnEvent::Mh(MnInbound {
            packet: Inbound {
                src: pkt.ip.src,
                dst: pkt.ip.dst,
                hao,
                repr,
                raw,
            },
            rh2,
            tunnel_src,
        }),
        now,
    );
    Some(true)
}

/// Whether `payload` is a Home Test or Care-of Test the machine did not ask for.
fn unawaited_test(mn: &Mn, payload: &[u8]) -> bool {
    let Ok(pkt) = packet::parse(payload) else {
        return false;
    };
    pkt.headers.iter().any(|h| match h {
        Header::Mobility { repr, .. } => match &repr.message {
            crate::wire::mh::Message::HomeTest { cookie, .. }
            | crate::wire::mh::Message::CareOfTest { cookie, .. } => {
                !mn.awaits_test(&pkt.ip.src, cookie)
            }
            _ => false,
        },
        _ => false,
    })
}

/// Decides a packet from the receive queue and feeds the machines what it learns.
/// Never panics, whatever the bytes.
pub fn incoming(
    mn: &mut Mn,
    cn: &mut Cn,
    payload: &[u8],
    now: Instant,
    count: &mut impl FnMut(u8),
) -> InVerdict {
    let hoa = mn.home_address();
    let Ok(pkt) = packet::parse(payload) else {
        return InVerdict::Accept(None);
    };
    if pkt.headers.iter().any(|h| matches!(h, Header::Tunnel(_))) {
        let mut inner = payload.to_vec();
        return match rewrite::decapsulate(&mut inner) {
            Ok(t) if Some(t.outer_src) == mn.home_agent() && t.inner_dst == hoa => {
                if unawaited_test(mn, &inner) {
                    // Delivered to the home address as if it had arrived there: below.
                    return InVerdict::Repeat(inner);
                }
                match mn_mobility(mn, &inner, Some(t.outer_src), now, count) {
                    Some(_) => InVerdict::Consumed,
                    None => InVerdict::Repeat(inner),
                }
            }
            // Not from our home agent, or not for our home address.
            _ => InVerdict::Drop,
        };
    }
    let mh = pkt.headers.iter().find_map(|h| match h {
        Header::Mobility { repr, .. } => Some(repr.mh_type()),
        _ => None,
    });
    if let Some(t) = mh {
        if pkt.ip.dst == hoa && unawaited_test(mn, payload) {
            // A Distributed Servers contact node's home test for another node: its
            // socket on the home address takes it (`ds::redirect`). The cookie is what
            // authenticates it there, as here.
            return InVerdict::Accept(None);
        }
        if for_correspondent(t) {
            return match user::receive(cn, payload, now, count) {
                Disposition::Consumed => InVerdict::Consumed,
                Disposition::Accept(b) => InVerdict::Accept(b),
                Disposition::Drop => InVerdict::Drop,
            };
        }
        return match mn_mobility(mn, payload, None, now, count) {
            Some(true) => InVerdict::Consumed,
            _ => InVerdict::Drop,
        };
    }
    if pkt
        .headers
        .iter()
        .any(|h| matches!(h, Header::Type2Routing(_)))
    {
        let mut buf = payload.to_vec();
        let here = match mn.location() {
            Location::Away(coa) => Some(coa),
            _ => None,
        };
        return match rewrite::receive_rh2(&mut buf) {
            // §11.3.3: only our home address, at the care-of address we use.
            Ok(i) if i.home == hoa && Some(i.care_of) == here => InVerdict::Accept(Some(buf)),
            _ => InVerdict::Drop,
        };
    }
    match user::receive(cn, payload, now, count) {
        Disposition::Consumed => InVerdict::Consumed,
        Disposition::Accept(b) => InVerdict::Accept(b),
        Disposition::Drop => InVerdict::Drop,
    }
}

/// [`user::hand_back`] for a receive verdict that carries a packet.
pub fn ready_to_hand_back(v: InVerdict, p: &QueuedPacket) -> InVerdict {
    match v {
        InVerdict::Accept(Some(b)) => {
            user::hand_back(b, p).map_or(InVerdict::Drop, |b| InVerdict::Accept(Some(b)))
        }
        InVerdict::Repeat(b) => user::hand_back(b, p).map_or(InVerdict::Drop, InVerdict::Repeat),
        v => v,
    }
}

/// The whole IPv6 packet for a mobile node's [`Transmit`]: the Home Address option when
/// `hao` is set, the ip6ip6 tunnel when `tunnel` is; the Mobility Header exactly as the
/// machine emitted it. Returns (packet, where to send it).
pub fn build_packet(t: &Transmit) -> Option<(Vec<u8>, Ipv6Addr)> {
    if t.rh2.is_some() {
        // A correspondent's BA; not built here.
        return user::build_packet(t).map(|p| (p, t.dst));
    }
    let mut b = PacketBuilder::new(t.src, t.dst);
    b.home_address_option = t.hao;
    let mut pkt = b.build(Payload::Mobility(&t.repr));
    let at = pkt.len().checked_sub(t.bytes.len())?;
    if pkt.len() - at != t.repr.buffer_len() {
        return None;
    }
    pkt[at..].copy_from_slice(&t.bytes);
    match t.tunnel {
        Some((coa, ha)) => {
            rewrite::encapsulate(&mut pkt, coa, ha, TUNNEL_HOP_LIMIT).ok()?;
            Some((pkt, ha))
        }
        None => Some((pkt, t.dst)),
    }
}

/// Whether route optimisation with `cn` is wanted (`MnRoPolicy`, most specific first,
/// then `DoRouteOptimizationMN`).
pub fn ro_wanted(policies: &[RoPolicy], default: bool, cn: &Ipv6Addr) -> bool {
    policies
        .iter()
        .find(|p| p.correspondent == Some(*cn))
        .or_else(|| policies.iter().find(|p| p.correspondent.is_none()))
        .map_or(default, |p| p.enabled)
}

// --- the machine ------------------------------------------------------------------------------

/// Removes one kernel object; recorded in the daemon's registry.
pub type Undo = Box<dyn FnOnce() -> io::Result<()>>;

/// The kernel side of the home address: what the platform does for it (`sys::rtnl` in
/// the daemon; a recorder in tests).
pub trait HomeKernel {
    /// Puts the home address on `ifindex` with `prefix_len` (`lo` when away); returns the
    /// undo to record, or `None` when the address was already there (not ours to remove).
    fn add_home_address(
        &mut self,
        ifindex: u32,
        prefix_len: u8,
        away: bool,
    ) -> io::Result<Option<Undo>>;
    /// Installs (or replaces) the home-address route through `ifindex`: the rule and the
    /// table-252 default route with `mtu`. Returns the undo.
    fn set_home_route(&mut self, ifindex: u32, mtu_overhead: u32) -> io::Result<Undo>;
    /// `lo`'s interface index.
    fn loopback(&mut self) -> u32;
    /// Installs or moves the reverse tunnel in the kernel (`--tunnel seg6`): what leaves
    /// from the home address goes through `ifindex`, encapsulated from `coa` to `ha`.
    /// Returns the undo of all of it.
    fn set_reverse_tunnel(
        &mut self,
        ifindex: u32,
        ha: Ipv6Addr,
        coa: Ipv6Addr,
    ) -> io::Result<Undo> {
        let _ = (ifindex, ha, coa);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no reverse tunnel in the kernel here",
        ))
    }
    /// Link and address events since the last call (non-blocking).
    fn observations(&mut self) -> Vec<Observation>;
    /// A descriptor that becomes readable when events are waiting.
    fn event_fd(&self) -> Option<RawFd>;
}

/// Which kernel objects the data path holds for the home address.
#[derive(Default)]
struct Held {
    /// (interface, prefix length) of the home address, and its undo entry (None when it
    /// was there before us).
    address: Option<((u32, u8), Option<EntryId>)>,
    /// Interface of the home-address route, and its undo.
    route: Option<(u32, EntryId)>,
    output_rule: Option<EntryId>,
    /// (home agent, care-of address, interface) of the reverse tunnel in the kernel, and
    /// its undo.
    tunnel: Option<((Ipv6Addr, Ipv6Addr, u32), EntryId)>,
}

/// The `user` engine: the netfilter queues and the correspondent node's
/// route-optimisation rules.
struct Queues {
    rx: NfQueue,
    out: NfQueue,
    ro: NfQueue,
    out_queue: u16,
    ro_rules: RoRules,
}

/// What gives the mobile node's packets their Mobile IPv6 treatment.
enum Engine {
    Queues(Box<Queues>),
    Kernel(Box<MnKernel>),
}

/// Which engine [`MnPath::start`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// The `user` data path on netfilter queues `N` to `N + 2`.
    Queues(u16),
    /// The `kernel` data path (a kernel with `CONFIG_IPV6_MIP6` and `ip6_tunnel`).
    Kernel,
}

/// The mobile node role: the machines, movement detection and the home address, on
/// either engine.
pub struct MnPath {
    mn: Mn,
    cn: Cn,
    detector: Detector,
    kernel: Box<dyn HomeKernel>,
    engine: Engine,
    /// Raw IPv6 (header included): the user engine's Mobility Headers, DHAAD on both.
    raw: RawSocket,
    paths: Paths,
    held: Held,
    ro_policies: Vec<RoPolicy>,
    ro_default: bool,
    /// Destinations already offered to the machine for route optimisation.
    triggered: HashSet<Ipv6Addr>,
    /// Set at start: what the first reading of the kernel made the machine decide waits
    /// for the loop's first wake-up, which this asks for at once.
    kick: Option<Instant>,
    /// Home agent discovery, when no `HomeAgentAddress` was configured.
    dhaad: Option<MnDhaad>,
    /// `--tunnel seg6`: the reverse tunnel in the kernel ([`super::mn_seg6`]).
    kernel_tunnel: bool,
    /// Distributed Servers: the membership holds or releases the home registration.
    dsa: Option<crate::ds::contact_home::DsaLink>,
}

impl Queues {
    /// Binds queues `queue` to `queue + 2` and installs the receive rules.
    fn start(queue: u16, hoa: Ipv6Addr, registry: &mut Registry) -> Result<Queues, String> {
        check_ip6tables()?;
        let (out_queue, ro_queue) = match (queue.checked_add(1), queue.checked_add(2)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(format!(
                    "netfilter queue {queue}: a mobile node also uses the next two"
                ))
            }
        };
        let rx = bind_receive_queue(queue)?;
        let out = bind_queue(out_queue)?;
        let ro = bind_queue(ro_queue)?;
        for rule in receive_rules(queue).into_iter().chain([defrag_rule()]) {
            rule.install(registry)
                .map_err(|e| format!("cannot add a netfilter rule: {e}"))?;
        }
        tracing::info!(
            "mobile node {hoa}: user data path on netfilter queues {queue} (receive), {out_queue} (home address out) and {ro_queue} (route optimisation)"
        );
        Ok(Queues {
            rx,
            out,
            ro,
            out_queue,
            ro_rules: RoRules::start(ro_queue, registry)?,
        })
    }
}

impl MnPath {
    /// Starts `engine`, opens the raw socket, then reads the links and addresses the
    /// kernel has now.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        mn: Mn,
        cn: Cn,
        detector: Detector,
        kernel: Box<dyn HomeKernel>,
        ro_policies: Vec<RoPolicy>,
        engine: EngineChoice,
        registry: &mut Registry,
        now: Instant,
    ) -> Result<MnPath, String> {
        let hoa = mn.home_address();
        let ro_default = mn.config().route_optimization;
        let ro_possible = ro_default || ro_policies.iter().any(|p| p.enabled);
        let engine = match engine {
            EngineChoice::Queues(queue) => {
                Engine::Queues(Box::new(Queues::start(queue, hoa, registry)?))
            }
            EngineChoice::Kernel => Engine::Kernel(Box::new(MnKernel::start(
                hoa,
                ro_possible,
                cn.config().route_optimization,
                registry,
            )?)),
        };
        let raw = RawSocket::new(IPPROTO_RAW)
            .map_err(|e| format!("cannot open a raw IPv6 socket: {e}"))?;
        let mut path = MnPath {
            mn,
            cn,
            detector,
            kernel,
            engine,
            raw,
            paths: Paths::default(),
            held: Held::default(),
            ro_policies,
            ro_default,
            triggered: HashSet::new(),
            kick: Some(now),
            dhaad: None,
            kernel_tunnel: false,
            dsa: None,
        };
        path.read_kernel_events(now);
        Ok(path)
    }

    pub fn mn(&self) -> &Mn {
        &self.mn
    }

    /// Leaves the reverse tunnel to the kernel (`--tunnel seg6`, [`super::mn_seg6`]).
    pub fn enable_kernel_tunnel(&mut self) {
        self.kernel_tunnel = true;
    }

    /// Whether route optimisation may be started with some correspondent: then the
    /// output queue must see new destinations even with the tunnel in the kernel.
    fn ro_possible(&self) -> bool {
        self.ro_default || self.ro_policies.iter().any(|p| p.enabled)
    }

    /// Finds the home agent with DHAAD (§11.4.1) instead of a configured one.
    pub fn enable_dhaad(&mut self, dhaad: MnDhaad) {
        self.dhaad = Some(dhaad);
    }

    /// The home registration is the membership's to start and stop (the mobile node
    /// must have been made with `hold_home_registration`).
    pub fn follow_dsa(&mut self, link: crate::ds::contact_home::DsaLink) {
        self.dsa = Some(link);
    }

    fn apply_dsa_request(&mut self, now: Instant) {
        let Some(link) = &self.dsa else { return };
        if let Some(want) = link.take_request() {
            match want {
                Some(seq) => tracing::info!(
                    "home registration of {}: released, sequence {seq}",
                    self.mn.home_address()
                ),
                None => tracing::info!(
                    "home registration of {}: held (no longer the contact node)",
                    self.mn.home_address()
                ),
            }
            self.mn.set_home_registration(want, now);
        }
    }

    fn read_kernel_events(&mut self, now: Instant) {
        for o in self.kernel.observations() {
            for m in self.detector.observe(o) {
                tracing::info!("movement: {m:?}");
                self.mn.handle(MnEvent::Movement(m), now);
            }
        }
    }

    fn drain_rx(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        let Engine::Queues(q) = &mut self.engine else {
            return;
        };
        let (mn, cn) = (&mut self.mn, &mut self.cn);
        drain(
            "netfilter queue (receive)",
            &mut q.rx,
            NfQueue::recv,
            |rx, p| {
                let v = incoming(mn, cn, &p.payload, now, &mut |t| ctx.mh.count_received(t));
                let v = ready_to_hand_back(v, &p);
                let r = match &v {
                    InVerdict::Consumed | InVerdict::Drop => rx.verdict(p.id, Verdict::Drop, None),
                    InVerdict::Accept(None) => rx.verdict(p.id, Verdict::Accept, None),
                    InVerdict::Accept(Some(b)) => rx.verdict(p.id, Verdict::Accept, Some(b)),
                    InVerdict::Repeat(b) => rx.verdict(p.id, Verdict::Repeat, Some(b)),
                };
                if let Err(e) = r {
                    tracing::warn!("netfilter queue (receive): verdict: {e}");
                }
            },
        );
    }

    fn drain_out(&mut self, now: Instant) {
        let hoa = self.mn.home_address();
        // Destinations of tunnelled packets, offered for route optimisation once the
        // queue is drained (the machine is not reachable from inside the loop).
        let mut tunnelled = Vec::new();
        let paths = &self.paths;
        let Engine::Queues(q) = &mut self.engine else {
            return;
        };
        drain(
            "netfilter queue (home address out)",
            &mut q.out,
            NfQueue::recv,
            |out, p| {
                let v = outgoing(paths, hoa, &p.payload);
                let through_tunnel = match v {
                    OutVerdict::Rewritten(_) => true,
                    OutVerdict::Pass => paths.kernel_tunnel,
                    OutVerdict::Drop => false,
                };
                if let (true, Some((ha, _))) = (through_tunnel, paths.tunnel) {
                    if let Ok(ip) = Ipv6Header::parse(&p.payload) {
                        if !tunnelled.contains(&(ip.dst, ha)) {
                            tunnelled.push((ip.dst, ha));
                        }
                    }
                }
                let r = match &v {
                    OutVerdict::Rewritten(b) => out.verdict(p.id, Verdict::Accept, Some(b)),
                    OutVerdict::Pass => out.verdict(p.id, Verdict::Accept, None),
                    OutVerdict::Drop => out.verdict(p.id, Verdict::Drop, None),
                };
                if let Err(e) = r {
                    tracing::warn!("netfilter queue (home address out): verdict: {e}");
                }
            },
        );
        for (dst, ha) in tunnelled {
            self.maybe_start_ro(dst, ha, now);
        }
    }

    /// The first tunnelled packet to `dst` offers it to the machine for route
    /// optimisation (umip's ACQUIRE).
    fn maybe_start_ro(&mut self, dst: Ipv6Addr, ha: Ipv6Addr, now: Instant) {
        if dst == ha
            || !is_unicast_routable(&dst)
            || self.paths.ro.contains_key(&dst)
            || !self.triggered.insert(dst)
        {
            return;
        }
        if ro_wanted(&self.ro_policies, self.ro_default, &dst) {
            tracing::info!("route optimisation with {dst}: starting");
            self.mn.handle(MnEvent::StartRo { cn: dst }, now);
        }
    }

    fn send(&self, t: &Transmit, ctx: &mut Ctx<'_>) {
        if let Engine::Kernel(k) = &self.engine {
            return k.send_mn(t, ctx);
        }
        let Some((pkt, to)) = build_packet(t) else {
            tracing::warn!("not sending {}: cannot build it", t.repr);
            return;
        };
        match self.raw.send_to(&pkt, to) {
            Ok(_) => {
                ctx.mh.count_sent(t.repr.mh_type());
                tracing::debug!("sent {} {} -> {}", t.repr, t.src, t.dst);
            }
            Err(e) => tracing::warn!("sending {} to {}: {e}", t.repr, t.dst),
        }
    }

    /// Applies one of the mobile node machine's actions; what it sends is returned, to
    /// leave once the kernel matches the machine (the kernel engine's Binding Update
    /// needs its state, a deregistration from home the home binding's objects gone).
    fn apply_mn_action(&mut self, a: Action, sends: &mut Vec<Transmit>) {
        match a {
            Action::Send(t) => sends.push(t),
            Action::HomeTunnelSet { ha, coa, .. } => {
                tracing::info!("home registration: tunnel {coa} <-> {ha}");
                self.paths.tunnel = Some((ha, coa));
            }
            Action::HomeTunnelClear { .. } => {
                tracing::info!("home tunnel cleared");
                self.paths.tunnel = None;
            }
            Action::BlockHoa { .. } => self.paths.blocked = true,
            Action::UnblockHoa { .. } => self.paths.blocked = false,
            Action::RoStart { cn, coa, .. } => {
                tracing::info!("route optimisation with {cn} from {coa}");
                self.paths.ro.insert(cn, coa);
            }
            Action::RoStop { cn, .. } => {
                tracing::info!("route optimisation with {cn}: off");
                self.paths.ro.remove(&cn);
                // Offer it again on the next packet (a new care-of address, say).
                self.triggered.remove(&cn);
            }
            Action::HomeRegistrationFailed {
                ha,
                status,
                exhausted,
                ..
            } => tracing::warn!(
                "home registration with {ha} failed (status {status:?}){}",
                if exhausted {
                    "; no other home agent"
                } else {
                    ""
                }
            ),
            other => tracing::debug!("mobile node: {other:?}"),
        }
    }

    /// Brings the home address, its route and the output rule in line with where the
    /// machine says we are.
    fn sync_kernel(&mut self, registry: &mut Registry) {
        let hoa = self.mn.home_address();
        let loc = self.mn.location();
        let attached = |want: &dyn Fn(&Attachment) -> bool| {
            self.detector
                .attachments()
                .iter()
                .find(|(_, a)| want(a))
                .map(|(i, _)| *i)
        };
        let home_len = self.detector.config().home_prefix.1;
        let held = self.mn.home_held();
        // A held home address (the DSA of a node that is not the contact) must not be
        // local, or this node's own frames to the DSA would never leave it.
        let want_addr = match loc {
            _ if held => None,
            Location::Home => attached(&|a| *a == Attachment::Home).map(|i| (i, home_len)),
            Location::Away(_) | Location::Detached => Some((self.kernel.loopback(), 128)),
        };
        let queues = matches!(self.engine, Engine::Queues(_));
        // The kernel engine's home-address route is the tunnel's, in the plan.
        let want_route = match loc {
            _ if held || !queues => None,
            Location::Away(coa) => attached(&|a| *a == Attachment::Away(coa)),
            _ => None,
        };
        if self.held.address.as_ref().map(|(k, _)| *k) != want_addr {
            if let Some((_, Some(id))) = self.held.address.take() {
                if let Err(e) = registry.undo(id) {
                    tracing::warn!("{e}");
                }
            }
            self.held.address = None;
            if let Some((idx, len)) = want_addr {
                let away = !matches!(loc, Location::Home);
                match self.kernel.add_home_address(idx, len, away) {
                    Ok(undo) => {
                        let id = undo.map(|u| {
                            registry
                                .record(format!("home address {hoa}/{len} on interface {idx}"), u)
                        });
                        self.held.address = Some(((idx, len), id));
                    }
                    Err(e) => tracing::error!("home address {hoa}/{len}: {e}"),
                }
            }
        }
        if self.held.route.map(|(i, _)| i) != want_route {
            if let Some((_, id)) = self.held.route.take() {
                if let Err(e) = registry.undo(id) {
                    tracing::warn!("{e}");
                }
            }
            if let Some(idx) = want_route {
                match self.kernel.set_home_route(idx, TUNNEL_OVERHEAD) {
                    Ok(undo) => {
                        let id = registry.record(
                            format!("home-address rule and route (table 252) via interface {idx}"),
                            undo,
                        );
                        self.held.route = Some((idx, id));
                    }
                    // No router on the link yet: the next route event tries again.
                    Err(e) => tracing::info!("home-address route via {idx}: {e}"),
                }
            }
        }
        self.sync_kernel_tunnel(want_route, registry);
        let bindings = self.kernel_bindings();
        let out_queue = match &mut self.engine {
            Engine::Kernel(k) => return k.sync(&bindings, registry),
            Engine::Queues(q) => q.out_queue,
        };
        let want_rule = if self.paths.kernel_tunnel {
            // The kernel tunnels; the queue only starts and does route optimisation.
            !self.paths.ro.is_empty() || self.ro_possible()
        } else {
            self.paths.blocked || self.paths.tunnel.is_some() || !self.paths.ro.is_empty()
        };
        match (want_rule, self.held.output_rule) {
            (true, None) => match output_rule(hoa, out_queue).install(registry) {
                Ok(id) => self.held.output_rule = Some(id),
                Err(e) => tracing::error!("home address out: cannot add its rule: {e}"),
            },
            (false, Some(id)) => {
                self.held.output_rule = None;
                if let Err(e) = registry.undo(id) {
                    tracing::warn!("{e}");
                }
            }
            _ => {}
        }
    }

    /// With `--tunnel seg6`: the reverse tunnel in the kernel follows the registration
    /// (`paths.tunnel`) through the interface of the current care-of address
    /// (`route_if`). A move replaces it in place; `paths.kernel_tunnel` says whether the
    /// kernel's matches the registration, so the queue encapsulates until it does.
    fn sync_kernel_tunnel(&mut self, route_if: Option<u32>, registry: &mut Registry) {
        let want = match (self.kernel_tunnel, self.paths.tunnel, route_if) {
            (true, Some((ha, coa)), Some(i)) => Some((ha, coa, i)),
            _ => None,
        };
        if self.held.tunnel.map(|(k, _)| k) != want {
            let old = self.held.tunnel.take();
            match want {
                Some((ha, coa, i)) => match self.kernel.set_reverse_tunnel(i, ha, coa) {
                    Ok(undo) => {
                        // Replaced in place: the old undo would remove the new one.
                        if let Some((_, id)) = old {
                            registry.forget(id);
                        }
                        let id = registry.record(
                            format!("reverse tunnel {coa} -> {ha} (kernel, interface {i})"),
                            undo,
                        );
                        self.held.tunnel = Some(((ha, coa, i), id));
                    }
                    Err(e) => {
                        tracing::error!("reverse tunnel {coa} -> {ha} in the kernel: {e}");
                        self.held.tunnel = old;
                    }
                },
                None => {
                    if let Some((_, id)) = old {
                        if let Err(e) = registry.undo(id) {
                            tracing::warn!("{e}");
                        }
                    }
                }
            }
        }
        self.paths.kernel_tunnel = self
            .held
            .tunnel
            .is_some_and(|((ha, coa, _), _)| self.paths.tunnel == Some((ha, coa)));
    }

    /// The kernel engine's bindings for what the machine says now: the home binding
    /// and each correspondent's Binding Update (their Home Address option states), route
    /// optimisation, and the block while no registration covers the node.
    fn kernel_bindings(&self) -> Vec<Binding> {
        let hoa = self.mn.home_address();
        let mut v = Vec::new();
        // A Binding Update sent from home carries no option: nothing to install for it.
        for r in self.mn.bul().into_iter().filter(|r| r.coa != hoa) {
            v.push(if r.home {
                Binding::MnHome {
                    hoa,
                    coa: r.coa,
                    ha: r.peer,
                    acknowledged: self.paths.tunnel == Some((r.peer, r.coa)),
                }
            } else {
                Binding::MnCorrespondentUpdate {
                    hoa,
                    coa: r.coa,
                    cn: r.peer,
                }
            });
        }
        if let Some((ha, coa)) = self.paths.tunnel {
            let key = Binding::MnHome {
                hoa,
                coa,
                ha,
                acknowledged: true,
            };
            if !v.iter().any(|b| b.key() == key.key()) {
                v.push(key);
            }
        }
        v.extend(
            self.paths
                .ro
                .iter()
                .map(|(&cn, &coa)| Binding::MnRouteOptimization { hoa, coa, cn }),
        );
        if self.paths.blocked {
            v.push(Binding::MnBlock { hoa });
        }
        v
    }

    /// What `mip6ctl status` shows of the mobile node.
    pub fn status(&self) -> Value {
        let loc = match self.mn.location() {
            Location::Detached => json!({"state": "detached"}),
            Location::Home => json!({"state": "home"}),
            Location::Away(coa) => json!({"state": "away", "care_of_address": coa.to_string()}),
        };
        json!({
            "home_address": self.mn.home_address().to_string(),
            "datapath": match self.engine {
                Engine::Queues(_) => "user",
                Engine::Kernel(_) => "kernel",
            },
            "home_agent": self.mn.home_agent().map(|a| a.to_string()),
            "location": loc,
            "registered": self.mn.home_binding().is_some(),
            "tunnel": self.paths.tunnel.map(|(ha, coa)| json!({"home_agent": ha.to_string(), "care_of_address": coa.to_string()})),
            "blocked": self.paths.blocked,
            "kernel_tunnel": self.paths.kernel_tunnel,
            "home_agent_discovery": self.dhaad.as_ref().map(MnDhaad::status),
            "route_optimised": self.paths.ro.keys().map(|a| a.to_string()).collect::<Vec<_>>(),
            "interfaces": self.detector.attachments().iter().map(|(i, a)| json!({
                "index": i,
                "name": self.detector.name(*i),
                "attachment": format!("{a:?}"),
            })).collect::<Vec<_>>(),
        })
    }
}

impl Machine for MnPath {
    fn name(&self) -> &str {
        "mn"
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.kick,
            self.mn.poll_timeout(),
            self.cn.poll_timeout(),
            self.dhaad.as_ref().and_then(MnDhaad::poll_timeout),
            self.dsa.as_ref().and_then(|l| l.pending_since()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.kick = None;
        self.apply_dsa_request(now);
        if self.mn.poll_timeout().is_some_and(|t| t <= now) {
            self.mn.handle_timeout(now);
        }
        if self.cn.poll_timeout().is_some_and(|t| t <= now) {
            if let Engine::Kernel(k) = &self.engine {
                k.report_use(&mut self.cn, now);
            }
            self.cn.handle_timeout(now);
        }
        if let Some(d) = self.dhaad.as_mut() {
            d.drive(&mut self.mn, &self.raw, now);
        }
    }

    fn binding_cache(&self, now: Instant) -> Vec<BindingCacheEntry> {
        user::cache_rows(&self.cn, now)
    }

    fn binding_update_list(&self, now: Instant) -> Vec<BindingUpdateListEntry> {
        let hoa = self.mn.home_address();
        let ack = self.mn.config().use_cn_bu_ack;
        self.mn
            .bul()
            .into_iter()
            .map(|r| BindingUpdateListEntry {
                peer: r.peer,
                home_address: hoa,
                care_of_address: r.coa,
                lifetime: r.expires.map_or(0, |e| {
                    u32::try_from(e.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
                }),
                sequence: r.seq.0,
                flags: match (r.home, ack) {
                    (true, _) => "AH".into(),
                    (false, true) => "A".into(),
                    (false, false) => String::new(),
                },
                state: if r.pending { "ack" } else { "bound" }.into(),
            })
            .collect()
    }

    fn sources(&self) -> Vec<RawFd> {
        let mut v = match &self.engine {
            Engine::Queues(q) => vec![q.rx.as_raw_fd(), q.out.as_raw_fd(), q.ro.as_raw_fd()],
            Engine::Kernel(k) => k.fds().to_vec(),
        };
        v.extend(self.kernel.event_fd());
        v.extend(self.dhaad.as_ref().map(MnDhaad::fd));
        v
    }

    fn on_readable(&mut self, fd: RawFd, now: Instant, ctx: &mut Ctx<'_>) {
        let (rx, out, ro) = match &mut self.engine {
            Engine::Queues(q) => (q.rx.as_raw_fd(), q.out.as_raw_fd(), q.ro.as_raw_fd()),
            Engine::Kernel(k) if k.owns(fd) => {
                let acquired = k.on_readable(fd, &mut self.mn, &mut self.cn, now, ctx);
                if let Some((ha, _)) = self.paths.tunnel {
                    for peer in acquired {
                        self.maybe_start_ro(peer, ha, now);
                    }
                }
                return;
            }
            Engine::Kernel(_) => (-1, -1, -1),
        };
        if fd == rx {
            self.drain_rx(now, ctx);
        } else if fd == out {
            self.drain_out(now);
        } else if fd == ro {
            if let Engine::Queues(q) = &mut self.engine {
                drain_route_optimisation(&mut q.ro, &mut self.cn, now);
            }
        } else if Some(fd) == self.kernel.event_fd() {
            self.read_kernel_events(now);
        } else if let Some(d) = self.dhaad.as_mut().filter(|d| d.fd() == fd) {
            d.on_readable(&mut self.mn, now);
        }
    }

    fn apply_actions(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        self.apply_dsa_request(now);
        if let Some(d) = self.dhaad.as_mut() {
            d.drive(&mut self.mn, &self.raw, now);
        }
        let mut sends = Vec::new();
        while let Some(a) = self.mn.poll_action() {
            self.apply_mn_action(a, &mut sends);
        }
        while let Some(a) = self.cn.poll_action() {
            match (a, &mut self.engine) {
                (Action::Send(t), Engine::Queues(_)) => send_transmit(&self.raw, &t, ctx),
                (Action::Send(t), Engine::Kernel(k)) => k.send_cn(&t, ctx),
                (other, Engine::Queues(q)) => {
                    if !q.ro_rules.on_action(&other, ctx.registry) {
                        tracing::debug!("correspondent node: ignoring {other:?}")
                    }
                }
                (other, Engine::Kernel(k)) => {
                    if !k.on_cn_action(&other, ctx.registry) {
                        tracing::debug!("correspondent node: ignoring {other:?}")
                    }
                }
            }
        }
        self.sync_kernel(ctx.registry);
        for t in sends {
            self.send(&t, ctx);
        }
        if let Some(link) = &self.dsa {
            link.set_bound(self.mn.home_binding().map(|b| b.seq.get()));
        }
    }

    fn status(&self) -> Value {
        MnPath::status(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cn::CnConfig;
    use crate::proto::event::Movement;
    use crate::proto::mn::MnConfig;
    use crate::wire::mh::{BaFlags, Message, MhRepr};
    use ring::rand::SystemRandom;
    use std::sync::Arc;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    const HOA: &str = "2001:db8:1::100";
    const HA: &str = "2001:db8:1::1";
    const COA: &str = "2001:db8:41::100";
    const CN: &str = "2001:db8:10::2";

    fn udp(src: &str, dst: &str) -> Vec<u8> {
        PacketBuilder::new(a(src), a(dst)).build(Payload::Udp {
            src_port: 1,
            dst_port: 2,
            data: b"payload",
        })
    }

    fn machines(now: Instant) -> (Mn, Cn) {
        let mut mn = Mn::new(
            MnConfig {
                home_address: a(HOA),
                home_agents: vec![a(HA)],
                ..MnConfig::default()
            },
            Arc::new(SystemRandom::new()),
        );
        mn.handle(
            MnEvent::Movement(Movement::CoaUp {
                iface: 3,
                coa: a(COA),
                preference: 1,
            }),
            now,
        );
        let cn = Cn::new(CnConfig::default(), Arc::new(SystemRandom::new()), now).unwrap();
        (mn, cn)
    }

    fn sends(mn: &mut Mn) -> Vec<Transmit> {
        std::iter::from_fn(|| mn.poll_action())
            .filter_map(|x| match x {
                Action::Send(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn queued(payload: Vec<u8>, skb_info: u32, cap_len: Option<u32>) -> QueuedPacket {
        QueuedPacket {
            id: 1,
            hw_protocol: 0x86dd,
            hook: 0,
            mark: None,
            indev: None,
            outdev: None,
            payload,
            skb_info,
            cap_len,
        }
    }

    #[test]
    fn a_rewritten_packet_goes_back_with_a_complete_checksum_or_not_at_all() {
        let good = udp(CN, HOA);
        let mut partial = good.clone();
        partial[46..48].copy_from_slice(&[0xab, 0xcd]);
        let csum_ok = |p: &[u8]| crate::wire::checksum::verify(&a(CN), &a(HOA), 17, &p[40..]);
        assert!(csum_ok(&good) && !csum_ok(&partial));
        let not_ready = crate::sys::nfqueue::skb_info::CSUM_NOT_READY;
        // Checksum left to the hardware: completed, whichever verdict carries the packet.
        let q = queued(Vec::new(), not_ready, None);
        let InVerdict::Repeat(b) = ready_to_hand_back(InVerdict::Repeat(partial.clone()), &q)
        else {
            panic!("not handed back")
        };
        assert!(csum_ok(&b));
        let InVerdict::Accept(Some(b)) =
            ready_to_hand_back(InVerdict::Accept(Some(partial.clone())), &q)
        else {
            panic!("not handed back")
        };
        assert!(csum_ok(&b));
        // A complete one is not touched.
        let q = queued(Vec::new(), 0, None);
        assert_eq!(
            ready_to_hand_back(InVerdict::Repeat(partial.clone()), &q),
            InVerdict::Repeat(partial.clone())
        );
        // Copied in part (a GSO packet beyond copy_range): cannot be rewritten.
        let q = queued(Vec::new(), 0, Some(70_000));
        assert_eq!(
            ready_to_hand_back(InVerdict::Repeat(good.clone()), &q),
            InVerdict::Drop
        );
        // Verdicts without a packet pass unchanged.
        assert_eq!(
            ready_to_hand_back(InVerdict::Accept(None), &q),
            InVerdict::Accept(None)
        );
    }

    #[test]
    fn home_address_traffic_is_tunnelled_optimised_or_held() {
        let hoa = a(HOA);
        let pkt = udp(HOA, CN);
        let mut paths = Paths {
            blocked: true,
            ..Paths::default()
        };
        assert_eq!(outgoing(&paths, hoa, &pkt), OutVerdict::Drop);
        assert_eq!(outgoing(&paths, hoa, &udp(COA, CN)), OutVerdict::Pass);
        paths.tunnel = Some((a(HA), a(COA)));
        let OutVerdict::Rewritten(t) = outgoing(&paths, hoa, &pkt) else {
            panic!("not tunnelled")
        };
        let p = packet::parse(&t).unwrap();
        assert_eq!((p.ip.src, p.ip.dst), (a(COA), a(HA)));
        assert!(matches!(&p.headers[0], Header::Tunnel(i) if i.ip.src == hoa));
        // With the reverse tunnel in the kernel, the kernel's route encapsulates.
        let kernel = Paths {
            kernel_tunnel: true,
            ..paths.clone()
        };
        assert_eq!(outgoing(&kernel, hoa, &pkt), OutVerdict::Pass);
        paths.ro.insert(a(CN), a(COA));
        let OutVerdict::Rewritten(r) = outgoing(&paths, hoa, &pkt) else {
            panic!("not optimised")
        };
        let p = packet::parse(&r).unwrap();
        assert_eq!((p.ip.src, p.ip.dst, p.final_src()), (a(COA), a(CN), hoa));
        assert!(p.error.is_none(), "{p:?}");
        // Neighbour Discovery from the home address is never held or tunnelled.
        let mut na = udp(HOA, HA);
        na[6] = crate::wire::proto::ICMPV6;
        na[40] = 136;
        assert_eq!(outgoing(&paths, hoa, &na), OutVerdict::Pass);
        // Home and unblocked: untouched.
        assert_eq!(outgoing(&Paths::default(), hoa, &pkt), OutVerdict::Pass);
        for cut in 0..pkt.len() {
            let _ = outgoing(&paths, hoa, &pkt[..cut]);
        }
    }

    #[test]
    fn home_registration_through_the_queues() {
        let now = Instant::now();
        let (mut mn, mut cn) = machines(now);
        let bu = sends(&mut mn);
        assert_eq!(bu.len(), 1);
        let (bytes, to) = build_packet(&bu[0]).unwrap();
        assert_eq!(to, a(HA));
        let p = packet::parse(&bytes).unwrap();
        assert!(p.error.is_none(), "{p:?}");
        assert_eq!((p.ip.src, p.final_src()), (a(COA), a(HOA)));
        let Some(Message::BindingUpdate { sequence, .. }) = p.mobility().map(|m| m.message.clone())
        else {
            panic!("no BU: {p:?}")
        };
        // The BA comes to the CoA with a Type 2 Routing Header for the HoA.
        let ba = MhRepr {
            message: Message::BindingAck {
                status: 0,
                flags: BaFlags::default(),
                sequence,
                lifetime_units: 100,
            },
            options: vec![],
        };
        let mut b = PacketBuilder::new(a(HA), a(COA));
        b.type2_routing = Some(a(HOA));
        let mut types = vec![];
        let v = incoming(
            &mut mn,
            &mut cn,
            &b.build(Payload::Mobility(&ba)),
            now,
            &mut |t| types.push(t),
        );
        assert_eq!((v, types), (InVerdict::Consumed, vec![6]));
        assert!(mn.home_binding().is_some());
        let acts: Vec<Action> = std::iter::from_fn(|| mn.poll_action()).collect();
        assert!(
            acts.contains(&Action::HomeTunnelSet {
                hoa: a(HOA),
                ha: a(HA),
                coa: a(COA)
            }),
            "{acts:?}"
        );

        // Tunnelled from the home agent: decapsulated and run again; from anyone else,
        // or for another address, dropped.
        let mut t = udp(CN, HOA);
        rewrite::encapsulate(&mut t, a(HA), a(COA), 64).unwrap();
        let v = incoming(&mut mn, &mut cn, &t, now, &mut |_| {});
        assert_eq!(v, InVerdict::Repeat(udp(CN, HOA)));
        let mut forged = udp(CN, HOA);
        rewrite::encapsulate(&mut forged, a(CN), a(COA), 64).unwrap();
        assert_eq!(
            incoming(&mut mn, &mut cn, &forged, now, &mut |_| {}),
            InVerdict::Drop
        );
        let mut other = udp(CN, "2001:db8:1::99");
        rewrite::encapsulate(&mut other, a(HA), a(COA), 64).unwrap();
        assert_eq!(
            incoming(&mut mn, &mut cn, &other, now, &mut |_| {}),
            InVerdict::Drop
        );
        // A Binding Refresh Request inside the tunnel goes to the machine.
        let brr = MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![],
        };
        let mut t = PacketBuilder::new(a(HA), a(HOA)).build(Payload::Mobility(&brr));
        rewrite::encapsulate(&mut t, a(HA), a(COA), 64).unwrap();
        let mut types = vec![];
        let v = incoming(&mut mn, &mut cn, &t, now, &mut |x| types.push(x));
        assert_eq!((v, types), (InVerdict::Consumed, vec![0]));
        // The refresh goes out at once.
        assert!(!sends(&mut mn).is_empty());
    }

    #[test]
    fn type2_routing_only_for_our_home_address_at_our_care_of_address() {
        let now = Instant::now();
        let (mut mn, mut cn) = machines(now);
        let rh2 = |home: &str, to: &str| {
            let mut b = PacketBuilder::new(a(CN), a(to));
            b.type2_routing = Some(a(home));
            b.build(Payload::Udp {
                src_port: 1,
                dst_port: 2,
                data: b"x",
            })
        };
        let InVerdict::Accept(Some(p)) =
            incoming(&mut mn, &mut cn, &rh2(HOA, COA), now, &mut |_| {})
        else {
            panic!("not accepted")
        };
        assert_eq!(Ipv6Header::parse(&p).unwrap().dst, a(HOA));
        for (home, to) in [("2001:db8:1::99", COA), (HOA, "2001:db8:42::100")] {
            assert_eq!(
                incoming(&mut mn, &mut cn, &rh2(home, to), now, &mut |_| {}),
                InVerdict::Drop
            );
        }
        // A HoTI is the correspondent node's.
        let hoti = PacketBuilder::new(a(CN), a(COA)).build(Payload::Mobility(&MhRepr {
            message: Message::HomeTestInit { cookie: [1; 8] },
            options: vec![],
        }));
        let mut types = vec![];
        assert_eq!(
            incoming(&mut mn, &mut cn, &hoti, now, &mut |t| types.push(t)),
            InVerdict::Consumed
        );
        assert_eq!(types, vec![1]);
        assert!(std::iter::from_fn(|| cn.poll_action()).any(|x| matches!(x, Action::Send(_))));
        // Garbage never panics.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..160 {
            let junk: Vec<u8> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if i == 0 {
                        0x60
                    } else {
                        seed as u8
                    }
                })
                .collect();
            let _ = incoming(&mut mn, &mut cn, &junk, now, &mut |_| {});
        }
    }

    #[test]
    fn the_home_test_init_leaves_through_the_tunnel() {
        let t = Transmit {
            src: a(HOA),
            dst: a(CN),
            rh2: None,
            repr: MhRepr {
                message: Message::HomeTestInit { cookie: [7; 8] },
                options: vec![],
            },
            bytes: {
                let r = MhRepr {
                    message: Message::HomeTestInit { cookie: [7; 8] },
                    options: vec![],
                };
                let mut b = vec![0; r.buffer_len()];
                r.emit(&mut b, &a(HOA), &a(CN));
                b
            },
            hao: None,
            tunnel: Some((a(COA), a(HA))),
        };
        let (pkt, to) = build_packet(&t).unwrap();
        assert_eq!(to, a(HA));
        let p = packet::parse(&pkt).unwrap();
        let Header::Tunnel(inner) = &p.headers[0] else {
            panic!("{p:?}")
        };
        assert_eq!((inner.ip.src, inner.ip.dst), (a(HOA), a(CN)));
        assert!(
            inner.error.is_none() && inner.mobility().is_some(),
            "{inner:?}"
        );
    }

    #[test]
    fn rules_and_policies() {
        let r = receive_rules(6275);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].describe(),
            "ip6tables -t raw -A PREROUTING -p 41 -m addrtype --dst-type LOCAL -j NFQUEUE --queue-num 6275"
        );
        assert_eq!(
            output_rule(a(HOA), 6276).describe(),
            "ip6tables -t raw -A OUTPUT -s 2001:db8:1::100/128 ! -p 135 -j NFQUEUE --queue-num 6276"
        );
        let p = [
            RoPolicy {
                correspondent: Some(a(CN)),
                enabled: false,
            },
            RoPolicy {
                correspondent: None,
                enabled: true,
            },
        ];
        assert!(!ro_wanted(&p, true, &a(CN)));
        assert!(ro_wanted(&p, false, &a("2001:db8::5")));
        assert!(!ro_wanted(&[], false, &a(CN)));
    }
}
