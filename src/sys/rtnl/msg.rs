//! rtnetlink requests: the plain types of [`super`] → messages for the kernel, built with
//! `netlink-packet-route` (rust-netlink). Only our own values go through it; what the
//! kernel sends back is decoded by [`super::parse`].

use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, InfoVeth, Ip6TunnelFlags, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction as NlRuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, IpProtocol, RouteNetlinkMessage};

use super::{Address, Neighbour, Route, Rule, RuleAction};

/// The lifetime the kernel takes for "forever".
const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// Serializes a request. `flags` are the `NLM_F_*` bits besides `NLM_F_REQUEST`.
pub fn encode(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = netlink_packet_core::NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

// --- our types → requests ----------------------------------------------------------------

/// `RTM_GETLINK` / `RTM_GETADDR` / … dump requests.
pub fn dump_links() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(LinkMessage::default())
}

pub fn dump_addresses() -> RouteNetlinkMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet6;
    RouteNetlinkMessage::GetAddress(m)
}

pub fn dump_routes() -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    RouteNetlinkMessage::GetRoute(m)
}

pub fn dump_rules() -> RouteNetlinkMessage {
    let mut m = RuleMessage::default();
    m.header.family = AddressFamily::Inet6;
    RouteNetlinkMessage::GetRule(m)
}

/// With `ndm_flags == NTF_PROXY` the kernel dumps the proxy table instead of the cache.
pub fn dump_neighbours(proxy: bool) -> RouteNetlinkMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet6;
    if proxy {
        m.header.flags = NeighbourFlags::Proxy;
    }
    RouteNetlinkMessage::GetNeighbour(m)
}

/// `RTM_NEWLINK` on an existing link: only the bits in `change_mask` change.
pub fn set_link(index: u32, up: Option<bool>, mtu: Option<u32>) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if let Some(up) = up {
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
    }
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    RouteNetlinkMessage::NewLink(m)
}

pub fn delete_link(index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    RouteNetlinkMessage::DelLink(m)
}

fn new_link(name: &str, kind: InfoKind, data: Option<InfoData>) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    m.attributes.push(LinkAttribute::LinkInfo(info));
    RouteNetlinkMessage::NewLink(m)
}

pub fn new_dummy(name: &str) -> RouteNetlinkMessage {
    new_link(name, InfoKind::Dummy, None)
}

/// A veth pair `name` ⇄ `peer`, both in this namespace.
pub fn new_veth(name: &str, peer: &str) -> RouteNetlinkMessage {
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_string()));
    new_link(
        name,
        InfoKind::Veth,
        Some(InfoData::Veth(InfoVeth::Peer(p))),
    )
}

/// An ip6tnl carrying IPv6 in IPv6 (`IFLA_IPTUN_PROTO` 41, `mode ip6ip6`).
pub fn new_ip6tnl(name: &str, local: Ipv6Addr, remote: Ipv6Addr) -> RouteNetlinkMessage {
    // As umip creates its Mobile IPv6 tunnels: no Tunnel Encapsulation Limit option on
    // every packet (RFC 2473's default would add one), hop limit 64 rather than the
    // inner packet's, and marked as a MIP6 device.
    let data = InfoData::IpTunnel(vec![
        InfoIpTunnel::Local(IpAddr::V6(local)),
        InfoIpTunnel::Remote(IpAddr::V6(remote)),
        InfoIpTunnel::Protocol(IpProtocol::Ipv6),
        InfoIpTunnel::Ttl(64),
        InfoIpTunnel::Ipv6Flags(Ip6TunnelFlags::IgnEncapLimit | Ip6TunnelFlags::Mip6Dev),
    ]);
    new_link(name, InfoKind::Ip6Tnl, Some(data))
}

