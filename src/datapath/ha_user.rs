//! The `user` data path of a home agent (RFC 6275 §10), on a kernel without
//! `CONFIG_IPV6_MIP6` and without `ip6_tunnel`: the [`Ha`] machine (which embeds the
//! correspondent node) on the correspondent node's two queues, plus a third queue for the
//! ip6ip6 tunnel to each registered mobile node, done with [`rewrite::encapsulate`] and
//! [`rewrite::decapsulate`].
//!
//! Queues (all bound before any rule that feeds them exists):
//!
//! - `N` (receive) and `N + 1` (route optimisation): as for a correspondent node
//!   ([`super::user`]). Home registrations (a Binding Update with H, from the care-of
//!   address with a Home Address option) arrive on `N` and go to [`Ha::handle`]; the
//!   Binding Acknowledgement leaves through the raw socket with its Type 2 Routing Header,
//!   as the machine built it, never through the tunnel (its destination is the care-of
//!   address, which no tunnel rule matches).
//! - `N + 2` (tunnel), rules per home registration:
//!   - `RouteAdd` → `-t raw -A PREROUTING -d HoA/128` (traffic from others, before the
//!     routing decision) and `-t mangle -A OUTPUT -d HoA/128` (the home agent's own):
//!     [`rewrite::encapsulate`] (HA → CoA); the kernel routes the changed packet (in
//!     PREROUTING the routing decision comes after raw; in LOCAL_OUT a changed address
//!     makes `nf_reinject` re-route).
//!   - `TunnelAdd` → `-t raw -A PREROUTING -s CoA/128 -d HA/128 -p 41`:
//!     [`rewrite::decapsulate`], accepted only when the inner source is a home address
//!     registered with that care-of address at that home agent address (§10.4.5), and
//!     handed back with verdict `Repeat`, so the raw chain runs again on the inner packet
//!     (a Mobility Header for us, or a packet for another mobile node's home address,
//!     then meets its own rule).
//! - Once, at start: `-t filter -A INPUT -m conntrack --ctstate INVALID` (no target, it
//!   only counts). Any conntrack rule turns on conntrack's defragmentation in the
//!   namespace (priority -400, before raw): a full-size packet tunnelled by the mobile
//!   node arrives fragmented and could not be decapsulated otherwise (datapath README).
//!
//! `ProxyNdAdd`/`ProxyNdDel` → a proxy neighbour entry for HoA on the home interface
//! (rtnetlink, marked with protocol `RTPROT_MIP` like umip's routes), with
//! `net.ipv6.conf.<home interface>.proxy_ndp` set to 1 (and put back at exit).
//!
//! **DAD** (§10.3.1): `StartDad` fails at once when the home address (or the link-local
//! one) is assigned to one of the home agent's interfaces or has a permanent neighbour
//! entry on the home interface; otherwise [`HaIcmp`] probes the home link (a Neighbour
//! Solicitation from `::`) and reports after `RetransTimer`. Once a proxy entry is in
//! place, [`HaIcmp`] also sends unsolicited Neighbor Advertisements for it, and answers
//! DHAAD and Mobile Prefix Solicitations (see `ha_icmp`).
//!
//! Every rule and proxy entry is recorded in the daemon's registry with its undo, so
//! deregistration, expiry and SIGTERM remove it.

use super::drain;
use super::home_link::HomeLink;
use super::rewrite;
use super::sets::{self, AddrSet};
use super::user::{
    bind_queue, bind_receive_queue, check_ip6tables, drain_receive, drain_route_optimisation,
    send_transmit, RoRules, Rule,
};
use super::{Binding, BindingKey, DataPath};
use crate::daemon::machine::{BindingCacheEntry, Ctx, Machine};
use crate::daemon::registry::Registry;
use crate::proto::event::Action;
use crate::proto::ha::{Ha, HaState};
use crate::sys::nfqueue::{hook, NfQueue, Verdict};
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::sys::rtnl::{self, Rtnl};
use crate::wire::icmpv6::Icmpv6Repr;
use crate::wire::packet::{Ipv6Header, PacketBuilder, Payload};
use crate::wire::proto;
use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::time::Instant;

