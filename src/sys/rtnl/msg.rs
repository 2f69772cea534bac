//! rtnetlink messages ⇄ the plain types of [`super`], with no I/O: the socket code sends
//! what [`encode`] builds and hands what it receives to [`parse_datagram`].
//!
//! The struct layouts and attribute codes come from `netlink-packet-route` (rust-netlink);
//! what is ours is the framing of a datagram into messages (bounds-checked, never
//! panicking), the extended-ACK text of errors, and the conversion to and from the few
//! fields the daemon uses.

use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction as NlRuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, IpProtocol, RouteNetlinkMessage};

use super::{Address, Link, Neighbour, Route, RtnlEvent, Rule, RuleAction};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `nlmsgerr` is followed by TLVs (`NLMSGERR_ATTR_*`) when the socket asked for extended
/// ACKs; with `NLM_F_CAPPED` only the request's header precedes them, not the whole request.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The lifetime the kernel reports (and takes) for "forever".
const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// One netlink message of a datagram, reduced to what the request, dump and monitor loops
/// need. `seq` and `pid` are the message header's `nlmsg_seq` and `nlmsg_pid`.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `NLMSG_ERROR` with code 0: the request with this `seq` succeeded.
    Ack { seq: u32 },
    /// `NLMSG_ERROR` with a negative code; `msg` is the kernel's extended-ACK text.
    Error {
        seq: u32,
        errno: i32,
        msg: Option<String>,
    },
    /// `NLMSG_DONE`: the end of a dump.
    Done { seq: u32 },
    /// An object the daemon tracks (IPv6 addresses, routes, rules and neighbours; links).
    Object { seq: u32, event: RtnlEvent },
    /// A well-formed message of a type or family we do not track.
    Other { seq: u32 },
    /// A message whose framing was sound but whose body was not (kept so a dump can go on
    /// and a monitor can count it).
    Garbled { seq: u32, reason: String },
}