fn address_message(a: &Address) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.index = a.index;
    m.header.prefix_len = a.prefix_len;
    m.header.scope = AddressScope::from(a.scope);
    // The header holds the low 8 flag bits; IFA_FLAGS carries all 32.
    m.header.flags = AddressHeaderFlags::from_bits_retain(a.flags as u8);
    let ip = IpAddr::V6(a.addr);
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    m
}

pub fn new_address(a: &Address) -> RouteNetlinkMessage {
    let mut m = address_message(a);
    m.attributes
        .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
            a.flags,
        )));
    if a.valid_lft.is_some() || a.preferred_lft.is_some() {
        let valid = a.valid_lft.unwrap_or(INFINITY_LIFE_TIME);
        let mut info = CacheInfo::default();
        info.ifa_preferred = a.preferred_lft.unwrap_or(valid).min(valid);
        info.ifa_valid = valid;
        m.attributes.push(AddressAttribute::CacheInfo(info));
    }
    RouteNetlinkMessage::NewAddress(m)
}

pub fn del_address(a: &Address) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelAddress(address_message(a))
}

/// The route as a request. For a delete the kernel matches on every attribute we give
/// (protocol included), so deleting never removes somebody else's route of the same prefix.
fn route_message(r: &Route, delete: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.destination_prefix_length = r.dst_len;
    // rtm_table is 8 bits; RTA_TABLE (always sent) carries the real number.
    m.header.table = u8::try_from(r.table).unwrap_or(0);
    m.header.protocol = r.protocol.into();
    if delete {
        m.header.scope = RouteScope::NoWhere;
    } else {
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
    }
    m.attributes.push(RouteAttribute::Table(r.table));
    if r.dst_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(r.dst)));
    }
    if let Some(s) = r.src {
        m.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::Inet6(s)));
    }
    if let Some(g) = r.gateway {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet6(g)));
    }
    if let Some(oif) = r.oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(p) = r.priority {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    if let (Some(mtu), false) = (r.mtu, delete) {
        m.attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
    }
    m
}

pub fn new_route(r: &Route) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewRoute(route_message(r, false))
}

pub fn del_route(r: &Route) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelRoute(route_message(r, true))
}

fn rule_message(r: &Rule) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.table = u8::try_from(r.table).unwrap_or(0);
    m.header.action = NlRuleAction::from(u8::from(r.action));
    m.attributes.push(RuleAttribute::Priority(r.priority));
    if r.action == RuleAction::ToTable {
        m.attributes.push(RuleAttribute::Table(r.table));
    }
    if let Some((a, len)) = r.src {
        m.header.src_len = len;
        m.attributes.push(RuleAttribute::Source(IpAddr::V6(a)));
    }
    if let Some((a, len)) = r.dst {
        m.header.dst_len = len;
        m.attributes.push(RuleAttribute::Destination(IpAddr::V6(a)));
    }
    if let Some(i) = &r.iif {
        m.attributes.push(RuleAttribute::Iifname(i.clone()));
    }
    if let Some(o) = &r.oif {
        m.attributes.push(RuleAttribute::Oifname(o.clone()));
    }
    if r.protocol != 0 {
        m.attributes
            .push(RuleAttribute::Protocol(r.protocol.into()));
    }
    m
}

pub fn new_rule(r: &Rule) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewRule(rule_message(r))
}

pub fn del_rule(r: &Rule) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelRule(rule_message(r))
}

fn neighbour_message(n: &Neighbour) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.ifindex = n.index;
    m.header.state = NeighbourState::from(n.state);
    m.header.flags = NeighbourFlags::from_bits_retain(n.flags);
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
            n.addr,
        )));
    if let Some(l) = &n.lladdr {
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(l.clone()));
    }
    if n.protocol != 0 {
        m.attributes
            .push(NeighbourAttribute::Protocol(n.protocol.into()));
    }
    m
}

pub fn new_neighbour(n: &Neighbour) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewNeighbour(neighbour_message(n))
}

pub fn del_neighbour(n: &Neighbour) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelNeighbour(neighbour_message(n))
}