/// Outer hop limit of the tunnel (RFC 2473 §6.3: the tunnel entry point's default).
const TUNNEL_HOP_LIMIT: u8 = 64;

// --- rules -------------------------------------------------------------------------------------

/// The rules that bring packets to the tunnel queue: those for a home address in the
/// [`sets::HOME`] set (forwarded, and sent by the home agent itself), and tunnelled
/// packets from a care-of address in the [`sets::CARE_OF`] set to one of our addresses.
/// The queue checks the rest (the registered pair, §10.4.5).
pub fn tunnel_rules(queue: u16) -> [Rule; 3] {
    let q = queue.to_string();
    let to_home: Vec<&str> = sets::match_set(sets::HOME, "dst")
        .into_iter()
        .chain(["-j", "NFQUEUE", "--queue-num", &q])
        .collect();
    let from_coa: Vec<&str> = sets::match_set(sets::CARE_OF, "src")
        .into_iter()
        .chain([
            "-p",
            "41",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q,
        ])
        .collect();
    [
        Rule::new("raw", "PREROUTING", &to_home),
        Rule::new("mangle", "OUTPUT", &to_home),
        Rule::new("raw", "PREROUTING", &from_coa),
    ]
}

/// The counting rule whose only purpose is to turn conntrack (and its defragmentation)
/// on in the namespace.
pub fn defrag_rule() -> Rule {
    Rule::new(
        "filter",
        "INPUT",
        &["-m", "conntrack", "--ctstate", "INVALID"],
    )
}

// --- packets -----------------------------------------------------------------------------------

/// Where the tunnel for a home address goes: (home agent address, care-of address).
pub type Routes = HashMap<Ipv6Addr, (Ipv6Addr, Ipv6Addr)>;

/// What to do with a packet from the tunnel queue.
#[derive(Debug, PartialEq, Eq)]
pub enum TunnelVerdict {
    /// Encapsulated toward a care-of address: let the kernel route it.
    Encapsulated(Vec<u8>),
    /// Decapsulated: run the chain again on the inner packet.
    Decapsulated(Vec<u8>),
    /// Not ours (the binding just went away): unchanged.
    Pass,
    Drop,
    /// Too big for the tunnel: drop it and send `ptb`, an ICMPv6 Packet Too Big (a whole
    /// IPv6 packet), to its source `to` (RFC 2473 §7.1).
    TooBig {
        to: Ipv6Addr,
        ptb: Vec<u8>,
    },
}

/// The Packet Too Big a tunnel entry point owes the source of `packet` (RFC 2473 §7.1,
/// RFC 4443 §3.2): from `local`, announcing `mtu`, quoting as much of the packet as fits
/// in the minimum IPv6 MTU. `None` where no error may be sent: for an ICMPv6 error
/// (RFC 4443 §2.4 (e)) or an unspecified or multicast source.
pub fn packet_too_big(local: Ipv6Addr, packet: &[u8], mtu: u32) -> Option<Vec<u8>> {
    let ip = Ipv6Header::parse(packet).ok()?;
    if ip.src.is_unspecified() || ip.src.is_multicast() {
        return None;
    }
    if ip.next_header == proto::ICMPV6 && packet.get(40).is_some_and(|t| *t < 128) {
        return None;
    }
    // 1280 - IPv6 header - ICMPv6 header (type, code, checksum, MTU).
    let quoted = &packet[..packet.len().min(1280 - 40 - 8)];
    let mut body = mtu.to_be_bytes().to_vec();
    body.extend_from_slice(quoted);
    let ptb = Icmpv6Repr::Other {
        msg_type: 2,
        code: 0,
        body,
    };
    Some(PacketBuilder::new(local, ip.src).build(Payload::Icmpv6(&ptb)))
}