impl Parsed {
    pub fn seq(&self) -> u32 {
        match self {
            Parsed::Ack { seq }
            | Parsed::Error { seq, .. }
            | Parsed::Done { seq }
            | Parsed::Object { seq, .. }
            | Parsed::Other { seq }
            | Parsed::Garbled { seq, .. } => *seq,
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a datagram into its netlink messages and decodes each. A broken frame (a length
/// that runs past the datagram or is shorter than a header) is an `InvalidData` error for
/// the whole datagram, since nothing after it can be trusted; a broken body is
/// [`Parsed::Garbled`]. Never panics.
pub fn parse_datagram(data: &[u8]) -> io::Result<Vec<Parsed>> {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len().saturating_sub(at) >= NLMSG_HDRLEN {
        let len = ne_u32(data, at).ok_or_else(|| invalid("netlink header"))? as usize;
        if len < NLMSG_HDRLEN || len > data.len() - at {
            return Err(invalid("netlink message length out of bounds"));
        }
        out.push(parse_message(&data[at..at + len]));
        // The last message may lack its padding.
        at = at.saturating_add(align4(len)).min(data.len());
    }
    Ok(out)
}

/// Decodes one whole netlink message (header included, exactly `nlmsg_len` bytes).
pub fn parse_message(msg: &[u8]) -> Parsed {
    let (Some(msg_type), Some(flags), Some(seq)) = (ne_u16(msg, 4), ne_u16(msg, 6), ne_u32(msg, 8))
    else {
        return Parsed::Garbled {
            seq: 0,
            reason: "short netlink header".into(),
        };
    };
    let body = msg.get(NLMSG_HDRLEN..).unwrap_or(&[]);
    match msg_type {
        NLMSG_ERROR => parse_error(seq, flags, body),
        NLMSG_DONE => Parsed::Done { seq },
        _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
            Ok(m) => match m.payload {
                NetlinkPayload::InnerMessage(inner) => match to_event(inner) {
                    Some(event) => Parsed::Object { seq, event },
                    None => Parsed::Other { seq },
                },
                _ => Parsed::Other { seq },
            },
            Err(e) => Parsed::Garbled {
                seq,
                reason: e.to_string(),
            },
        },
    }
}

/// `struct nlmsgerr { int error; struct nlmsghdr msg; [payload]; [TLVs] }`.
fn parse_error(seq: u32, flags: u16, body: &[u8]) -> Parsed {
    let Some(code) = ne_u32(body, 0).map(|c| c as i32) else {
        return Parsed::Garbled {
            seq,
            reason: "short nlmsgerr".into(),
        };
    };
    if code == 0 {
        return Parsed::Ack { seq };
    }
    // The kernel sends a negative errno; anything else (positive, or i32::MIN, which has
    // no positive counterpart) cannot come from it.
    let Some(errno) = code.checked_neg().filter(|e| *e > 0) else {
        return Parsed::Garbled {
            seq,
            reason: format!("nlmsgerr code {code}"),
        };
    };
    Parsed::Error {
        seq,
        errno,
        msg: extack_message(flags, body.get(4..).unwrap_or(&[])),
    }
}

/// The `NLMSGERR_ATTR_MSG` string after the echoed request, if any.
fn extack_message(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        align4(ne_u32(echoed, 0)? as usize)
    };
    let mut tlvs = echoed.get(skip..)?;
    while tlvs.len() >= 4 {
        let len = ne_u16(tlvs, 0)? as usize;
        let kind = ne_u16(tlvs, 2)? & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or(&[]);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

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

// --- kernel messages → our types ---------------------------------------------------------

fn to_event(m: RouteNetlinkMessage) -> Option<RtnlEvent> {
    Some(match m {
        RouteNetlinkMessage::NewLink(l) => RtnlEvent::NewLink(link_from(&l)),
        RouteNetlinkMessage::DelLink(l) => RtnlEvent::DelLink(link_from(&l)),
        RouteNetlinkMessage::NewAddress(a) => RtnlEvent::NewAddress(address_from(&a)?),
        RouteNetlinkMessage::DelAddress(a) => RtnlEvent::DelAddress(address_from(&a)?),
        RouteNetlinkMessage::NewRoute(r) => RtnlEvent::NewRoute(route_from(&r)?),
        RouteNetlinkMessage::DelRoute(r) => RtnlEvent::DelRoute(route_from(&r)?),
        RouteNetlinkMessage::NewRule(r) => RtnlEvent::NewRule(rule_from(&r)?),
        RouteNetlinkMessage::DelRule(r) => RtnlEvent::DelRule(rule_from(&r)?),
        RouteNetlinkMessage::NewNeighbour(n) => RtnlEvent::NewNeigh(neighbour_from(&n)?),
        RouteNetlinkMessage::DelNeighbour(n) => RtnlEvent::DelNeigh(neighbour_from(&n)?),
        _ => return None,
    })
}

fn link_from(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        up: m.header.flags.contains(LinkFlags::Up),
        running: m.header.flags.contains(LinkFlags::Running),
        mtu: 0,
        kind: None,
        mac: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(mac) => link.mac = Some(mac.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn v6(ip: &IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    }
}

fn lifetime(secs: u32) -> Option<u32> {
    (secs != INFINITY_LIFE_TIME).then_some(secs)
}

fn address_from(m: &AddressMessage) -> Option<Address> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut addr = None;
    let mut local = None;
    let mut flags = u32::from(m.header.flags.bits());
    let mut valid_lft = None;
    let mut preferred_lft = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Address(ip) => addr = v6(ip),
            AddressAttribute::Local(ip) => local = v6(ip),
            // IFA_FLAGS supersedes the 8-bit header field when present.
            AddressAttribute::Flags(f) => flags = f.bits(),
            AddressAttribute::CacheInfo(c) => {
                valid_lft = lifetime(c.ifa_valid);
                preferred_lft = lifetime(c.ifa_preferred);
            }
            _ => {}
        }
    }
    Some(Address {
        index: m.header.index,
        // IFA_LOCAL is the address proper on point-to-point links; IFA_ADDRESS the peer.
        addr: local.or(addr)?,
        prefix_len: m.header.prefix_len,
        flags,
        scope: u8::from(m.header.scope),
        valid_lft,
        preferred_lft,
    })
}

fn route_addr(a: &RouteAddress) -> Option<Ipv6Addr> {
    match a {
        RouteAddress::Inet6(a) => Some(*a),
        _ => None,
    }
}

fn route_from(m: &RouteMessage) -> Option<Route> {
    if m.header.address_family != AddressFamily::Inet6 {
        return None;
    }
    let mut r = Route {
        dst: Ipv6Addr::UNSPECIFIED,
        dst_len: m.header.destination_prefix_length,
        src: None,
        gateway: None,
        oif: None,
        table: u32::from(m.header.table),
        priority: None,
        mtu: None,
        protocol: u8::from(m.header.protocol),
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => r.dst = route_addr(d)?,
            RouteAttribute::PrefSource(s) => r.src = route_addr(s),
            RouteAttribute::Gateway(g) => r.gateway = route_addr(g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Table(t) => r.table = *t,
            RouteAttribute::Priority(p) => r.priority = Some(*p),
            RouteAttribute::Metrics(ms) => {
                for metric in ms {
                    if let RouteMetric::Mtu(mtu) = metric {
                        r.mtu = Some(*mtu);
                    }
                }
            }
            _ => {}
        }
    }
    Some(r)
}

fn rule_from(m: &RuleMessage) -> Option<Rule> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut r = Rule {
        priority: 0,
        table: u32::from(m.header.table),
        src: None,
        dst: None,
        iif: None,
        oif: None,
        protocol: 0,
        action: RuleAction::from(u8::from(m.header.action)),
    };
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => r.priority = *p,
            RuleAttribute::Table(t) => r.table = *t,
            RuleAttribute::Source(ip) => r.src = Some((v6(ip)?, m.header.src_len)),
            RuleAttribute::Destination(ip) => r.dst = Some((v6(ip)?, m.header.dst_len)),
            RuleAttribute::Iifname(n) => r.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => r.oif = Some(n.clone()),
            RuleAttribute::Protocol(p) => r.protocol = u8::from(*p),
            _ => {}
        }
    }
    Some(r)
}

fn neighbour_from(m: &NeighbourMessage) -> Option<Neighbour> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut addr = None;
    let mut lladdr = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(d)) => addr = Some(*d),
            NeighbourAttribute::LinkLayerAddress(l) => lladdr = Some(l.clone()),
            _ => {}
        }
    }
    Some(Neighbour {
        index: m.header.ifindex,
        addr: addr?,
        lladdr,
        state: u16::from(m.header.state),
        flags: m.header.flags.bits(),
    })
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
    let data = InfoData::IpTunnel(vec![
        InfoIpTunnel::Local(IpAddr::V6(local)),
        InfoIpTunnel::Remote(IpAddr::V6(remote)),
        InfoIpTunnel::Protocol(IpProtocol::Ipv6),
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
    m
}

pub fn new_neighbour(n: &Neighbour) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewNeighbour(neighbour_message(n))
}

pub fn del_neighbour(n: &Neighbour) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelNeighbour(neighbour_message(n))
}
