//! The home agent's ICMPv6 on its home link (user data path): Dynamic Home Agent Address
//! Discovery (RFC 6275 §10.5), Mobile Prefix Advertisements (§10.6), Duplicate Address
//! Detection for home addresses and the proxy's unsolicited Neighbor Advertisements
//! (§10.4.1). The decisions are the sans-IO [`HomeAgentsList`] and [`HomeLinkNd`]; this
//! module owns the two sockets and the addresses they need.
//!
//! - **Receiving**: two raw ICMPv6 sockets, filtered to the types they read. One is bound
//!   to the home interface (`SO_BINDTODEVICE`) for Router Advertisements and Neighbour
//!   Discovery, so an advertisement on another link cannot fail a DAD run. The other
//!   reads DHAAD requests and Mobile Prefix Solicitations from any interface (on the
//!   testbed the home agent is the home link's gateway: requests arrive on its uplink);
//!   it has joined the Home-Agents anycast address of every home prefix
//!   (`IPV6_JOIN_ANYCAST`), so the kernel delivers what is sent there and answers
//!   Neighbour Solicitations for it on the home link.
//! - **Sending**: an `IPPROTO_RAW` socket, because DAD probes leave from `::` (which a
//!   plain ICMPv6 socket cannot choose) and Mobile Prefix Advertisements carry a Type 2
//!   Routing Header; multicast loop is off, so our own probe never reads as a conflict.
//! - **Validity** (RFC 4861 §6.1.2, §7.1.2): Router Advertisements and Neighbour
//!   Discovery count only with hop limit 255 (the kernel reports it per datagram), so
//!   nothing from off the link can fail a DAD run or add a home agent; an advertisement
//!   must also come from a link-local address.

use super::MAX_ERRORS_PER_WAKE;
use crate::proto::discovery::{self, AdvertisedPrefix, HomeAgentsList};
use crate::proto::event::Event;
use crate::proto::ha::{Ha, HaState};
use crate::proto::nd::{HomeLinkNd, NdSend};
use crate::sys::raw::{RawSocket, IPPROTO_ICMPV6, IPPROTO_RAW};
use crate::sys::rtnl::{self, Rtnl};
use crate::wire::icmpv6::{self, Icmpv6Repr};
use crate::wire::packet::{PacketBuilder, Payload};
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// Home agent preference of our own entry in the Home Agents List: RFC 6275 §7.4's
/// default. umip has no configuration keyword for it either (its radvd advertises it).
pub const OWN_PREFERENCE: i16 = 0;

/// Lifetimes offered in a Mobile Prefix Advertisement for an address the kernel keeps
/// forever (RFC 4861's infinity).
const INFINITE: u32 = u32::MAX;

/// The ICMPv6 types the home agent listens to on its home link.
const ON_LINK: [u8; 3] = [
    icmpv6::TYPE_ROUTER_ADVERTISEMENT,
    icmpv6::TYPE_NEIGHBOR_SOLICITATION,
    icmpv6::TYPE_NEIGHBOR_ADVERTISEMENT,
];
/// The requests it answers, from anywhere.
const REQUESTS: [u8; 2] = [
    icmpv6::TYPE_HAAD_REQUEST,
    icmpv6::TYPE_MOBILE_PREFIX_SOLICITATION,
];

/// The Mobile Prefix Advertisement answering `mps` from `src`, as a whole packet and its
/// IPv6 destination, when `src` is a home address registered here (§10.6.1: only
/// registered mobile nodes are answered; the answer goes to the care-of address with a
/// Type 2 Routing Header carrying the home address, from the address the mobile node
/// registered with).
pub fn mobile_prefix_answer(
    ha: &Ha,
    src: Ipv6Addr,
    mps: &Icmpv6Repr,
    prefixes: &[AdvertisedPrefix],
) -> Option<(Vec<u8>, Ipv6Addr)> {
    let (key, b) = ha
        .bindings()
        .find(|(k, b)| k.hoa == src && b.state == HaState::Active)?;
    let mpa = discovery::mobile_prefix_advertisement(mps, prefixes)?;
    let pkt = PacketBuilder {
        type2_routing: Some(src),
        ..PacketBuilder::new(key.local, b.coa)
    }
    .build(Payload::Icmpv6(&mpa));
    Some((pkt, b.coa))
}

