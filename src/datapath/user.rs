//! The `user` data path of a correspondent node (RFC 6275 §9.3), on a kernel without
//! `CONFIG_IPV6_MIP6`: netfilter queues bring the packets to the daemon, the rewrites of
//! [`super::rewrite`] do what the kernel's MIP6 code would, and an `IPPROTO_RAW` socket
//! sends the Mobility Headers the protocol machine writes.
//!
//! Two queues, both bound *before* their rules exist (an `NFQUEUE` rule without a
//! listener drops what it matches):
//!
//! - queue `N` (receive), from raw PREROUTING, i.e. before the kernel looks at any
//!   extension header it would reject:
//!   1. `-p 135 -m addrtype --dst-type LOCAL`: every Mobility Header for one of our
//!      addresses. ip6tables' `-p` looks past extension headers, so a Binding Update
//!      with its Home Address option lands here too, untouched (its care-of address is
//!      the IPv6 source, which [`rewrite::receive_hao`] would erase). The daemon consumes
//!      these: `Cn::handle`, verdict drop.
//!   2. `-m ipv6header --header dst --soft -m addrtype --dst-type LOCAL`: everything
//!      else with a Destination Options header. With a Home Address option and a binding
//!      for (destination, home address) naming that care-of address: `receive_hao`,
//!      accepted with the new payload. Without such a binding: dropped, and the machine
//!      answers with a Binding Error status 1 (§9.3.1). Without a Home Address option:
//!      accepted unchanged.
//! - queue `N + 1` (route optimisation out), one mangle OUTPUT rule per binding,
//!   `-s local/128 -d HoA/128 ! -p 135`: [`rewrite::send_rh2`] toward the binding's
//!   current care-of address; the kernel re-routes the changed packet. Mobility Headers
//!   are left out: the daemon sends its own with the routing header the protocol asks
//!   for (a Home Test must go to the home address, not route-optimised).
//!
//! `addrtype LOCAL` keeps a node that also forwards (a home agent) from swallowing other
//! nodes' signalling. Every rule is recorded in the daemon's registry with its deletion,
//! so SIGTERM (or a failed start) removes it.

use super::drain;
use super::rewrite;
use super::sets::{self, AddrSet};
use super::{Binding, BindingKey as DataPathKey, DataPath};
use crate::daemon::machine::{BindingCacheEntry, Ctx, Machine};
use crate::daemon::registry::{EntryId, Registry};
use crate::proto::binding_cache::BindingKey;
use crate::proto::cn::Cn;
use crate::proto::event::{Action, Event, Inbound, Transmit};
use crate::sys::nfqueue::{NfQueue, QueuedPacket, Verdict, CFG_F_GSO};
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::wire::ext_header::Type2RoutingRepr;
use crate::wire::packet::{self, Header, Ipv6Header};
use crate::wire::proto;
use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::process::Command;
use std::time::Instant;

/// Default receive queue: RFC 6275's number, which fits a 16-bit queue id. The route
/// optimisation queue is the next one.
pub const DEFAULT_QUEUE: u16 = 6275;

// --- ip6tables -----------------------------------------------------------------------------

/// The comment every rule of ours carries (`-m comment --comment mip6d`), so the next
/// start can remove what a killed daemon left ([`crate::daemon::leftovers`]).
pub const COMMENT: &str = "mip6d";

/// One ip6tables rule: table, chain and the match/target arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub spec: Vec<String>,
}