/// Router and Neighbour Solicitations and Advertisements, and Redirects (ICMPv6 types
/// 133–137), which always come without extension headers (RFC 4861 §6.1.1, §7.1.1).
pub(crate) fn is_neighbour_discovery(ip: &Ipv6Header, payload: &[u8]) -> bool {
    ip.next_header == crate::wire::proto::ICMPV6
        && matches!(
            payload.get(crate::wire::packet::IPV6_HEADER_LEN),
            Some(133..=137)
        )
}

/// Decides a packet from the tunnel queue. `hook` says where it was queued: a forwarded
/// packet (PREROUTING) loses one hop before it enters the tunnel, as it would crossing
/// any router. Never panics, whatever the bytes.
pub fn tunnel_packet(
    routes: &Routes,
    payload: &[u8],
    from_hook: u8,
    link_mtu: usize,
) -> TunnelVerdict {
    let Ok(ip) = Ipv6Header::parse(payload) else {
        return TunnelVerdict::Pass;
    };
    if is_neighbour_discovery(&ip, payload) {
        // Neighbour Discovery is about the home link itself: a mobile node back home
        // resolves the home agent before its deregistration, and the home agent's answer
        // (to the home address) must reach it there, not its old care-of address.
        return TunnelVerdict::Pass;
    }
    if let Some(&(local, coa)) = routes.get(&ip.dst) {
        // RFC 2473 §7.1: a packet that no longer fits once encapsulated is answered with
        // the tunnel's MTU, unless it is no larger than the IPv6 minimum (then the outer
        // packet is fragmented, which the kernel does for us).
        let tunnel_mtu = link_mtu.saturating_sub(40);
        if payload.len() > tunnel_mtu && payload.len() > 1280 {
            return match packet_too_big(local, payload, tunnel_mtu as u32) {
                Some(ptb) => TunnelVerdict::TooBig { to: ip.src, ptb },
                None => TunnelVerdict::Drop,
            };
        }
        let mut buf = payload.to_vec();
        if from_hook == hook::PRE_ROUTING {
            // Byte 7 is the hop limit. An expiring packet is dropped (a kernel router
            // would also send Time Exceeded; we do not, yet).
            match buf.get_mut(7) {
                Some(h) if *h > 1 => *h -= 1,
                _ => return TunnelVerdict::Drop,
            }
        }
        return match rewrite::encapsulate(&mut buf, local, coa, TUNNEL_HOP_LIMIT) {
            Ok(()) => TunnelVerdict::Encapsulated(buf),
            Err(_) => TunnelVerdict::Drop,
        };
    }
    let mut buf = payload.to_vec();
    match rewrite::decapsulate(&mut buf) {
        // §10.4.5: only from the care-of address registered for the inner source, to
        // the home agent address it registered with.
        Ok(t) if routes.get(&t.inner_src) == Some(&(t.outer_dst, t.outer_src)) => {
            TunnelVerdict::Decapsulated(buf)
        }
        Ok(_) => TunnelVerdict::Drop,
        // Only tunnel packets and packets for home addresses are queued here; anything
        // else is a rule that outlived its binding by a moment.
        Err(rewrite::RewriteError::NotTunnelled) => TunnelVerdict::Pass,
        Err(_) => TunnelVerdict::Drop,
    }
}

// --- the platform ------------------------------------------------------------------------------

/// The global prefixes of `ifname`, as (address, length): the default home prefixes of
/// a home agent serving that link.
pub fn interface_prefixes(ifname: &str) -> Result<Vec<(Ipv6Addr, u8)>, String> {
    let err = |e: io::Error| format!("home interface {ifname}: {e}");
    let mut rt = Rtnl::open().map_err(err)?;
    let link = rt
        .link_by_name(ifname)
        .map_err(err)?
        .ok_or_else(|| format!("home interface {ifname}: no such interface"))?;
    Ok(rt
        .addresses()
        .map_err(err)?
        .into_iter()
        .filter(|a| a.index == link.index && a.scope == rtnl::RT_SCOPE_UNIVERSE)
        .map(|a| (a.addr, a.prefix_len))
        .collect())
}

// --- the machine -------------------------------------------------------------------------------