/// Router Advertisements and Neighbour Discovery, which only mean something on the link.
fn on_link_only(msg: &Icmpv6Repr) -> bool {
    matches!(
        msg,
        Icmpv6Repr::RouterAdvertisement { .. }
            | Icmpv6Repr::NeighborSolicitation { .. }
            | Icmpv6Repr::NeighborAdvertisement { .. }
    )
}

/// RFC 4861 §6.1.2 / §7.1.2: hop limit 255 (no router forwarded it), and a Router
/// Advertisement from a link-local source. An unknown hop limit is not 255.
fn from_the_link(src: Ipv6Addr, msg: &Icmpv6Repr, hop_limit: Option<u8>) -> bool {
    let link_local = (src.segments()[0] & 0xffc0) == 0xfe80;
    hop_limit == Some(255) && (link_local || !matches!(msg, Icmpv6Repr::RouterAdvertisement { .. }))
}

/// The sockets and state of the home agent's ICMPv6 on the home link.
pub struct HaIcmp {
    rx: RawSocket,
    req: RawSocket,
    tx: RawSocket,
    home_index: u32,
    /// The home interface's link-layer address (target link-layer option of proxy NAs).
    lladdr: Vec<u8>,
    /// Our link-local addresses on the home interface (our own RAs are not another
    /// agent's; the first is the source of our advertisements).
    link_local: Vec<Ipv6Addr>,
    prefixes: Vec<AdvertisedPrefix>,
    list: HomeAgentsList,
    nd: HomeLinkNd,
}

impl HaIcmp {
    /// Opens the sockets on `home_if`, joins the anycast address of each global prefix
    /// there, and puts ourselves in the Home Agents List.
    pub fn start(rt: &mut Rtnl, home_if: &str) -> Result<HaIcmp, String> {
        let err = |what: &str, e: io::Error| format!("home agent ICMPv6 on {home_if}: {what}: {e}");
        let link = rt
            .link_by_name(home_if)
            .map_err(|e| err("link", e))?
            .ok_or_else(|| format!("home interface {home_if}: no such interface"))?;
        let addrs: Vec<_> = rt
            .addresses()
            .map_err(|e| err("addresses", e))?
            .into_iter()
            .filter(|a| a.index == link.index)
            .collect();
        let link_local: Vec<Ipv6Addr> = addrs
            .iter()
            .filter(|a| a.scope == rtnl::RT_SCOPE_LINK)
            .map(|a| a.addr)
            .collect();
        let global: Vec<_> = addrs
            .iter()
            .filter(|a| a.scope == rtnl::RT_SCOPE_UNIVERSE)
            .collect();
        let rx = RawSocket::new(IPPROTO_ICMPV6).map_err(|e| err("raw ICMPv6 socket", e))?;
        rx.bind_device(home_if)
            .map_err(|e| err("SO_BINDTODEVICE", e))?;
        rx.set_icmp6_filter(&ON_LINK)
            .map_err(|e| err("ICMP6_FILTER", e))?;
        rx.set_nonblocking().map_err(|e| err("O_NONBLOCK", e))?;
        rx.set_recv_hop_limit()
            .map_err(|e| err("IPV6_RECVHOPLIMIT", e))?;
        let req = RawSocket::new(IPPROTO_ICMPV6).map_err(|e| err("raw ICMPv6 socket", e))?;
        req.set_icmp6_filter(&REQUESTS)
            .map_err(|e| err("ICMP6_FILTER", e))?;
        req.set_nonblocking().map_err(|e| err("O_NONBLOCK", e))?;
        let tx = RawSocket::new(IPPROTO_RAW).map_err(|e| err("raw IPv6 socket", e))?;
        tx.set_multicast_loop(false)
            .map_err(|e| err("IPV6_MULTICAST_LOOP", e))?;
        let mut prefixes = Vec::new();
        for a in &global {
            let net = crate::config::Prefix {
                addr: a.addr,
                len: a.prefix_len,
            }
            .network();
            if prefixes
                .iter()
                .any(|p: &AdvertisedPrefix| p.prefix == net.addr && p.len == net.len)
            {
                continue;
            }
            prefixes.push(AdvertisedPrefix {
                prefix: net.addr,
                len: net.len,
                valid_lifetime: a.valid_lft.unwrap_or(INFINITE),
                preferred_lifetime: a.preferred_lft.unwrap_or(INFINITE),
            });
            if let Some(any) = discovery::home_agents_anycast(net.addr, net.len) {
                match req.join_anycast(any, link.index) {
                    Ok(()) => tracing::info!("home agent: DHAAD on {any} ({home_if})"),
                    Err(e) => tracing::warn!("home agent: cannot join anycast {any}: {e}"),
                }
            }
        }
        let mut list = HomeAgentsList::new();
        match (link_local.first(), global.first()) {
            (Some(ll), Some(g)) => list.set_local(*ll, g.addr, OWN_PREFERENCE),
            _ => tracing::warn!(
                "home agent: {home_if} has no link-local or no global address; DHAAD replies will not name us"
            ),
        }
        Ok(HaIcmp {
            rx,
            req,
            tx,
            home_index: link.index,
            lladdr: link.mac.unwrap_or_default(),
            link_local,
            prefixes,
            list,
            nd: HomeLinkNd::new(),
        })
    }