impl Rule {
    pub fn new(table: &'static str, chain: &'static str, spec: &[&str]) -> Rule {
        Rule {
            table,
            chain,
            spec: spec.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// As `ip6tables-save` would print it (for logs and `mip6ctl status`).
    pub fn describe(&self) -> String {
        format!(
            "ip6tables -t {} -A {} {}",
            self.table,
            self.chain,
            self.spec.join(" ")
        )
    }

    /// The command line for `op` (`-A` / `-D`); the [`COMMENT`] match goes first, so it
    /// is on every rule whatever its spec.
    fn args(&self, op: &str) -> Vec<String> {
        let mut a: Vec<String> = ["-w", "-t", self.table, op, self.chain]
            .iter()
            .chain(&["-m", "comment", "--comment", COMMENT])
            .map(|s| s.to_string())
            .collect();
        a.extend(self.spec.iter().cloned());
        a
    }

    pub fn add(&self) -> io::Result<()> {
        ip6tables(&self.args("-A"))
    }

    pub fn delete(&self) -> io::Result<()> {
        ip6tables(&self.args("-D"))
    }

    /// Adds the rule and records its deletion in `registry`.
    pub fn install(&self, registry: &mut Registry) -> io::Result<EntryId> {
        self.add()?;
        let rule = self.clone();
        Ok(
            registry.record(format!("netfilter rule: {}", self.describe()), move || {
                rule.delete()
            }),
        )
    }
}

/// Runs `ip6tables ARGS` and turns a failure into an error carrying its message.
pub(crate) fn ip6tables(args: &[String]) -> io::Result<()> {
    let mut cmd = Command::new("ip6tables");
    cmd.args(args);
    crate::sys::process::unblock_signals_in_child(&mut cmd);
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip6tables {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether `ip6tables` can be run at all; the error says what to install.
pub fn check_ip6tables() -> Result<(), String> {
    let mut cmd = Command::new("ip6tables");
    cmd.arg("-V");
    crate::sys::process::unblock_signals_in_child(&mut cmd);
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "the user data path needs ip6tables, and `ip6tables -V` failed ({}); install iptables",
            o.status
        )),
        Err(e) => Err(format!(
            "the user data path needs ip6tables ({e}); install iptables (Debian: apt-get install iptables)"
        )),
    }
}

/// The receive rules on queue `queue`, in the order they must be evaluated.
pub fn receive_rules(queue: u16) -> Vec<Rule> {
    let q = queue.to_string();
    vec![
        Rule::new(
            "raw",
            "PREROUTING",
            &[
                "-p",
                "135",
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
            ],
        ),
        Rule::new(
            "raw",
            "PREROUTING",
            &[
                "-m",
                "ipv6header",
                "--header",
                "dst",
                "--soft",
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
            ],
        ),
    ]
}

/// The route-optimisation rule on queue `queue`: what a local socket sends to a home
/// address in the [`sets::RO`] set, Mobility Headers excepted (the daemon sends its own
/// with the routing header the protocol asks for: a Home Test must go to the home
/// address, not route-optimised).
pub fn ro_rule(queue: u16) -> Rule {
    let q = queue.to_string();
    let mut spec: Vec<&str> = sets::match_set(sets::RO, "dst").to_vec();
    spec.extend(["!", "-p", "135", "-j", "NFQUEUE", "--queue-num", &q]);
    Rule::new("mangle", "OUTPUT", &spec)
}

/// Route optimisation of one node's correspondent part: one constant `mangle OUTPUT` rule
/// ([`ro_rule`]) and a set of home addresses with a binding, kept as bindings come and go.
/// The queue looks the binding up by (source, destination) for every packet, so a
/// packet from another local address to a bound home address passes unchanged, and a
/// changed care-of address needs no kernel change. Shared by every role.
pub struct RoRules {
    set: AddrSet,
    bound: HashMap<BindingKey, ()>,
}

impl RoRules {
    /// Creates the set, then the rule (recorded in `registry`, which removes them in the
    /// reverse order).
    pub fn start(queue: u16, registry: &mut Registry) -> Result<RoRules, String> {
        let set = AddrSet::create(sets::RO, registry)?;
        ro_rule(queue)
            .install(registry)
            .map_err(|e| format!("cannot add the route optimisation rule: {e}"))?;
        Ok(RoRules {
            set,
            bound: HashMap::new(),
        })
    }

    pub fn binding_installed(&mut self, local: Ipv6Addr, hoa: Ipv6Addr, coa: Ipv6Addr) {
        let key = BindingKey::new(local, hoa);
        tracing::info!("binding {hoa} -> {coa} (at {local})");
        if self.bound.contains_key(&key) {
            return;
        }
        match self.set.insert(hoa) {
            Ok(()) => {
                self.bound.insert(key, ());
            }
            Err(e) => {
                tracing::error!(
                    "route optimisation for {hoa} stays off: ip set {}: {e}",
                    self.set.name()
                )
            }
        }
    }