/// The home registrations on the user data path: the tunnels (care-of addresses whose
/// packets are decapsulated, reference-counted per (home agent address, care-of address))
/// and the routes into them (home addresses whose traffic is encapsulated, and where to).
pub struct HomeTunnels {
    tunnels: HashMap<(Ipv6Addr, Ipv6Addr), usize>,
    care_of: AddrSet,
    routes: Routes,
    home: AddrSet,
}

impl HomeTunnels {
    fn tunnel_add(&mut self, local: Ipv6Addr, remote: Ipv6Addr) -> io::Result<()> {
        let n = self.tunnels.entry((local, remote)).or_insert(0);
        *n += 1;
        if *n > 1 {
            return Ok(());
        }
        match self.care_of.insert(remote) {
            Ok(()) => {
                tracing::info!("tunnel {local} <- {remote}: decapsulating");
                Ok(())
            }
            Err(e) => {
                self.tunnels.remove(&(local, remote));
                Err(io::Error::new(
                    e.kind(),
                    format!("tunnel from {remote}: ip set {}: {e}", sets::CARE_OF),
                ))
            }
        }
    }

    fn tunnel_del(&mut self, local: Ipv6Addr, remote: Ipv6Addr) {
        let Some(n) = self.tunnels.get_mut(&(local, remote)) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.tunnels.remove(&(local, remote));
            if let Err(e) = self.care_of.remove(remote) {
                tracing::warn!("tunnel from {remote}: ip set {}: {e}", sets::CARE_OF);
            }
        }
    }

    fn route_add(&mut self, hoa: Ipv6Addr, local: Ipv6Addr, remote: Ipv6Addr) {
        // The set holds the home address only: a new care-of address just changes the
        // map the queue reads.
        // Every refresh repeats the action: only a new or changed route is worth a line
        // at info level (formatting and writing it cost more than the refresh itself).
        if self.routes.insert(hoa, (local, remote)) == Some((local, remote)) {
            tracing::debug!("route {hoa} -> tunnel {local} -> {remote} (unchanged)");
        } else {
            tracing::info!("route {hoa} -> tunnel {local} -> {remote}");
        }
        if self.home.contains(&hoa) {
            return;
        }
        if let Err(e) = self.home.insert(hoa) {
            tracing::error!("route to {hoa}: ip set {}: {e}", sets::HOME);
        }
    }

    fn route_del(&mut self, hoa: Ipv6Addr) {
        self.routes.remove(&hoa);
        if self.home.contains(&hoa) {
            if let Err(e) = self.home.remove(hoa) {
                tracing::warn!("route to {hoa}: ip set {}: {e}", sets::HOME);
            }
        }
    }
}

impl DataPath for HomeTunnels {
    fn name(&self) -> &'static str {
        "user"
    }

    /// A home registration, new or moved: the new tunnel first, then the route into it,
    /// then the old tunnel goes (RFC 6275 §10.4.1: no packet is routed into nothing).
    fn install(&mut self, b: &Binding, _registry: &mut Registry) -> io::Result<()> {
        let Binding::HomeRegistration { ha, hoa, coa } = *b else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the home agent's tunnels do not hold {b:?}"),
            ));
        };
        let old = self.routes.get(&hoa).copied();
        if old != Some((ha, coa)) {
            self.tunnel_add(ha, coa)?;
        }
        self.route_add(hoa, ha, coa);
        if let Some((l, r)) = old.filter(|o| *o != (ha, coa)) {
            self.tunnel_del(l, r);
        }
        Ok(())
    }

    fn remove(&mut self, key: &BindingKey, _registry: &mut Registry) -> io::Result<()> {
        if let BindingKey::HomeRegistration { hoa } = *key {
            if let Some((l, r)) = self.routes.get(&hoa).copied() {
                self.route_del(hoa);
                self.tunnel_del(l, r);
            }
        }
        Ok(())
    }

    /// The sets go with the registry (recorded when they were created); this only
    /// forgets the state.
    fn cleanup(&mut self, _registry: &mut Registry) -> Vec<io::Error> {
        let keys: Vec<Ipv6Addr> = self.routes.keys().copied().collect();
        keys.into_iter()
            .filter_map(|hoa| {
                let (l, r) = self.routes.get(&hoa).copied()?;
                self.route_del(hoa);
                self.tunnel_del(l, r);
                None
            })
            .collect()
    }
}

