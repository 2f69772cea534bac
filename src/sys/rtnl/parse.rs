//! rtnetlink messages from the kernel → the plain types of [`super`], without I/O.
//!
//! Written by hand over the uapi layouts (`linux/netlink.h`, `rtnetlink.h`, `if_addr.h`,
//! `if_link.h`, `fib_rules.h`, `neighbour.h`) rather than with `netlink-packet-route`,
//! whose parsers panic on some short attributes (cargo fuzz found `IFA_CACHEINFO` shorter
//! than 16 bytes, `address/cache_info.rs`); we only read the fields the daemon uses, each
//! length-checked. Tested against messages the kernel produced (`testdata/`), against
//! the requests `netlink-packet-route` encodes for us, and by `fuzz_targets/rtnl.rs`.
//!
//! ```text
//! nlmsghdr     { u32 len; u16 type; u16 flags; u32 seq; u32 pid }            16 bytes
//! nlmsgerr     { i32 error; nlmsghdr request; [request body]; [TLVs] }
//! ifinfomsg    { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change } 16
//! ifaddrmsg    { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index }         8
//! rtmsg        { u8 family, dst_len, src_len, tos, table, protocol, scope, type;
//!                u32 flags }                                                      12
//! fib_rule_hdr { u8 family, dst_len, src_len, tos, table, res1, res2, action;
//!                u32 flags }                                                      12
//! ndmsg        { u8 family; u8 pad; u16 pad; i32 ifindex; u16 state; u8 flags;
//!                u8 type }                                                        12
//! attribute    { u16 nla_len; u16 nla_type; value; pad to 4 }
//! ```
//! All in host byte order.

use std::io;
use std::net::Ipv6Addr;

use super::{Address, Link, Neighbour, Route, RtnlEvent, Rule, RuleAction};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `nlmsgerr` is followed by TLVs (`NLMSGERR_ATTR_*`) when the socket asked for extended
/// ACKs; with `NLM_F_CAPPED` only the request's header precedes them, not the whole request.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `nla_type` carries two flag bits (nested, network byte order) above the type proper.
const NLA_TYPE_MASK: u16 = 0x3fff;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

const AF_INET6: u8 = 10;

const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
/// The longest link-layer address the kernel has (`MAX_ADDR_LEN`).
const MAX_ADDR_LEN: usize = 32;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
/// The lifetime the kernel reports for "forever".
const INFINITY_LIFE_TIME: u32 = u32::MAX;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTA_TABLE: u16 = 15;
const RTAX_MTU: u16 = 2;

const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;
const FRA_OIFNAME: u16 = 17;
const FRA_PROTOCOL: u16 = 21;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_PROTOCOL: u16 = 12;

