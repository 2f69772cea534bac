//! The mobile node role (RFC 6275 §11), [`MnPath`]: the [`Mn`] machine (with the
//! correspondent node every role embeds) driven by movement detection over rtnetlink, the
//! home address kept on the node ([`HomeKernel`]), DHAAD, the Distributed Servers link,
//! and one of two engines for the packets: the kernel's own MIP6 code ([`MnKernel`],
//! `Datapath kernel`) or, on a kernel without `CONFIG_IPV6_MIP6` and `ip6_tunnel`, the
//! netfilter queues and raw socket of [`super::mn_user`].

use super::kernel::mn::MnKernel;
use super::mn_dhaad::MnDhaad;
use super::mn_user::{
    build_packet, defrag_rule, incoming, outgoing, output_rule, ready_to_hand_back, receive_rules,
    ro_wanted, InVerdict, OutVerdict, Paths, TUNNEL_OVERHEAD,
};
use super::user::{
    self, bind_queue, bind_receive_queue, check_ip6tables, drain_route_optimisation, send_transmit,
    RoRules,
};
use super::{drain, Binding};
use crate::config::RoPolicy;
use crate::daemon::machine::{BindingCacheEntry, BindingUpdateListEntry, Ctx, Machine};
use crate::daemon::registry::{EntryId, Registry};
use crate::proto::cn::Cn;
use crate::proto::event::{is_unicast_routable, Action, MnEvent, Transmit};
use crate::proto::mn::{Location, Mn};
use crate::proto::movement::{Attachment, Detector, Observation};
use crate::sys::nfqueue::{NfQueue, Verdict};
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::wire::packet::Ipv6Header;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::time::Instant;

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