/// The home agent's binding cache for `mip6ctl bc`: home registrations, then the embedded
/// correspondent node's bindings, by home address.
pub(crate) fn cache_rows(ha: &Ha, now: Instant) -> Vec<BindingCacheEntry> {
    let left =
        |t: Instant| u32::try_from(t.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX);
    let mut rows: Vec<_> = ha
        .bindings()
        .filter(|(_, b)| b.state == HaState::Active)
        .map(|(k, b)| {
            // Only what the cache keeps: H always; A is not remembered.
            let mut flags = String::from("H");
            for (on, c) in [
                (b.link_local.is_some(), 'L'),
                (b.key_mgmt, 'K'),
                (b.mobile_router, 'R'),
            ] {
                if on {
                    flags.push(c);
                }
            }
            BindingCacheEntry {
                home_address: k.hoa,
                care_of_address: b.coa,
                lifetime: left(b.expires),
                sequence: b.seq.0,
                flags,
                kind: "home",
            }
        })
        .chain(ha.cn().bindings().map(|(k, b)| BindingCacheEntry {
            home_address: k.hoa,
            care_of_address: b.coa,
            lifetime: left(b.expires),
            sequence: b.seq.0,
            flags: String::new(),
            kind: "cache",
        }))
        .collect();
    rows.sort_by_key(|r| r.home_address);
    rows
}

/// The home agent role on the user data path.
pub struct HaUserPath {
    ha: Ha,
    rx: NfQueue,
    ro: NfQueue,
    tun: NfQueue,
    /// The smallest MTU of the links a tunnel can leave by: what an encapsulated packet
    /// must fit (the path beyond is the care-of address's business, RFC 2473 §7.1).
    link_mtu: usize,
    raw: RawSocket,
    /// Route-optimisation rules of the embedded correspondent node's bindings.
    ro_rules: RoRules,
    /// The home registrations' tunnels on the queue ...
    tunnels: HomeTunnels,
    /// ... or in the kernel (`--tunnel seg6`).
    seg6: Option<super::seg6::Seg6Tunnels>,
    /// Proxy ND, DAD, DHAAD and prefix solicitations on the home link.
    home: HomeLink,
}