/// One netlink message of a datagram, reduced to what the request, dump and monitor loops
/// need. `seq` is the message header's `nlmsg_seq`.
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
    Garbled { seq: u32, reason: &'static str },
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
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
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

/// Decodes one whole netlink message (header included, `nlmsg_len` bytes).
pub fn parse_message(msg: &[u8]) -> Parsed {
    let (Some(kind), Some(flags), Some(seq)) = (ne_u16(msg, 4), ne_u16(msg, 6), ne_u32(msg, 8))
    else {
        return Parsed::Garbled {
            seq: 0,
            reason: "short netlink header",
        };
    };
    let body = msg.get(NLMSG_HDRLEN..).unwrap_or(&[]);
    let event = match kind {
        NLMSG_ERROR => return parse_error(seq, flags, body),
        NLMSG_DONE => return Parsed::Done { seq },
        RTM_NEWLINK => link(body).map(|l| l.map(RtnlEvent::NewLink)),
        RTM_DELLINK => link(body).map(|l| l.map(RtnlEvent::DelLink)),
        RTM_NEWADDR => address(body).map(|a| a.map(RtnlEvent::NewAddress)),
        RTM_DELADDR => address(body).map(|a| a.map(RtnlEvent::DelAddress)),
        RTM_NEWROUTE => route(body).map(|r| r.map(RtnlEvent::NewRoute)),
        RTM_DELROUTE => route(body).map(|r| r.map(RtnlEvent::DelRoute)),
        RTM_NEWRULE => rule(body).map(|r| r.map(RtnlEvent::NewRule)),
        RTM_DELRULE => rule(body).map(|r| r.map(RtnlEvent::DelRule)),
        RTM_NEWNEIGH => neighbour(body).map(|n| n.map(RtnlEvent::NewNeigh)),
        RTM_DELNEIGH => neighbour(body).map(|n| n.map(RtnlEvent::DelNeigh)),
        _ => Ok(None),
    };
    match event {
        Ok(Some(event)) => Parsed::Object { seq, event },
        Ok(None) => Parsed::Other { seq },
        Err(reason) => Parsed::Garbled { seq, reason },
    }
}

/// `struct nlmsgerr { int error; struct nlmsghdr msg; [payload]; [TLVs] }`.
fn parse_error(seq: u32, flags: u16, body: &[u8]) -> Parsed {
    let Some(code) = ne_u32(body, 0).map(|c| c as i32) else {
        return Parsed::Garbled {
            seq,
            reason: "short nlmsgerr",
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
            reason: "nlmsgerr code is not a negative errno",
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
    let tlvs = attributes(echoed.get(skip..)?).ok()?;
    let (_, text) = tlvs.into_iter().find(|(t, _)| *t == NLMSGERR_ATTR_MSG)?;
    Some(string(text))
}

// --- attributes ----------------------------------------------------------------------------

type Garbled = &'static str;
/// Attributes as (type without the flag bits, value).
type Attrs<'a> = Vec<(u16, &'a [u8])>;

/// The attributes of `b` as (type, value). An attribute shorter than its header or longer
/// than what is left is an error; a tail too short for a header is ignored (padding).
fn attributes(mut b: &[u8]) -> Result<Attrs<'_>, Garbled> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = ne_u16(b, 0).ok_or("attribute header")? as usize;
        let kind = ne_u16(b, 2).ok_or("attribute header")? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return Err("attribute length out of bounds");
        }
        out.push((kind, &b[4..len]));
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

fn u32_attr(v: &[u8]) -> Result<u32, Garbled> {
    let a: [u8; 4] = v
        .try_into()
        .map_err(|_| "u32 attribute of the wrong size")?;
    Ok(u32::from_ne_bytes(a))
}

fn u8_attr(v: &[u8]) -> Result<u8, Garbled> {
    match v {
        [b] => Ok(*b),
        _ => Err("u8 attribute of the wrong size"),
    }
}

fn ipv6_attr(v: &[u8]) -> Result<Ipv6Addr, Garbled> {
    let a: [u8; 16] = v
        .try_into()
        .map_err(|_| "IPv6 address attribute of the wrong size")?;
    Ok(Ipv6Addr::from(a))
}

/// A NUL-terminated string attribute (the NUL is optional: lenient on what we read).
fn string(v: &[u8]) -> String {
    let text = v.split(|b| *b == 0).next().unwrap_or(&[]);
    String::from_utf8_lossy(text).into_owned()
}

/// The fixed header of `len` bytes and the attributes after it.
fn header(body: &[u8], len: usize) -> Result<(&[u8], Attrs<'_>), Garbled> {
    let h = body.get(..len).ok_or("short message header")?;
    let attrs = attributes(body.get(align4(len)..).unwrap_or(&[]))?;
    Ok((h, attrs))
}

// --- the objects ---------------------------------------------------------------------------

fn link(body: &[u8]) -> Result<Option<Link>, Garbled> {
    let (h, attrs) = header(body, 16)?;
    let flags = ne_u32(h, 8).ok_or("ifinfomsg")?;
    let mut l = Link {
        index: ne_u32(h, 4).ok_or("ifinfomsg")?,
        name: String::new(),
        up: flags & IFF_UP != 0,
        running: flags & IFF_RUNNING != 0,
        mtu: 0,
        kind: None,
        mac: None,
    };
    for (t, v) in attrs {
        match t {
            IFLA_IFNAME => l.name = string(v),
            IFLA_MTU => l.mtu = u32_attr(v)?,
            IFLA_ADDRESS if v.len() <= MAX_ADDR_LEN => l.mac = Some(v.to_vec()),
            IFLA_ADDRESS => return Err("link-layer address too long"),
            IFLA_LINKINFO => {
                for (t, v) in attributes(v)? {
                    if t == IFLA_INFO_KIND {
                        l.kind = Some(string(v));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(l))
}

fn lifetime(secs: u32) -> Option<u32> {
    (secs != INFINITY_LIFE_TIME).then_some(secs)
}

fn address(body: &[u8]) -> Result<Option<Address>, Garbled> {
    let (h, attrs) = header(body, 8)?;
    if h[0] != AF_INET6 {
        return Ok(None);
    }
    let (mut addr, mut local) = (None, None);
    let mut a = Address {
        index: ne_u32(h, 4).ok_or("ifaddrmsg")?,
        addr: Ipv6Addr::UNSPECIFIED,
        prefix_len: h[1],
        flags: u32::from(h[2]),
        scope: h[3],
        valid_lft: None,
        preferred_lft: None,
    };
    for (t, v) in attrs {
        match t {
            IFA_ADDRESS => addr = Some(ipv6_attr(v)?),
            IFA_LOCAL => local = Some(ipv6_attr(v)?),
            // IFA_FLAGS supersedes the 8-bit header field when present.
            IFA_FLAGS => a.flags = u32_attr(v)?,
            IFA_CACHEINFO => {
                // struct ifa_cacheinfo { u32 prefered, valid, cstamp, tstamp }
                if v.len() != 16 {
                    return Err("IFA_CACHEINFO of the wrong size");
                }
                a.preferred_lft = lifetime(ne_u32(v, 0).ok_or("IFA_CACHEINFO")?);
                a.valid_lft = lifetime(ne_u32(v, 4).ok_or("IFA_CACHEINFO")?);
            }
            _ => {}
        }
    }
    // IFA_LOCAL is the address proper on point-to-point links; IFA_ADDRESS the peer.
    a.addr = local.or(addr).ok_or("address message without an address")?;
    Ok(Some(a))
}

fn route(body: &[u8]) -> Result<Option<Route>, Garbled> {
    let (h, attrs) = header(body, 12)?;
    if h[0] != AF_INET6 {
        return Ok(None);
    }
    let mut r = Route {
        dst: Ipv6Addr::UNSPECIFIED,
        dst_len: h[1],
        src: None,
        gateway: None,
        oif: None,
        table: u32::from(h[4]),
        priority: None,
        mtu: None,
        protocol: h[5],
    };
    for (t, v) in attrs {
        match t {
            RTA_DST => r.dst = ipv6_attr(v)?,
            RTA_PREFSRC => r.src = Some(ipv6_attr(v)?),
            RTA_GATEWAY => r.gateway = Some(ipv6_attr(v)?),
            RTA_OIF => r.oif = Some(u32_attr(v)?),
            RTA_TABLE => r.table = u32_attr(v)?,
            RTA_PRIORITY => r.priority = Some(u32_attr(v)?),
            RTA_METRICS => {
                for (t, v) in attributes(v)? {
                    if t == RTAX_MTU {
                        r.mtu = Some(u32_attr(v)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(r))
}

fn rule(body: &[u8]) -> Result<Option<Rule>, Garbled> {
    let (h, attrs) = header(body, 12)?;
    if h[0] != AF_INET6 {
        return Ok(None);
    }
    let (dst_len, src_len) = (h[1], h[2]);
    let mut r = Rule {
        priority: 0,
        table: u32::from(h[4]),
        src: None,
        dst: None,
        iif: None,
        oif: None,
        protocol: 0,
        action: RuleAction::from(h[7]),
    };
    for (t, v) in attrs {
        match t {
            FRA_PRIORITY => r.priority = u32_attr(v)?,
            FRA_TABLE => r.table = u32_attr(v)?,
            FRA_SRC => r.src = Some((ipv6_attr(v)?, src_len)),
            FRA_DST => r.dst = Some((ipv6_attr(v)?, dst_len)),
            FRA_IIFNAME => r.iif = Some(string(v)),
            FRA_OIFNAME => r.oif = Some(string(v)),
            FRA_PROTOCOL => r.protocol = u8_attr(v)?,
            _ => {}
        }
    }
    Ok(Some(r))
}

fn neighbour(body: &[u8]) -> Result<Option<Neighbour>, Garbled> {
    let (h, attrs) = header(body, 12)?;
    if h[0] != AF_INET6 {
        return Ok(None);
    }
    let mut addr = None;
    let mut n = Neighbour {
        index: ne_u32(h, 4).ok_or("ndmsg")?,
        addr: Ipv6Addr::UNSPECIFIED,
        lladdr: None,
        state: ne_u16(h, 8).ok_or("ndmsg")?,
        flags: h[10],
        protocol: 0,
    };
    for (t, v) in attrs {
        match t {
            NDA_DST => addr = Some(ipv6_attr(v)?),
            NDA_LLADDR if v.len() <= MAX_ADDR_LEN => n.lladdr = Some(v.to_vec()),
            NDA_LLADDR => return Err("link-layer address too long"),
            NDA_PROTOCOL => n.protocol = u8_attr(v)?,
            _ => {}
        }
    }
    n.addr = addr.ok_or("neighbour message without an address")?;
    Ok(Some(n))
}