    pub fn binding_removed(&mut self, local: Ipv6Addr, hoa: Ipv6Addr) {
        tracing::info!("binding for {hoa} (at {local}) removed");
        if self.bound.remove(&BindingKey::new(local, hoa)).is_some() {
            if let Err(e) = self.set.remove(hoa) {
                tracing::warn!("ip set {}: removing {hoa}: {e}", self.set.name());
            }
        }
    }
}

impl RoRules {
    /// Applies a correspondent binding action through the [`DataPath`] interface;
    /// `false` when `a` is not one (the caller handles or ignores it).
    pub fn on_action(&mut self, a: &Action, registry: &mut Registry) -> bool {
        let r = match *a {
            Action::BindingInstalled {
                local, hoa, coa, ..
            } => self.install(&Binding::Correspondent { local, hoa, coa }, registry),
            Action::BindingRemoved { local, hoa, .. } => {
                self.remove(&DataPathKey::Correspondent { local, hoa }, registry)
            }
            _ => return false,
        };
        if let Err(e) = r {
            tracing::error!("route optimisation: {e}");
        }
        true
    }
}

/// The correspondent part's bindings on the user data path.
impl DataPath for RoRules {
    fn name(&self) -> &'static str {
        "user"
    }

    fn install(&mut self, b: &Binding, _registry: &mut Registry) -> io::Result<()> {
        match *b {
            Binding::Correspondent { local, hoa, coa } => {
                self.binding_installed(local, hoa, coa);
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("route optimisation rules do not hold {b:?}"),
            )),
        }
    }

    fn remove(&mut self, key: &DataPathKey, _registry: &mut Registry) -> io::Result<()> {
        if let DataPathKey::Correspondent { local, hoa } = *key {
            self.binding_removed(local, hoa);
        }
        Ok(())
    }

    /// The set goes with the registry (recorded when it was created); this only forgets
    /// the bindings.
    fn cleanup(&mut self, _registry: &mut Registry) -> Vec<io::Error> {
        let keys: Vec<BindingKey> = self.bound.keys().copied().collect();
        for k in keys {
            self.binding_removed(k.local, k.hoa);
        }
        Vec::new()
    }
}

// --- sending ---------------------------------------------------------------------------------

/// The whole IPv6 packet for a [`Transmit`] of a correspondent node: IPv6 header, the Type
/// 2 Routing Header when `rh2` is set (§6.4, only on a Binding Acknowledgement), then the
/// Mobility Header exactly as the machine emitted it (checksum and authenticator are
/// already over the final addresses, so the bytes must not be re-emitted). `None` for what
/// a CN never sends (a Home Address option, a tunnel) or a header too long for IPv6.
pub fn build_packet(t: &Transmit) -> Option<Vec<u8>> {
    if t.hao.is_some() || t.tunnel.is_some() {
        return None;
    }
    let rh2 = t.rh2.map(|home_address| Type2RoutingRepr {
        next_header: proto::MOBILITY,
        segments_left: 1,
        home_address,
    });
    let mut out = vec![0u8; 40];
    if let Some(r) = &rh2 {
        out.extend_from_slice(&r.to_bytes());
    }
    out.extend_from_slice(&t.bytes);
    let payload_len = u16::try_from(out.len() - 40).ok()?;
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len,
        next_header: if rh2.is_some() {
            proto::ROUTING
        } else {
            proto::MOBILITY
        },
        hop_limit: 64,
        src: t.src,
        dst: t.dst,
    }
    .emit(&mut out);
    Some(out)
}

// --- receiving ------------------------------------------------------------------------------

/// What to do with a packet from the receive queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    /// A Mobility Header for the machine; drop it from the kernel's path.
    Consumed,
    /// Let the kernel go on with it, rewritten when `Some`.
    Accept(Option<Vec<u8>>),
    /// Drop it (a bad Mobility Header checksum, a Home Address option without binding).
    Drop,
}