impl HaUserPath {
    /// Binds queues `queue` to `queue + 2`, opens the raw socket, then installs the
    /// receive rules and the defragmentation rule (recorded in `registry`). With
    /// `kernel_tunnels` the tunnels are [`super::seg6::Seg6Tunnels`] and the tunnel queue
    /// gets no rules.
    pub fn start(
        ha: Ha,
        home_if: &str,
        queue: u16,
        kernel_tunnels: bool,
        registry: &mut Registry,
    ) -> Result<HaUserPath, String> {
        check_ip6tables()?;
        let (ro_queue, tun_queue) = match (queue.checked_add(1), queue.checked_add(2)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(format!(
                    "netfilter queue {queue}: a home agent also uses the next two"
                ))
            }
        };
        let mut home_link = HomeLink::open(home_if)?;
        let link_mtu = home_link.smallest_link_mtu()?;
        super::home_link::warn_without_forwarding();
        let rx = bind_receive_queue(queue)?;
        let ro = bind_queue(ro_queue)?;
        let tun = bind_queue(tun_queue)?;
        let raw = RawSocket::new(IPPROTO_RAW)
            .map_err(|e| format!("cannot open a raw IPv6 socket: {e}"))?;
        // Sets before the rules that name them (the registry undoes newest first).
        let care_of = AddrSet::create(sets::CARE_OF, registry)?;
        let home = AddrSet::create(sets::HOME, registry)?;
        let seg6 = if kernel_tunnels {
            Some(super::seg6::Seg6Tunnels::start(home_if, registry)?)
        } else {
            None
        };
        let queued = if seg6.is_some() {
            Vec::new()
        } else {
            tunnel_rules(tun_queue).to_vec()
        };
        for rule in super::user::receive_rules(queue)
            .into_iter()
            .chain([defrag_rule()])
            .chain(queued)
        {
            rule.install(registry)
                .map_err(|e| format!("cannot add a netfilter rule: {e}"))?;
        }
        tracing::info!(
            "home agent on {home_if}: user data path on netfilter queues {queue} (receive), {ro_queue} (route optimisation) and {tun_queue} (tunnel)"
        );
        Ok(HaUserPath {
            ha,
            rx,
            ro,
            tun,
            link_mtu,
            raw,
            ro_rules: RoRules::start(ro_queue, registry)?,
            tunnels: HomeTunnels {
                tunnels: HashMap::new(),
                care_of,
                routes: HashMap::new(),
                home,
            },
            seg6,
            home: home_link,
        })
    }

    pub fn ha(&self) -> &Ha {
        &self.ha
    }

    fn drain_tunnel(&mut self) {
        let (routes, mtu, raw) = (&self.tunnels.routes, self.link_mtu, &self.raw);
        drain(
            "netfilter queue (tunnel)",
            &mut self.tun,
            NfQueue::recv,
            |tun, p| {
                let r = match tunnel_packet(routes, &p.payload, p.hook, mtu) {
                    TunnelVerdict::Encapsulated(b) => tun.verdict(p.id, Verdict::Accept, Some(&b)),
                    TunnelVerdict::Decapsulated(b) => tun.verdict(p.id, Verdict::Repeat, Some(&b)),
                    TunnelVerdict::Pass => tun.verdict(p.id, Verdict::Accept, None),
                    TunnelVerdict::TooBig { to, ptb } => {
                        if let Err(e) = raw.send_to(&ptb, to) {
                            tracing::debug!("tunnel: packet too big to {to}: {e}");
                        }
                        tun.verdict(p.id, Verdict::Drop, None)
                    }
                    TunnelVerdict::Drop => {
                        tracing::debug!("tunnel: dropped a packet ({} bytes)", p.payload.len());
                        tun.verdict(p.id, Verdict::Drop, None)
                    }
                };
                if let Err(e) = r {
                    tracing::warn!("netfilter queue (tunnel): verdict: {e}");
                }
            },
        );
    }
}

impl Machine for HaUserPath {
    fn name(&self) -> &str {
        "ha"
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.home.poll_timeout(&self.ha)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.home.handle_timeout(now, &mut self.ha);
    }

    fn binding_cache(&self, now: Instant) -> Vec<BindingCacheEntry> {
        cache_rows(&self.ha, now)
    }

    fn status(&self) -> serde_json::Value {
        self.home.status()
    }

    fn sources(&self) -> Vec<RawFd> {
        vec![
            self.rx.as_raw_fd(),
            self.ro.as_raw_fd(),
            self.tun.as_raw_fd(),
            self.home.icmp.fds()[0],
            self.home.icmp.fds()[1],
        ]
    }

    fn on_readable(&mut self, fd: RawFd, now: Instant, ctx: &mut Ctx<'_>) {
        if fd == self.rx.as_raw_fd() {
            drain_receive(&mut self.rx, &mut self.ha, now, ctx);
        } else if fd == self.ro.as_raw_fd() {
            drain_route_optimisation(&mut self.ro, &mut self.ha, now);
        } else if fd == self.tun.as_raw_fd() {
            self.drain_tunnel();
        } else if self.home.icmp.fds().contains(&fd) {
            self.home.icmp.on_readable(fd, now, &mut self.ha);
        }
    }