    pub fn fds(&self) -> [RawFd; 2] {
        [self.rx.as_raw_fd(), self.req.as_raw_fd()]
    }

    /// The Home Agents List, for `mip6ctl status`.
    pub fn home_agents(&self, now: Instant) -> Vec<Ipv6Addr> {
        self.list.ordered(now, 0)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.nd.poll_timeout(), self.list.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, ha: &mut Ha) {
        self.list.expire(now);
        self.nd.handle_timeout(now);
        self.flush(ha, now);
    }

    /// Starts real DAD for a registration (§10.3.1).
    pub fn start_dad(
        &mut self,
        hoa: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
        now: Instant,
        ha: &mut Ha,
    ) {
        tracing::info!(
            "DAD for {hoa}{}: probing the home link",
            link_local.map(|l| format!(" and {l}")).unwrap_or_default()
        );
        self.nd.start_dad(hoa, link_local, now);
        self.flush(ha, now);
    }

    /// We now defend `addr` on the home link: tell the neighbours at once (§10.4.1).
    pub fn advertise(&mut self, addr: Ipv6Addr, router: bool, now: Instant) {
        let Some(src) = self.link_local.first().copied() else {
            return;
        };
        if self.lladdr.is_empty() {
            return;
        }
        self.nd.advertise(src, addr, &self.lladdr, router, now);
        self.send_nd();
    }

    pub fn stop_advertising(&mut self, addr: Ipv6Addr) {
        self.nd.stop_advertising(addr);
    }