/// What the receive and route-optimisation queues need from a protocol machine: a
/// correspondent node, or a home agent (which hands everything but home registrations to
/// the correspondent node it embeds).
pub trait Responder {
    fn handle(&mut self, event: Event<'_>, now: Instant);
    /// The care-of address of the route-optimisation binding (local, hoa), if any.
    fn ro_coa(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<Ipv6Addr>;
    /// The care-of address of any binding cache entry (local, hoa): what admits a Home
    /// Address option (§9.3.1). A home agent's home registrations count too.
    fn hao_coa(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.ro_coa(local, hoa)
    }
}

impl Responder for Cn {
    fn handle(&mut self, event: Event<'_>, now: Instant) {
        Cn::handle(self, event, now)
    }
    fn ro_coa(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.binding(local, hoa).map(|b| b.coa)
    }
}

impl Responder for crate::proto::ha::Ha {
    fn handle(&mut self, event: Event<'_>, now: Instant) {
        crate::proto::ha::Ha::handle(self, event, now)
    }
    fn ro_coa(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.cn().binding(local, hoa).map(|b| b.coa)
    }
    fn hao_coa(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<Ipv6Addr> {
        // A registered mobile node's Mobile Prefix Solicitation carries one (§11.4.2).
        let home = self
            .binding(local, hoa)
            .filter(|b| b.state == crate::proto::ha::HaState::Active);
        home.map(|b| b.coa).or_else(|| self.ro_coa(local, hoa))
    }
}

/// Decides a packet from the receive queue and feeds the machine what it learns.
/// Never panics, whatever the bytes.
pub fn receive(
    cn: &mut impl Responder,
    payload: &[u8],
    now: Instant,
    ctx_mh: &mut impl FnMut(u8),
) -> Disposition {
    let Ok(pkt) = packet::parse(payload) else {
        // Not even an IPv6 header: not ours to judge.
        return Disposition::Accept(None);
    };
    let mobility = pkt.headers.iter().find_map(|h| match h {
        Header::Mobility {
            repr,
            checksum_ok,
            offset,
        } => Some((repr, *checksum_ok, *offset)),
        _ => None,
    });
    if let Some((repr, checksum_ok, offset)) = mobility {
        if !checksum_ok {
            // §9.2: a Mobility Header with a bad checksum is silently discarded.
            return Disposition::Drop;
        }
        let end = offset.saturating_add(repr.buffer_len()).min(payload.len());
        let Some(raw) = payload.get(offset..end) else {
            return Disposition::Drop;
        };
        let hao = pkt.headers.iter().find_map(|h| match h {
            Header::DestinationOptions(d) => d.home_address(),
            _ => None,
        });
        ctx_mh(repr.mh_type());
        cn.handle(
            Event::Mh(Inbound {
                src: pkt.ip.src,
                dst: pkt.ip.dst,
                hao,
                repr,
                raw,
            }),
            now,
        );
        return Disposition::Consumed;
    }
    let mut buf = payload.to_vec();
    match rewrite::receive_hao(&mut buf) {
        Ok(info) => {
            let local = pkt.ip.dst;
            let bound = cn.hao_coa(&local, &info.home) == Some(info.care_of);
            if bound {
                cn.handle(
                    Event::BindingUsed {
                        local,
                        hoa: info.home,
                    },
                    now,
                );
                Disposition::Accept(Some(buf))
            } else {
                // §9.3.1: only a Binding Update may carry a Home Address option
                // without a binding; everything else is dropped and answered with a
                // Binding Error (rate-limited by the machine).
                cn.handle(
                    Event::HaoWithoutBinding {
                        local,
                        src_coa: info.care_of,
                        hoa: info.home,
                    },
                    now,
                );
                Disposition::Drop
            }
        }
        // No Home Address option (other destination options), or a header the kernel
        // will judge (and answer) itself.
        Err(_) => Disposition::Accept(None),
    }
}

/// A packet from the route-optimisation queue: `Some(rewritten)` when (source,
/// destination) has a binding.
pub fn route_optimise(cn: &mut impl Responder, payload: &[u8], now: Instant) -> Option<Vec<u8>> {
    let ip = Ipv6Header::parse(payload).ok()?;
    let coa = cn.ro_coa(&ip.src, &ip.dst)?;
    let mut buf = payload.to_vec();
    rewrite::send_rh2(&mut buf, coa).ok()?;
    cn.handle(
        Event::BindingUsed {
            local: ip.src,
            hoa: ip.dst,
        },
        now,
    );
    Some(buf)
}

// --- the machine ------------------------------------------------------------------------------

/// The correspondent node's bindings as `mip6ctl bc` rows.
pub(crate) fn cache_rows(cn: &Cn, now: Instant) -> Vec<BindingCacheEntry> {
    let mut rows: Vec<_> = cn
        .bindings()
        .map(|(k, b)| BindingCacheEntry {
            home_address: k.hoa,
            care_of_address: b.coa,
            lifetime: u32::try_from(b.expires.saturating_duration_since(now).as_secs())
                .unwrap_or(u32::MAX),
            sequence: b.seq.0,
            // The CN keeps no BU flags; a route-optimisation binding is never H.
            flags: String::new(),
            kind: "cache",
        })
        .collect();
    rows.sort_by_key(|r| r.home_address);
    rows
}

/// The correspondent node role on the user data path: the `Cn` machine, its two queues
/// and its raw socket.
pub struct CnUserPath {
    cn: Cn,
    rx: NfQueue,
    ro: NfQueue,
    raw: RawSocket,
    /// The route-optimisation rule of each binding.
    ro_rules: RoRules,
}

impl CnUserPath {
    /// Binds queues `queue` and `queue + 1`, opens the raw socket, then installs the
    /// receive rules (recorded in `registry`). On error, the rules already added are
    /// in the registry, which removes them.
    pub fn start(cn: Cn, queue: u16, registry: &mut Registry) -> Result<CnUserPath, String> {
        check_ip6tables()?;
        let ro_queue = queue
            .checked_add(1)
            .ok_or_else(|| format!("netfilter queue {queue}: the next one must exist too"))?;
        let rx = bind_receive_queue(queue)?;
        let ro = bind_queue(ro_queue)?;
        let raw = RawSocket::new(IPPROTO_RAW)
            .map_err(|e| format!("cannot open a raw IPv6 socket: {e}"))?;
        for rule in receive_rules(queue) {
            rule.install(registry)
                .map_err(|e| format!("cannot add a netfilter rule: {e}"))?;
        }
        tracing::info!(
            "correspondent node: user data path on netfilter queues {queue} (receive) and {ro_queue} (route optimisation)"
        );
        Ok(CnUserPath {
            cn,
            rx,
            ro,
            raw,
            ro_rules: RoRules::start(ro_queue, registry)?,
        })
    }

    pub fn cn(&self) -> &Cn {
        &self.cn
    }

    fn drain_rx(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        drain_receive(&mut self.rx, &mut self.cn, now, ctx);
    }

    fn drain_ro(&mut self, now: Instant) {
        drain_route_optimisation(&mut self.ro, &mut self.cn, now);
    }

    fn send(&self, t: &Transmit, ctx: &mut Ctx<'_>) {
        send_transmit(&self.raw, t, ctx);
    }
}

/// Binds netfilter queue `q`, non-blocking, for the event loop.
pub(crate) fn bind_queue(q: u16) -> Result<NfQueue, String> {
    let mut nq = NfQueue::bind(q).map_err(|e| {
        format!(
            "cannot bind netfilter queue {q}: {e} (another process holds it, or no CAP_NET_ADMIN)"
        )
    })?;
    nq.set_nonblocking(true)
        .map_err(|e| format!("netfilter queue {q}: {e}"))?;
    // Bursts of signalling after a handoff; the default buffer is small.
    let _ = nq.set_recv_buffer(1 << 20);
    Ok(nq)
}

/// Binds a queue whose packets are delivered locally, taking GSO packets whole
/// ([`CFG_F_GSO`]): segments the kernel cuts for a queue keep the transport header
/// offset of the packet they came from, so a segment rewritten to a different header
/// length (Home Address option or Type 2 Routing Header removed, tunnel stripped) reached
/// TCP at the wrong offset and failed its checksum. Whole packets keep the offset
/// `ip6_rcv` set; what this costs is [`hand_back`] for every rewritten one. Not for
/// packets that are forwarded: a rewritten GSO packet comes back `CHECKSUM_NONE`, which
/// GSO on the way out refuses.
pub(crate) fn bind_receive_queue(q: u16) -> Result<NfQueue, String> {
    let mut nq = bind_queue(q)?;
    nq.set_flags(CFG_F_GSO, CFG_F_GSO)
        .map_err(|e| format!("netfilter queue {q}: GSO packets whole: {e}"))?;
    Ok(nq)
}

/// Makes a rewritten packet from a [`bind_receive_queue`] queue fit to go back to the
/// kernel, or `None` to drop it: one the kernel copied only in part (a GSO packet beyond
/// `copy_range`) cannot be handed back rewritten, and one whose checksum was left to the
/// hardware gets it completed, since the kernel verifies a rewritten packet in software.
pub fn hand_back(mut buf: Vec<u8>, p: &QueuedPacket) -> Option<Vec<u8>> {
    if p.cap_len.is_some() {
        tracing::debug!("dropping a queued packet copied only in part");
        return None;
    }
    if p.checksum_not_ready() && rewrite::complete_checksum(&mut buf).is_err() {
        return None;
    }
    Some(buf)
}

/// Reads the receive queue until it would block; every packet gets its verdict.
pub(crate) fn drain_receive(
    rx: &mut NfQueue,
    cn: &mut impl Responder,
    now: Instant,
    ctx: &mut Ctx<'_>,
) {
    drain("netfilter queue (receive)", rx, NfQueue::recv, |rx, p| {
        let d = receive(cn, &p.payload, now, &mut |t| ctx.mh.count_received(t));
        let r = match d {
            Disposition::Consumed | Disposition::Drop => rx.verdict(p.id, Verdict::Drop, None),
            Disposition::Accept(None) => rx.verdict(p.id, Verdict::Accept, None),
            Disposition::Accept(Some(b)) => match hand_back(b, &p) {
                Some(b) => rx.verdict(p.id, Verdict::Accept, Some(&b)),
                None => rx.verdict(p.id, Verdict::Drop, None),
            },
        };
        if let Err(e) = r {
            tracing::warn!("netfilter queue (receive): verdict: {e}");
        }
    });
}

/// Reads the route-optimisation queue until it would block.
pub(crate) fn drain_route_optimisation(ro: &mut NfQueue, cn: &mut impl Responder, now: Instant) {
    drain(
        "netfilter queue (route optimisation)",
        ro,
        NfQueue::recv,
        |ro, p: QueuedPacket| {
            // Without a binding (it just went away), the packet goes as it is: toward
            // the home address, which is what the mobile node's home agent is for.
            let new = route_optimise(cn, &p.payload, now);
            if let Err(e) = ro.verdict(p.id, Verdict::Accept, new.as_deref()) {
                tracing::warn!("netfilter queue (route optimisation): verdict: {e}");
            }
        },
    );
}

/// Sends a Mobility Header the machine built, as it built it.
pub(crate) fn send_transmit(raw: &RawSocket, t: &Transmit, ctx: &mut Ctx<'_>) {
    let Some(pkt) = build_packet(t) else {
        tracing::warn!(
            "not sending {}: not something a correspondent sends",
            t.repr
        );
        return;
    };
    match raw.send_to(&pkt, t.dst) {
        Ok(_) => {
            ctx.mh.count_sent(t.repr.mh_type());
            tracing::debug!("sent {} {} -> {}", t.repr, t.src, t.dst);
        }
        Err(e) => tracing::warn!("sending {} to {}: {e}", t.repr, t.dst),
    }
}

impl Machine for CnUserPath {
    fn name(&self) -> &str {
        "cn"
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.cn.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.cn.handle_timeout(now);
    }

    fn binding_cache(&self, now: Instant) -> Vec<BindingCacheEntry> {
        cache_rows(&self.cn, now)
    }

    fn sources(&self) -> Vec<RawFd> {
        vec![self.rx.as_raw_fd(), self.ro.as_raw_fd()]
    }

    fn on_readable(&mut self, fd: RawFd, now: Instant, ctx: &mut Ctx<'_>) {
        if fd == self.rx.as_raw_fd() {
            self.drain_rx(now, ctx);
        } else if fd == self.ro.as_raw_fd() {
            self.drain_ro(now);
        }
    }

    fn apply_actions(&mut self, _now: Instant, ctx: &mut Ctx<'_>) {
        while let Some(a) = self.cn.poll_action() {
            match a {
                Action::Send(t) => self.send(&t, ctx),
                other => {
                    if !self.ro_rules.on_action(&other, ctx.registry) {
                        tracing::debug!("correspondent node: ignoring {other:?}")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rr;
    use crate::proto::cn::CnConfig;
    use crate::wire::mh::{BuFlags, Message, MhRepr};
    use crate::wire::mh_option::MobilityOption;
    use crate::wire::packet::{PacketBuilder, Payload};
    use ring::rand::SystemRandom;
    use std::sync::Arc;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    struct Net {
        cn: Ipv6Addr,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
    }

    const NET: Net = Net {
        cn: Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 2),
        hoa: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100),
        coa: Ipv6Addr::new(0x2001, 0xdb8, 0x41, 0, 0, 0, 0, 0x100),
    };

    fn machine(now: Instant) -> Cn {
        Cn::new(CnConfig::default(), Arc::new(SystemRandom::new()), now).unwrap()
    }

    fn sends(cn: &mut Cn) -> Vec<Transmit> {
        std::iter::from_fn(|| cn.poll_action())
            .filter_map(|a| match a {
                Action::Send(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn feed(cn: &mut Cn, pkt: &[u8], now: Instant) -> (Disposition, Vec<u8>) {
        let mut types = Vec::new();
        let d = receive(cn, pkt, now, &mut |t| types.push(t));
        (d, types)
    }

    fn with_mh(b: &PacketBuilder, raw: &[u8]) -> Vec<u8> {
        let repr = MhRepr::parse(raw).unwrap();
        let mut pkt = b.build(Payload::Mobility(&repr));
        let at = pkt.len() - raw.len();
        pkt[at..].copy_from_slice(raw);
        pkt
    }

    /// A UDP datagram from the MN's care-of address with a Home Address option, its
    /// checksum over the home address (as a route-optimising MN sends it).
    fn udp_with_hao(hoa: Ipv6Addr, coa: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        PacketBuilder {
            home_address_option: Some(hoa),
            ..PacketBuilder::new(coa, dst)
        }
        .build(Payload::Udp {
            src_port: 40000,
            dst_port: 5005,
            data: b"data",
        })
    }

    /// Return routability and a Binding Update through `receive`, as the queue delivers
    /// them; returns the BA.
    fn bind(cn: &mut Cn, now: Instant) -> Transmit {
        let Net { cn: me, hoa, coa } = NET;
        let init = |m: Message, src| {
            PacketBuilder::new(src, me).build(Payload::Mobility(&MhRepr {
                message: m,
                options: vec![],
            }))
        };
        let (d, types) = feed(
            cn,
            &init(Message::HomeTestInit { cookie: [1; 8] }, hoa),
            now,
        );
        assert_eq!((d, types), (Disposition::Consumed, vec![1]));
        let (d, _) = feed(
            cn,
            &init(Message::CareOfTestInit { cookie: [2; 8] }, coa),
            now,
        );
        assert_eq!(d, Disposition::Consumed);
        let (mut home, mut care_of) = (None, None);
        for t in sends(cn) {
            // What the daemon would put on the wire parses back, checksum included.
            let p = packet::parse(&build_packet(&t).unwrap()).unwrap();
            assert!(p.error.is_none(), "{p:?}");
            match p.mobility().unwrap().message {
                Message::HomeTest {
                    nonce_index,
                    keygen_token,
                    ..
                } => home = Some((nonce_index, keygen_token)),
                Message::CareOfTest {
                    nonce_index,
                    keygen_token,
                    ..
                } => care_of = Some((nonce_index, keygen_token)),
                _ => {}
            }
        }
        let (home, care_of) = (home.expect("HoT"), care_of.expect("CoT"));
        let kbm = rr::kbm(&home.1, Some(&care_of.1));
        let repr = MhRepr {
            message: Message::BindingUpdate {
                sequence: 9,
                flags: BuFlags {
                    a: true,
                    ..BuFlags::default()
                },
                lifetime_units: 25,
            },
            options: vec![
                MobilityOption::NonceIndices {
                    home: home.0,
                    care_of: care_of.0,
                },
                MobilityOption::BindingAuthData([0; 12]),
            ],
        };
        let mut raw = vec![0; repr.buffer_len()];
        repr.emit_with_authenticator(&mut raw, &hoa, &me, |c| {
            rr::authenticator(&kbm, &coa, &me, c)
        });
        let mut b = PacketBuilder::new(coa, me);
        b.home_address_option = Some(hoa);
        // A Binding Update with a Home Address option is consumed, not rewritten: the
        // machine needs the care-of address in the IPv6 source.
        let (d, types) = feed(cn, &with_mh(&b, &raw), now);
        assert_eq!((d, types), (Disposition::Consumed, vec![5]));
        let mut ba = None;
        while let Some(a) = cn.poll_action() {
            if let Action::Send(t) = a {
                ba = Some(t);
            }
        }
        let ba = ba.expect("BA");
        assert!(cn.binding(&me, &hoa).is_some());
        ba
    }

    #[test]
    fn binding_update_through_the_queue_gets_an_authenticated_ba_with_rh2() {
        let now = Instant::now();
        let mut cn = machine(now);
        let ba = bind(&mut cn, now);
        let bytes = build_packet(&ba).unwrap();
        let p = packet::parse(&bytes).unwrap();
        assert!(p.error.is_none(), "{p:?}");
        assert_eq!(
            (p.ip.src, p.ip.dst, p.final_dst()),
            (NET.cn, NET.coa, NET.hoa)
        );
        assert!(matches!(
            p.mobility().unwrap().message,
            Message::BindingAck {
                status: 0,
                sequence: 9,
                ..
            }
        ));
        // The authenticator survives: the MH bytes are the machine's, not re-emitted.
        assert!(bytes.ends_with(&ba.bytes));
    }

    #[test]
    fn home_address_option_is_rewritten_only_with_a_matching_binding() {
        let now = Instant::now();
        let mut cn = machine(now);
        let Net { cn: me, hoa, coa } = NET;
        // No binding: dropped, and a Binding Error status 1 goes to the care-of address.
        let (d, types) = feed(&mut cn, &udp_with_hao(hoa, coa, me), now);
        assert_eq!((d, types), (Disposition::Drop, vec![]));
        let be = sends(&mut cn);
        assert_eq!(be.len(), 1);
        assert_eq!(be[0].dst, coa);
        assert!(matches!(
            be[0].repr.message,
            Message::BindingError { status: 1, home_address } if home_address == hoa
        ));

        bind(&mut cn, now);
        let (d, _) = feed(&mut cn, &udp_with_hao(hoa, coa, me), now);
        let Disposition::Accept(Some(new)) = d else {
            panic!("expected a rewrite, got {d:?}");
        };
        let ip = Ipv6Header::parse(&new).unwrap();
        assert_eq!((ip.src, ip.dst, ip.next_header), (hoa, me, proto::UDP));
        // Another care-of address than the bound one is not this binding.
        let other = a("2001:db8:42::100");
        let (d, _) = feed(&mut cn, &udp_with_hao(hoa, other, me), now);
        assert_eq!(d, Disposition::Drop);
    }

    #[test]
    fn route_optimisation_needs_a_binding() {
        let now = Instant::now();
        let mut cn = machine(now);
        let Net { cn: me, hoa, coa } = NET;
        let plain = PacketBuilder::new(me, hoa).build(Payload::Mobility(&MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![],
        }));
        assert_eq!(route_optimise(&mut cn, &plain, now), None);
        bind(&mut cn, now);
        let new = route_optimise(&mut cn, &plain, now).expect("rewritten");
        let p = packet::parse(&new).unwrap();
        assert_eq!((p.ip.dst, p.final_dst()), (coa, hoa));
    }

    #[test]
    fn other_packets_pass_and_garbage_never_panics() {
        let now = Instant::now();
        let mut cn = machine(now);
        // Destination options without a Home Address option: the kernel's business.
        let mut pkt = udp_with_hao(NET.hoa, NET.coa, NET.cn);
        pkt[40 + 6] = 1; // the HAO becomes a PadN of the same length
        assert_eq!(feed(&mut cn, &pkt, now).0, Disposition::Accept(None));
        // A Mobility Header with a bad checksum is dropped, not handed over.
        let mut hoti = PacketBuilder::new(NET.hoa, NET.cn).build(Payload::Mobility(&MhRepr {
            message: Message::HomeTestInit { cookie: [1; 8] },
            options: vec![],
        }));
        let last = hoti.len() - 1;
        hoti[last] ^= 0xff;
        assert_eq!(feed(&mut cn, &hoti, now), (Disposition::Drop, vec![]));
        // Random bytes and every truncation of real packets: no panic.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = feed(&mut cn, &junk, now);
            let _ = route_optimise(&mut cn, &junk, now);
        }
        for cut in 0..pkt.len() {
            let _ = feed(&mut cn, &pkt[..cut], now);
            let _ = feed(&mut cn, &hoti[..cut.min(hoti.len())], now);
        }
    }

    #[test]
    fn rules_name_their_queues_and_the_binding() {
        let r = receive_rules(6275);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].describe(),
            "ip6tables -t raw -A PREROUTING -p 135 -m addrtype --dst-type LOCAL -j NFQUEUE --queue-num 6275"
        );
        assert!(r[1]
            .describe()
            .contains("-m ipv6header --header dst --soft"));
        let ro = ro_rule(6276);
        assert_eq!(
            ro.describe(),
            "ip6tables -t mangle -A OUTPUT -m set --match-set mip6d-ro dst ! -p 135 -j NFQUEUE --queue-num 6276"
        );
        assert_eq!(
            &ro.args("-D")[..9],
            [
                "-w",
                "-t",
                "mangle",
                "-D",
                "OUTPUT",
                "-m",
                "comment",
                "--comment",
                "mip6d"
            ],
            "every rule carries the comment that marks it as ours"
        );
    }

    #[test]
    fn transmits_a_cn_never_sends_are_refused() {
        let t = Transmit {
            src: NET.coa,
            dst: NET.cn,
            rh2: None,
            repr: MhRepr {
                message: Message::BindingRefreshRequest,
                options: vec![],
            },
            bytes: vec![0; 8],
            hao: Some(NET.hoa),
            tunnel: None,
        };
        assert_eq!(build_packet(&t), None);
    }
}