    fn apply_actions(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        while let Some(a) = self.ha.poll_action() {
            let path: &mut dyn DataPath = match self.seg6.as_mut() {
                Some(k) => k,
                None => &mut self.tunnels,
            };
            match self.home.apply(a, &mut self.ha, path, ctx.registry, now) {
                Some(Action::Send(t)) => send_transmit(&self.raw, &t, ctx),
                // The embedded correspondent node's route optimisation.
                Some(other) if !self.ro_rules.on_action(&other, ctx.registry) => {
                    tracing::debug!("home agent: ignoring {other:?}")
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{PacketBuilder, Payload};
    use crate::wire::proto;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn net() -> (Ipv6Addr, Ipv6Addr, Ipv6Addr, Ipv6Addr, Routes) {
        let (ha, hoa, coa, cn) = (
            a("2001:db8:1::1"),
            a("2001:db8:1::100"),
            a("2001:db8:41::100"),
            a("2001:db8:10::2"),
        );
        let routes = HashMap::from([(hoa, (ha, coa))]);
        (ha, hoa, coa, cn, routes)
    }

    fn udp(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        PacketBuilder::new(src, dst).build(Payload::Udp {
            src_port: 1,
            dst_port: 2,
            data: b"x",
        })
    }

    fn udp_of_len(src: Ipv6Addr, dst: Ipv6Addr, total: usize) -> Vec<u8> {
        let data = vec![0x5a; total - 48];
        PacketBuilder::new(src, dst).build(Payload::Udp {
            src_port: 1,
            dst_port: 2,
            data: &data,
        })
    }

    #[test]
    fn too_big_for_the_tunnel_gets_a_packet_too_big_with_the_tunnel_mtu() {
        let (ha, hoa, _, cn, routes) = net();
        // 1460 + 40 fits a 1500-byte link: encapsulated.
        let fits = udp_of_len(cn, hoa, 1460);
        assert!(matches!(
            tunnel_packet(&routes, &fits, hook::PRE_ROUTING, 1500),
            TunnelVerdict::Encapsulated(b) if b.len() == 1500
        ));
        // 1500 does not: Packet Too Big from the home agent to the source, MTU 1460,
        // quoting the start of the packet, within the minimum MTU.
        let big = udp_of_len(cn, hoa, 1500);
        let TunnelVerdict::TooBig { to, ptb } =
            tunnel_packet(&routes, &big, hook::PRE_ROUTING, 1500)
        else {
            panic!("not answered with Packet Too Big")
        };
        assert!(ptb.len() <= 1280);
        assert_eq!(to, cn);
        let ip = Ipv6Header::parse(&ptb).unwrap();
        assert_eq!((ip.src, ip.dst, ip.next_header), (ha, cn, proto::ICMPV6));
        let Icmpv6Repr::Other {
            msg_type,
            code,
            body,
        } = Icmpv6Repr::parse_checked(&ptb[40..], &ha, &cn).unwrap()
        else {
            panic!("not type 2")
        };
        assert_eq!((msg_type, code), (2, 0));
        assert_eq!(&body[..4], &1460u32.to_be_bytes());
        assert_eq!(
            &body[4..44],
            &big[..40],
            "the invoking packet's header is quoted"
        );
        // Never an error for an error (RFC 4443 §2.4 (e)): such a packet is just dropped.
        let mut err = big.clone();
        err[6] = proto::ICMPV6;
        err[40] = 1;
        assert_eq!(
            tunnel_packet(&routes, &err, hook::PRE_ROUTING, 1500),
            TunnelVerdict::Drop
        );
        // A packet no larger than the IPv6 minimum is encapsulated even over a small link
        // (the kernel fragments the outer packet).
        let small = udp_of_len(cn, hoa, 1280);
        assert!(matches!(
            tunnel_packet(&routes, &small, hook::PRE_ROUTING, 1300),
            TunnelVerdict::Encapsulated(_)
        ));
    }

    #[test]
    fn neighbour_discovery_for_a_home_address_stays_on_the_home_link() {
        let (ha, hoa, _, _, routes) = net();
        let mut na = udp(ha, hoa);
        na[6] = proto::ICMPV6;
        na[40] = 136;
        assert_eq!(
            tunnel_packet(&routes, &na, hook::LOCAL_OUT, 1500),
            TunnelVerdict::Pass
        );
        // An echo reply is not Neighbour Discovery: it goes into the tunnel.
        na[40] = 129;
        assert!(matches!(
            tunnel_packet(&routes, &na, hook::LOCAL_OUT, 1500),
            TunnelVerdict::Encapsulated(_)
        ));
    }

    #[test]
    fn packets_for_a_home_address_are_tunnelled_to_its_care_of_address() {
        let (ha, hoa, coa, cn, routes) = net();
        let inner = udp(cn, hoa);
        let TunnelVerdict::Encapsulated(out) =
            tunnel_packet(&routes, &inner, hook::PRE_ROUTING, 1500)
        else {
            panic!("not encapsulated");
        };
        let outer = Ipv6Header::parse(&out).unwrap();
        assert_eq!(
            (outer.src, outer.dst, outer.next_header),
            (ha, coa, proto::IPV6)
        );
        // Forwarded: one hop less inside; the HA's own packets keep theirs.
        assert_eq!(out[40 + 7], inner[7] - 1);
        let TunnelVerdict::Encapsulated(own) =
            tunnel_packet(&routes, &inner, hook::LOCAL_OUT, 1500)
        else {
            panic!("not encapsulated");
        };
        assert_eq!(own[40 + 7], inner[7]);
        let mut last = inner.clone();
        last[7] = 1;
        assert_eq!(
            tunnel_packet(&routes, &last, hook::PRE_ROUTING, 1500),
            TunnelVerdict::Drop
        );
    }

    #[test]
    fn reverse_tunnel_is_decapsulated_only_from_the_registered_care_of_address() {
        let (ha, hoa, coa, cn, routes) = net();
        let inner = udp(hoa, cn);
        let mut pkt = inner.clone();
        rewrite::encapsulate(&mut pkt, coa, ha, 64).unwrap();
        assert_eq!(
            tunnel_packet(&routes, &pkt, hook::PRE_ROUTING, 1500),
            TunnelVerdict::Decapsulated(inner.clone())
        );
        // §10.4.5: another care-of address, another inner source, or another HA address.
        for (src, dst, inner_src) in [
            (a("2001:db8:42::100"), ha, hoa),
            (coa, ha, a("2001:db8:1::101")),
            (coa, a("2001:db8:21::2"), hoa),
        ] {
            let mut p = udp(inner_src, cn);
            rewrite::encapsulate(&mut p, src, dst, 64).unwrap();
            assert_eq!(
                tunnel_packet(&routes, &p, hook::PRE_ROUTING, 1500),
                TunnelVerdict::Drop
            );
        }
        // Not a tunnel packet and no route: unchanged.
        assert_eq!(
            tunnel_packet(&routes, &udp(cn, ha), hook::PRE_ROUTING, 1500),
            TunnelVerdict::Pass
        );
    }

    #[test]
    fn garbage_never_panics() {
        let (ha, hoa, coa, cn, routes) = net();
        let mut tunnelled = udp(hoa, cn);
        rewrite::encapsulate(&mut tunnelled, coa, ha, 64).unwrap();
        let plain = udp(cn, hoa);
        for cut in 0..tunnelled.len() {
            let _ = tunnel_packet(&routes, &tunnelled[..cut], hook::PRE_ROUTING, 1500);
            let _ = tunnel_packet(
                &routes,
                &plain[..cut.min(plain.len())],
                hook::PRE_ROUTING,
                1500,
            );
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = tunnel_packet(&routes, &junk, hook::PRE_ROUTING, 1500);
        }
    }

    #[test]
    fn rules_and_addresses() {
        let [pre, out, decap] = tunnel_rules(6277);
        assert_eq!(
            pre.describe(),
            "ip6tables -t raw -A PREROUTING -m set --match-set mip6d-home dst -j NFQUEUE --queue-num 6277"
        );
        assert_eq!(
            out.describe(),
            "ip6tables -t mangle -A OUTPUT -m set --match-set mip6d-home dst -j NFQUEUE --queue-num 6277"
        );
        assert_eq!(
            decap.describe(),
            "ip6tables -t raw -A PREROUTING -m set --match-set mip6d-coa src -p 41 -m addrtype --dst-type LOCAL -j NFQUEUE --queue-num 6277"
        );
    }
}