    pub fn on_readable(&mut self, fd: RawFd, now: Instant, ha: &mut Ha) {
        let mut buf = [0u8; 1500];
        let mut errors = 0;
        loop {
            let sock = if fd == self.req.as_raw_fd() {
                &self.req
            } else {
                &self.rx
            };
            let (n, src, hop_limit) = match sock.recv_with_hop_limit(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("home agent ICMPv6: {e}");
                    errors += 1;
                    if errors >= MAX_ERRORS_PER_WAKE {
                        break;
                    }
                    continue;
                }
            };
            let Some(data) = buf.get(..n) else { break };
            // The kernel checked the checksum; a message we cannot parse is not ours.
            let Ok(msg) = Icmpv6Repr::parse(data) else {
                continue;
            };
            if on_link_only(&msg) && !from_the_link(src, &msg, hop_limit) {
                tracing::debug!(
                    "{} from {src}: not from the home link, ignored",
                    msg.type_name()
                );
                continue;
            }
            self.on_message(src, &msg, now, ha);
        }
        self.flush(ha, now);
    }

    fn on_message(&mut self, src: Ipv6Addr, msg: &Icmpv6Repr, now: Instant, ha: &Ha) {
        match msg {
            Icmpv6Repr::RouterAdvertisement { .. } if !self.link_local.contains(&src) => {
                self.list.on_router_advertisement(src, msg, now)
            }
            Icmpv6Repr::NeighborSolicitation { .. } | Icmpv6Repr::NeighborAdvertisement { .. } => {
                self.nd.on_message(src, msg)
            }
            Icmpv6Repr::HaadRequest { .. } => {
                let Some(reply) = self.list.dhaad_reply(msg, now) else {
                    return;
                };
                let Some(from) = self
                    .list
                    .entries()
                    .iter()
                    .find(|e| e.expires.is_none())
                    .and_then(|e| e.global.first().copied())
                else {
                    return;
                };
                tracing::info!("DHAAD request from {src}: answering {reply:?}");
                let pkt = PacketBuilder::new(from, src).build(Payload::Icmpv6(&reply));
                if let Err(e) = self.tx.send_to(&pkt, src) {
                    tracing::warn!("DHAAD reply to {src}: {e}");
                }
            }
            Icmpv6Repr::MobilePrefixSolicitation { .. } => {
                match mobile_prefix_answer(ha, src, msg, &self.prefixes) {
                    Some((pkt, coa)) => {
                        tracing::info!(
                            "mobile prefix solicitation from {src}: answering via {coa}"
                        );
                        if let Err(e) = self.tx.send_to(&pkt, coa) {
                            tracing::warn!("mobile prefix advertisement to {src}: {e}");
                        }
                    }
                    None => tracing::debug!("mobile prefix solicitation from unregistered {src}"),
                }
            }
            _ => {}
        }
    }

    /// Sends what Neighbour Discovery has queued and hands finished DAD runs to `ha`.
    fn flush(&mut self, ha: &mut Ha, now: Instant) {
        self.send_nd();
        while let Some((hoa, ok)) = self.nd.poll_result() {
            tracing::info!(
                "DAD for {hoa}: {}",
                if ok {
                    "unique"
                } else {
                    "duplicate on the home link"
                }
            );
            ha.handle(Event::DadResult { hoa, ok }, now);
        }
    }

    fn send_nd(&mut self) {
        while let Some(NdSend { src, dst, message }) = self.nd.poll_transmit() {
            // RFC 4861 §7.1: Neighbour Discovery is sent with hop limit 255.
            let pkt = PacketBuilder {
                hop_limit: 255,
                ..PacketBuilder::new(src, dst)
            }
            .build(Payload::Icmpv6(&message));
            if let Err(e) = self.tx.send_on(&pkt, dst, self.home_index) {
                tracing::warn!("{} to {dst}: {e}", message.type_name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hop_limit_255_counts_and_advertisements_come_from_link_local() {
        let na = Icmpv6Repr::NeighborAdvertisement {
            r: false,
            s: false,
            o: true,
            target: "2001:db8:1::100".parse().unwrap(),
            options: vec![],
        };
        let ra = Icmpv6Repr::RouterAdvertisement {
            hop_limit: 64,
            m: false,
            o: false,
            h: true,
            prf: crate::wire::icmpv6::RouterPreference::Medium,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            options: vec![],
        };
        let (ll, global) = ("fe80::1".parse().unwrap(), "2001:db8:1::9".parse().unwrap());
        assert!(on_link_only(&na) && on_link_only(&ra));
        assert!(!on_link_only(&Icmpv6Repr::HaadRequest {
            identifier: 1,
            r: false
        }));
        assert!(from_the_link(global, &na, Some(255)));
        assert!(!from_the_link(global, &na, Some(254)), "forwarded");
        assert!(!from_the_link(ll, &na, None), "unknown hop limit");
        assert!(from_the_link(ll, &ra, Some(255)));
        assert!(
            !from_the_link(global, &ra, Some(255)),
            "RA from a global address"
        );
    }
}
