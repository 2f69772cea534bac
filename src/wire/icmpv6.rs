//! ICMPv6 messages Mobile IPv6 uses: Dynamic Home Agent Address Discovery and Mobile
//! Prefix Solicitation/Advertisement (RFC 6275 §6.5–§6.8), Router Advertisements with the
//! Mobile IPv6 extensions (RFC 6275 §7, RFC 4861 §4.2, RFC 4191), Router Solicitations,
//! the errors of RFC 4443 a mobility daemon sends or reacts to, and Echo.
//!
//! Every ICMPv6 message starts with the same four bytes (RFC 4443 §2.1):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Message Body                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Every error here is a silent drop: ICMPv6 messages are never answered with ICMPv6
//! errors (RFC 4443 §2.4 (e)), and RFC 4861 §6.1 discards invalid ND messages silently.
//! Checks that need the IP header (hop limit 255, link-local source, IPsec protection of
//! Mobile Prefix messages) are the caller's.

use std::fmt;
use std::net::Ipv6Addr;

use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::sequence::tuple;
use nom::IResult;

use super::checksum;
use super::error::{Error, ErrorKind, ReceiverAction, Result};
use super::proto;

pub const TYPE_DESTINATION_UNREACHABLE: u8 = 1;
pub const TYPE_PARAMETER_PROBLEM: u8 = 4;
pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_ROUTER_SOLICITATION: u8 = 133;
pub const TYPE_ROUTER_ADVERTISEMENT: u8 = 134;
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
pub const TYPE_HAAD_REQUEST: u8 = 144;
pub const TYPE_HAAD_REPLY: u8 = 145;
pub const TYPE_MOBILE_PREFIX_SOLICITATION: u8 = 146;
pub const TYPE_MOBILE_PREFIX_ADVERTISEMENT: u8 = 147;

pub const ND_OPT_SOURCE_LINK_LAYER: u8 = 1;
pub const ND_OPT_TARGET_LINK_LAYER: u8 = 2;
pub const ND_OPT_PREFIX_INFORMATION: u8 = 3;
pub const ND_OPT_MTU: u8 = 5;
pub const ND_OPT_ADVERTISEMENT_INTERVAL: u8 = 7;
pub const ND_OPT_HOME_AGENT_INFO: u8 = 8;

/// The most of an invoking packet an error message may quote: the IPv6 minimum MTU less
/// the IPv6 and ICMPv6 headers (RFC 4443 §2.4 (c)). Callers truncate; `emit` does not.
pub const MAX_INVOKING_LEN: usize = 1280 - 40 - 8;

fn truncated(_: nom::Err<nom::error::Error<&[u8]>>) -> Error {
    Error::drop(ErrorKind::Truncated)
}

fn bad_icmpv6() -> Error {
    Error::drop(ErrorKind::BadIcmpv6)
}

fn ipv6_addr(i: &[u8]) -> IResult<&[u8], Ipv6Addr> {
    let (i, b) = take(16usize)(i)?;
    let mut o = [0u8; 16];
    o.copy_from_slice(b);
    Ok((i, Ipv6Addr::from(o)))
}

fn addr_at(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

// ---------------------------------------------------------------------------------------
// Neighbor Discovery options (RFC 4861 §4.6, RFC 6275 §7.2–§7.4)
// ---------------------------------------------------------------------------------------

/// A Neighbor Discovery option:
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |    Length     |              ...              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ~                              ...                              ~
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Length counts 8-octet units including Type and Length. The variants' layouts:
///
/// Prefix Information (type 3, length 4; R flag from RFC 6275 §7.2):
/// ```text
/// |     Type      |    Length     | Prefix Length |L|A|R|Reserved1|
/// |                         Valid Lifetime                        |
/// |                       Preferred Lifetime                      |
/// |                           Reserved2                           |
/// |                     Prefix (16 octets)                        |
/// ```
/// MTU (type 5), Advertisement Interval (type 7, RFC 6275 §7.3), Home Agent Information
/// (type 8, RFC 6275 §7.4), all length 1:
/// ```text
/// |     Type      |    Length     |           Reserved            |
/// |                      MTU / Advertisement Interval             |
///
/// |     Type      |    Length     |           Reserved            |
/// |    Home Agent Preference      |      Home Agent Lifetime      |
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdOption {
    /// The link-layer address; on parse, everything after Type and Length (an Ethernet
    /// address is exactly its 6 bytes), on emit zero-padded to a multiple of 8.
    SourceLinkLayer(Vec<u8>),
    /// The target's link-layer address (Neighbor Advertisement), same encoding.
    TargetLinkLayer(Vec<u8>),
    PrefixInformation {
        prefix_len: u8,
        /// On-link.
        l: bool,
        /// Autonomous address configuration.
        a: bool,
        /// Router address (RFC 6275 §7.2): `prefix` is the router's full global address.
        r: bool,
        valid_lifetime: u32,
        preferred_lifetime: u32,
        prefix: Ipv6Addr,
    },
    Mtu(u32),
    /// Milliseconds between unsolicited RAs (RFC 6275 §7.3).
    AdvertisementInterval(u32),
    /// RFC 6275 §7.4: preference is a signed 16-bit integer (higher is better, 0 when the
    /// option is absent); lifetime is in seconds.
    HomeAgentInfo {
        preference: i16,
        lifetime: u16,
    },
    /// Any other option, kept whole (RFC 4861 §4.6: unrecognised options are ignored);
    /// `data` is everything after Type and Length.
    Unknown {
        opt_type: u8,
        data: Vec<u8>,
    },
}

impl NdOption {
    /// Stable kebab-case name for logs and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            NdOption::SourceLinkLayer(_) => "source-link-layer-address",
            NdOption::TargetLinkLayer(_) => "target-link-layer-address",
            NdOption::PrefixInformation { .. } => "prefix-information",
            NdOption::Mtu(_) => "mtu",
            NdOption::AdvertisementInterval(_) => "advertisement-interval",
            NdOption::HomeAgentInfo { .. } => "home-agent-information",
            NdOption::Unknown { .. } => "unknown",
        }
    }

    /// Parses the options filling `data` exactly.
    ///
    /// Errors (all drop): an option with Length 0 → `BadOptionLength` (RFC 4861 §4.6 /
    /// §6.1: the message is silently discarded; a zero length would also loop forever,
    /// the umip bug of CVE-2010-2522); an option running past the end, or a lone trailing
    /// byte → `OptionOverrun`; a known option whose Length is not its fixed size →
    /// `BadOptionLength`; a Prefix Length above 128 → `BadField`.
    pub fn parse_all(mut data: &[u8]) -> Result<Vec<NdOption>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (opt, len) = NdOption::parse_one(data)?;
            out.push(opt);
            data = &data[len..];
        }
        Ok(out)
    }

    fn parse_one(data: &[u8]) -> Result<(NdOption, usize)> {
        let (_, (opt_type, units)) =
            tuple((be_u8, be_u8))(data).map_err(|_: nom::Err<nom::error::Error<&[u8]>>| {
                Error::drop(ErrorKind::OptionOverrun)
            })?;
        if units == 0 {
            return Err(Error::drop(ErrorKind::BadOptionLength));
        }
        let len = usize::from(units) * 8;
        if len > data.len() {
            return Err(Error::drop(ErrorKind::OptionOverrun));
        }
        let body = &data[2..len];
        let fixed = |want: u8| {
            if units == want {
                Ok(())
            } else {
                Err(Error::drop(ErrorKind::BadOptionLength))
            }
        };
        let opt = match opt_type {
            ND_OPT_SOURCE_LINK_LAYER => NdOption::SourceLinkLayer(body.to_vec()),
            ND_OPT_TARGET_LINK_LAYER => NdOption::TargetLinkLayer(body.to_vec()),
            ND_OPT_PREFIX_INFORMATION => {
                fixed(4)?;
                let (_, (prefix_len, flags, valid_lifetime, preferred_lifetime, _, prefix)) =
                    tuple((be_u8, be_u8, be_u32, be_u32, be_u32, ipv6_addr))(body)
                        .map_err(truncated)?;
                if prefix_len > 128 {
                    return Err(Error::drop(ErrorKind::BadField));
                }
                NdOption::PrefixInformation {
                    prefix_len,
                    l: flags & 0x80 != 0,
                    a: flags & 0x40 != 0,
                    r: flags & 0x20 != 0,
                    valid_lifetime,
                    preferred_lifetime,
                    prefix,
                }
            }
            ND_OPT_MTU | ND_OPT_ADVERTISEMENT_INTERVAL => {
                fixed(1)?;
                let (_, (_, v)) = tuple((be_u16, be_u32))(body).map_err(truncated)?;
                if opt_type == ND_OPT_MTU {
                    NdOption::Mtu(v)
                } else {
                    NdOption::AdvertisementInterval(v)
                }
            }
            ND_OPT_HOME_AGENT_INFO => {
                fixed(1)?;
                let (_, (_, preference, lifetime)) =
                    tuple((be_u16, be_u16, be_u16))(body).map_err(truncated)?;
                NdOption::HomeAgentInfo {
                    preference: preference as i16,
                    lifetime,
                }
            }
            _ => NdOption::Unknown {
                opt_type,
                data: body.to_vec(),
            },
        };
        Ok((opt, len))
    }

    /// Emitted length, a multiple of 8.
    pub fn buffer_len(&self) -> usize {
        match self {
            NdOption::SourceLinkLayer(d)
            | NdOption::TargetLinkLayer(d)
            | NdOption::Unknown { data: d, .. } => (2 + d.len()).div_ceil(8) * 8,
            NdOption::PrefixInformation { .. } => 32,
            NdOption::Mtu(_) | NdOption::AdvertisementInterval(_) => 8,
            NdOption::HomeAgentInfo { .. } => 8,
        }
    }

    /// Writes the option into `buf[..self.buffer_len()]`.
    ///
    /// # Panics
    /// If `buf` is too short or a variable option is longer than 2040 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf.fill(0);
        buf[1] = u8::try_from(len / 8).expect("ND option longer than 2040 bytes");
        match self {
            NdOption::SourceLinkLayer(d) | NdOption::TargetLinkLayer(d) => {
                buf[0] = if matches!(self, NdOption::SourceLinkLayer(_)) {
                    ND_OPT_SOURCE_LINK_LAYER
                } else {
                    ND_OPT_TARGET_LINK_LAYER
                };
                buf[2..2 + d.len()].copy_from_slice(d);
            }
            NdOption::Unknown { opt_type, data } => {
                buf[0] = *opt_type;
                buf[2..2 + data.len()].copy_from_slice(data);
            }
            NdOption::PrefixInformation {
                prefix_len,
                l,
                a,
                r,
                valid_lifetime,
                preferred_lifetime,
                prefix,
            } => {
                buf[0] = ND_OPT_PREFIX_INFORMATION;
                buf[2] = *prefix_len;
                buf[3] = flag(*l) << 7 | flag(*a) << 6 | flag(*r) << 5;
                buf[4..8].copy_from_slice(&valid_lifetime.to_be_bytes());
                buf[8..12].copy_from_slice(&preferred_lifetime.to_be_bytes());
                buf[16..32].copy_from_slice(&prefix.octets());
            }
            NdOption::Mtu(v) | NdOption::AdvertisementInterval(v) => {
                buf[0] = if matches!(self, NdOption::Mtu(_)) {
                    ND_OPT_MTU
                } else {
                    ND_OPT_ADVERTISEMENT_INTERVAL
                };
                buf[4..8].copy_from_slice(&v.to_be_bytes());
            }
            NdOption::HomeAgentInfo {
                preference,
                lifetime,
            } => {
                buf[0] = ND_OPT_HOME_AGENT_INFO;
                buf[4..6].copy_from_slice(&preference.to_be_bytes());
                buf[6..8].copy_from_slice(&lifetime.to_be_bytes());
            }
        }
    }
}

impl fmt::Display for NdOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            NdOption::SourceLinkLayer(d) | NdOption::TargetLinkLayer(d) => {
                for (i, b) in d.iter().enumerate() {
                    write!(f, "{}{b:02x}", if i == 0 { ' ' } else { ':' })?;
                }
                Ok(())
            }
            NdOption::PrefixInformation {
                prefix_len,
                l,
                a,
                r,
                valid_lifetime,
                preferred_lifetime,
                prefix,
            } => write!(
                f,
                " {prefix}/{prefix_len} L={} A={} R={} valid={valid_lifetime} preferred={preferred_lifetime}",
                flag(*l),
                flag(*a),
                flag(*r)
            ),
            NdOption::Mtu(v) => write!(f, " {v}"),
            NdOption::AdvertisementInterval(v) => write!(f, " {v}ms"),
            NdOption::HomeAgentInfo {
                preference,
                lifetime,
            } => write!(f, " preference={preference} lifetime={lifetime}"),
            NdOption::Unknown { opt_type, data } => {
                write!(f, " type={opt_type} len={}", data.len())
            }
        }
    }
}

fn options_len(options: &[NdOption]) -> usize {
    options.iter().map(NdOption::buffer_len).sum()
}

fn emit_options(options: &[NdOption], buf: &mut [u8]) {
    let mut off = 0;
    for o in options {
        o.emit(&mut buf[off..]);
        off += o.buffer_len();
    }
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// Default Router Preference of an RA (RFC 4191 §2.2), two bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouterPreference {
    #[default]
    Medium,
    High,
    Low,
    /// `10`: RFC 4191 says a receiver MUST treat it as Medium; kept distinct so that what
    /// was received can be logged and re-emitted as is.
    Reserved,
}

impl RouterPreference {
    pub fn from_bits(bits: u8) -> RouterPreference {
        match bits & 0b11 {
            0b00 => RouterPreference::Medium,
            0b01 => RouterPreference::High,
            0b11 => RouterPreference::Low,
            _ => RouterPreference::Reserved,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            RouterPreference::Medium => 0b00,
            RouterPreference::High => 0b01,
            RouterPreference::Low => 0b11,
            RouterPreference::Reserved => 0b10,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RouterPreference::Medium => "medium",
            RouterPreference::High => "high",
            RouterPreference::Low => "low",
            RouterPreference::Reserved => "reserved",
        }
    }
}

/// An ICMPv6 message. Layouts after the common 4 bytes:
///
/// Destination Unreachable (1) / Parameter Problem (4), RFC 4443 §3.1, §3.4:
/// ```text
/// |                        Unused / Pointer                       |
/// |    As much of invoking packet as possible without the ICMPv6  |
/// +               packet exceeding the minimum IPv6 MTU           +
/// ```
/// Echo Request / Reply (128 / 129), RFC 4443 §4:
/// ```text
/// |           Identifier          |        Sequence Number        |
/// |     Data ...
/// ```
/// Router Solicitation (133), RFC 4861 §4.1:
/// ```text
/// |                            Reserved                           |
/// |   Options ...
/// ```
/// Router Advertisement (134), RFC 4861 §4.2 with the H bit of RFC 6275 §7.1 and the
/// Prf field of RFC 4191:
/// ```text
/// | Cur Hop Limit |M|O|H|Prf|Resvd|       Router Lifetime         |
/// |                         Reachable Time                        |
/// |                          Retrans Timer                        |
/// |   Options ...
/// ```
/// Home Agent Address Discovery Request (144), RFC 6275 §6.5, and Reply (145), §6.6,
/// with the R (mobile router) flag of RFC 3963 §4.2:
/// ```text
/// |          Identifier           |R|          Reserved           |
/// +                     Home Agent Addresses (Reply only)         +
/// ```
/// Mobile Prefix Solicitation (146), RFC 6275 §6.7, and Advertisement (147), §6.8:
/// ```text
/// |           Identifier          |            Reserved           |
///
/// |           Identifier          |M|O|        Reserved           |
/// |   Options ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Icmpv6Repr {
    DestinationUnreachable {
        code: u8,
        invoking: Vec<u8>,
    },
    ParameterProblem {
        code: u8,
        pointer: u32,
        invoking: Vec<u8>,
    },
    EchoRequest {
        id: u16,
        seq: u16,
        data: Vec<u8>,
    },
    EchoReply {
        id: u16,
        seq: u16,
        data: Vec<u8>,
    },
    RouterSolicitation {
        options: Vec<NdOption>,
    },
    RouterAdvertisement {
        hop_limit: u8,
        m: bool,
        o: bool,
        /// Home Agent flag (RFC 6275 §7.1): the router is also a home agent.
        h: bool,
        prf: RouterPreference,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_timer: u32,
        options: Vec<NdOption>,
    },
    /// RFC 4861 §4.3; the home agent's DAD for a home address (RFC 6275 §10.4.1).
    NeighborSolicitation {
        target: Ipv6Addr,
        options: Vec<NdOption>,
    },
    /// RFC 4861 §4.4; the home agent's unsolicited advertisements on behalf of a mobile
    /// node (RFC 6275 §10.4.1), with `o` (override) set.
    NeighborAdvertisement {
        r: bool,
        s: bool,
        o: bool,
        target: Ipv6Addr,
        options: Vec<NdOption>,
    },
    /// `r`: the requester is a mobile router (RFC 3963); note that scapy sets it by
    /// default in its `ICMPv6HAADRequest`.
    HaadRequest {
        identifier: u16,
        r: bool,
    },
    HaadReply {
        identifier: u16,
        r: bool,
        home_agents: Vec<Ipv6Addr>,
    },
    MobilePrefixSolicitation {
        identifier: u16,
    },
    MobilePrefixAdvertisement {
        identifier: u16,
        m: bool,
        o: bool,
        options: Vec<NdOption>,
    },
    /// Any other type, or an Echo with a non-zero code, kept whole: `body` is everything
    /// after the checksum.
    Other {
        msg_type: u8,
        code: u8,
        body: Vec<u8>,
    },
}

impl Icmpv6Repr {
    /// Stable kebab-case name for logs and JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Icmpv6Repr::DestinationUnreachable { .. } => "destination-unreachable",
            Icmpv6Repr::ParameterProblem { .. } => "parameter-problem",
            Icmpv6Repr::EchoRequest { .. } => "echo-request",
            Icmpv6Repr::EchoReply { .. } => "echo-reply",
            Icmpv6Repr::RouterSolicitation { .. } => "router-solicitation",
            Icmpv6Repr::RouterAdvertisement { .. } => "router-advertisement",
            Icmpv6Repr::NeighborSolicitation { .. } => "neighbor-solicitation",
            Icmpv6Repr::NeighborAdvertisement { .. } => "neighbor-advertisement",
            Icmpv6Repr::HaadRequest { .. } => "haad-request",
            Icmpv6Repr::HaadReply { .. } => "haad-reply",
            Icmpv6Repr::MobilePrefixSolicitation { .. } => "mobile-prefix-solicitation",
            Icmpv6Repr::MobilePrefixAdvertisement { .. } => "mobile-prefix-advertisement",
            Icmpv6Repr::Other { .. } => "other",
        }
    }

    /// The Type byte.
    pub fn msg_type(&self) -> u8 {
        match self {
            Icmpv6Repr::DestinationUnreachable { .. } => TYPE_DESTINATION_UNREACHABLE,
            Icmpv6Repr::ParameterProblem { .. } => TYPE_PARAMETER_PROBLEM,
            Icmpv6Repr::EchoRequest { .. } => TYPE_ECHO_REQUEST,
            Icmpv6Repr::EchoReply { .. } => TYPE_ECHO_REPLY,
            Icmpv6Repr::RouterSolicitation { .. } => TYPE_ROUTER_SOLICITATION,
            Icmpv6Repr::RouterAdvertisement { .. } => TYPE_ROUTER_ADVERTISEMENT,
            Icmpv6Repr::NeighborSolicitation { .. } => TYPE_NEIGHBOR_SOLICITATION,
            Icmpv6Repr::NeighborAdvertisement { .. } => TYPE_NEIGHBOR_ADVERTISEMENT,
            Icmpv6Repr::HaadRequest { .. } => TYPE_HAAD_REQUEST,
            Icmpv6Repr::HaadReply { .. } => TYPE_HAAD_REPLY,
            Icmpv6Repr::MobilePrefixSolicitation { .. } => TYPE_MOBILE_PREFIX_SOLICITATION,
            Icmpv6Repr::MobilePrefixAdvertisement { .. } => TYPE_MOBILE_PREFIX_ADVERTISEMENT,
            Icmpv6Repr::Other { msg_type, .. } => *msg_type,
        }
    }

    /// Error messages have types below 128 (RFC 4443 §2.1); a node must never answer one
    /// with another error.
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// The Parameter Problem a receiver owes for `err`, quoting `invoking` (the offending
    /// packet from its IPv6 header on, truncated here to [`MAX_INVOKING_LEN`]), or `None`
    /// when the error's duty is not a Parameter Problem. `err`'s pointer must already
    /// count from the IPv6 header ([`Error::rebase`]).
    pub fn param_problem_for(err: &Error, invoking: &[u8]) -> Option<Icmpv6Repr> {
        match err.action {
            ReceiverAction::ParameterProblem { code, pointer } => {
                Some(Icmpv6Repr::ParameterProblem {
                    code,
                    pointer,
                    invoking: invoking[..invoking.len().min(MAX_INVOKING_LEN)].to_vec(),
                })
            }
            _ => None,
        }
    }

    /// Verifies the checksum over the pseudo-header of `src` → `dst` (the addresses the
    /// final receiver sees, see [`checksum`]) and parses.
    pub fn parse_checked(data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Icmpv6Repr> {
        if data.len() < 4 {
            return Err(Error::drop(ErrorKind::Truncated));
        }
        if !checksum::verify(src, dst, proto::ICMPV6, data) {
            return Err(Error::drop(ErrorKind::BadChecksum));
        }
        Icmpv6Repr::parse(data)
    }

    /// Parses the structure of an ICMPv6 message filling `data` (the IPv6 payload after
    /// any extension headers); the checksum is not looked at.
    ///
    /// Errors (all drop): fewer than 4 bytes → `Truncated`; a code other than 0 for RS,
    /// RA, DHAAD and Mobile Prefix messages (RFC 4861 §6.1, RFC 6275 §6.5–§6.8), or a
    /// message shorter than its fixed part (8 bytes, 16 for an RA), or a DHAAD Reply
    /// whose address list is not a whole number of addresses → `BadIcmpv6`; option
    /// errors as in [`NdOption::parse_all`]. Reserved fields are ignored.
    pub fn parse(data: &[u8]) -> Result<Icmpv6Repr> {
        let (body, (msg_type, code, _checksum)) =
            tuple((be_u8, be_u8, be_u16))(data).map_err(truncated)?;
        let zero_code = matches!(
            msg_type,
            TYPE_ROUTER_SOLICITATION
                | TYPE_ROUTER_ADVERTISEMENT
                | TYPE_NEIGHBOR_SOLICITATION
                | TYPE_NEIGHBOR_ADVERTISEMENT
                | TYPE_HAAD_REQUEST
                | TYPE_HAAD_REPLY
                | TYPE_MOBILE_PREFIX_SOLICITATION
                | TYPE_MOBILE_PREFIX_ADVERTISEMENT
        );
        if zero_code && code != 0 {
            return Err(bad_icmpv6());
        }
        let min_body = match msg_type {
            TYPE_ROUTER_ADVERTISEMENT => 12,
            TYPE_NEIGHBOR_SOLICITATION | TYPE_NEIGHBOR_ADVERTISEMENT => 20,
            TYPE_DESTINATION_UNREACHABLE
            | TYPE_PARAMETER_PROBLEM
            | TYPE_ECHO_REQUEST
            | TYPE_ECHO_REPLY => 4,
            _ if zero_code => 4,
            _ => 0,
        };
        if body.len() < min_body {
            return Err(bad_icmpv6());
        }
        // The fixed part is in `body` now, so the nom parsers below cannot fail on length.
        let repr = match msg_type {
            TYPE_DESTINATION_UNREACHABLE => Icmpv6Repr::DestinationUnreachable {
                code,
                invoking: body[4..].to_vec(),
            },
            TYPE_PARAMETER_PROBLEM => {
                let (rest, pointer) = be_u32(body).map_err(truncated)?;
                Icmpv6Repr::ParameterProblem {
                    code,
                    pointer,
                    invoking: rest.to_vec(),
                }
            }
            TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY if code == 0 => {
                let (rest, (id, seq)) = tuple((be_u16, be_u16))(body).map_err(truncated)?;
                let data = rest.to_vec();
                if msg_type == TYPE_ECHO_REQUEST {
                    Icmpv6Repr::EchoRequest { id, seq, data }
                } else {
                    Icmpv6Repr::EchoReply { id, seq, data }
                }
            }
            TYPE_ROUTER_SOLICITATION => Icmpv6Repr::RouterSolicitation {
                options: NdOption::parse_all(&body[4..])?,
            },
            TYPE_ROUTER_ADVERTISEMENT => {
                let (rest, (hop_limit, flags, router_lifetime, reachable_time, retrans_timer)) =
                    tuple((be_u8, be_u8, be_u16, be_u32, be_u32))(body).map_err(truncated)?;
                Icmpv6Repr::RouterAdvertisement {
                    hop_limit,
                    m: flags & 0x80 != 0,
                    o: flags & 0x40 != 0,
                    h: flags & 0x20 != 0,
                    prf: RouterPreference::from_bits(flags >> 3),
                    router_lifetime,
                    reachable_time,
                    retrans_timer,
                    options: NdOption::parse_all(rest)?,
                }
            }
            TYPE_NEIGHBOR_SOLICITATION | TYPE_NEIGHBOR_ADVERTISEMENT => {
                let target = addr_at(&body[4..20]);
                let options = NdOption::parse_all(&body[20..])?;
                if msg_type == TYPE_NEIGHBOR_SOLICITATION {
                    Icmpv6Repr::NeighborSolicitation { target, options }
                } else {
                    Icmpv6Repr::NeighborAdvertisement {
                        r: body[0] & 0x80 != 0,
                        s: body[0] & 0x40 != 0,
                        o: body[0] & 0x20 != 0,
                        target,
                        options,
                    }
                }
            }
            TYPE_HAAD_REQUEST | TYPE_HAAD_REPLY => {
                let (rest, (identifier, flags)) =
                    tuple((be_u16, be_u16))(body).map_err(truncated)?;
                let r = flags & 0x8000 != 0;
                if msg_type == TYPE_HAAD_REQUEST {
                    Icmpv6Repr::HaadRequest { identifier, r }
                } else {
                    if rest.len() % 16 != 0 {
                        return Err(bad_icmpv6());
                    }
                    let home_agents = rest
                        .chunks_exact(16)
                        .map(|c| {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(c);
                            Ipv6Addr::from(o)
                        })
                        .collect();
                    Icmpv6Repr::HaadReply {
                        identifier,
                        r,
                        home_agents,
                    }
                }
            }
            TYPE_MOBILE_PREFIX_SOLICITATION => {
                let (_, identifier) = be_u16(body).map_err(truncated)?;
                Icmpv6Repr::MobilePrefixSolicitation { identifier }
            }
            TYPE_MOBILE_PREFIX_ADVERTISEMENT => {
                let (rest, (identifier, flags)) =
                    tuple((be_u16, be_u16))(body).map_err(truncated)?;
                Icmpv6Repr::MobilePrefixAdvertisement {
                    identifier,
                    m: flags & 0x8000 != 0,
                    o: flags & 0x4000 != 0,
                    options: NdOption::parse_all(rest)?,
                }
            }
            _ => Icmpv6Repr::Other {
                msg_type,
                code,
                body: body.to_vec(),
            },
        };
        Ok(repr)
    }

    fn code(&self) -> u8 {
        match self {
            Icmpv6Repr::DestinationUnreachable { code, .. }
            | Icmpv6Repr::ParameterProblem { code, .. }
            | Icmpv6Repr::Other { code, .. } => *code,
            _ => 0,
        }
    }

    /// Emitted length, checksum included.
    pub fn buffer_len(&self) -> usize {
        4 + match self {
            Icmpv6Repr::DestinationUnreachable { invoking, .. }
            | Icmpv6Repr::ParameterProblem { invoking, .. } => 4 + invoking.len(),
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                4 + data.len()
            }
            Icmpv6Repr::RouterSolicitation { options } => 4 + options_len(options),
            Icmpv6Repr::RouterAdvertisement { options, .. } => 12 + options_len(options),
            Icmpv6Repr::NeighborSolicitation { options, .. }
            | Icmpv6Repr::NeighborAdvertisement { options, .. } => 20 + options_len(options),
            Icmpv6Repr::HaadRequest { .. } | Icmpv6Repr::MobilePrefixSolicitation { .. } => 4,
            Icmpv6Repr::HaadReply { home_agents, .. } => 4 + 16 * home_agents.len(),
            Icmpv6Repr::MobilePrefixAdvertisement { options, .. } => 4 + options_len(options),
            Icmpv6Repr::Other { body, .. } => body.len(),
        }
    }

    /// Writes the message into `buf[..self.buffer_len()]` with the checksum for the
    /// pseudo-header of `src` → `dst`. Panics if `buf` is too short.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf.fill(0);
        buf[0] = self.msg_type();
        buf[1] = self.code();
        let body = &mut buf[4..];
        match self {
            Icmpv6Repr::DestinationUnreachable { invoking, .. } => {
                body[4..].copy_from_slice(invoking);
            }
            Icmpv6Repr::ParameterProblem {
                pointer, invoking, ..
            } => {
                body[..4].copy_from_slice(&pointer.to_be_bytes());
                body[4..].copy_from_slice(invoking);
            }
            Icmpv6Repr::EchoRequest { id, seq, data } | Icmpv6Repr::EchoReply { id, seq, data } => {
                body[..2].copy_from_slice(&id.to_be_bytes());
                body[2..4].copy_from_slice(&seq.to_be_bytes());
                body[4..].copy_from_slice(data);
            }
            Icmpv6Repr::RouterSolicitation { options } => emit_options(options, &mut body[4..]),
            Icmpv6Repr::RouterAdvertisement {
                hop_limit,
                m,
                o,
                h,
                prf,
                router_lifetime,
                reachable_time,
                retrans_timer,
                options,
            } => {
                body[0] = *hop_limit;
                body[1] = flag(*m) << 7 | flag(*o) << 6 | flag(*h) << 5 | prf.bits() << 3;
                body[2..4].copy_from_slice(&router_lifetime.to_be_bytes());
                body[4..8].copy_from_slice(&reachable_time.to_be_bytes());
                body[8..12].copy_from_slice(&retrans_timer.to_be_bytes());
                emit_options(options, &mut body[12..]);
            }
            Icmpv6Repr::NeighborSolicitation { target, options } => {
                body[4..20].copy_from_slice(&target.octets());
                emit_options(options, &mut body[20..]);
            }
            Icmpv6Repr::NeighborAdvertisement {
                r,
                s,
                o,
                target,
                options,
            } => {
                body[0] = flag(*r) << 7 | flag(*s) << 6 | flag(*o) << 5;
                body[4..20].copy_from_slice(&target.octets());
                emit_options(options, &mut body[20..]);
            }
            Icmpv6Repr::HaadRequest { identifier, r } => {
                body[..2].copy_from_slice(&identifier.to_be_bytes());
                body[2] = flag(*r) << 7;
            }
            Icmpv6Repr::HaadReply {
                identifier,
                r,
                home_agents,
            } => {
                body[..2].copy_from_slice(&identifier.to_be_bytes());
                body[2] = flag(*r) << 7;
                for (c, a) in body[4..].chunks_exact_mut(16).zip(home_agents) {
                    c.copy_from_slice(&a.octets());
                }
            }
            Icmpv6Repr::MobilePrefixSolicitation { identifier } => {
                body[..2].copy_from_slice(&identifier.to_be_bytes());
            }
            Icmpv6Repr::MobilePrefixAdvertisement {
                identifier,
                m,
                o,
                options,
            } => {
                body[..2].copy_from_slice(&identifier.to_be_bytes());
                body[2] = flag(*m) << 7 | flag(*o) << 6;
                emit_options(options, &mut body[4..]);
            }
            Icmpv6Repr::Other { body: b, .. } => body.copy_from_slice(b),
        }
        let c = checksum::compute(src, dst, proto::ICMPV6, buf);
        buf[2..4].copy_from_slice(&c.to_be_bytes());
    }

    pub fn to_bytes(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v, src, dst);
        v
    }
}

fn write_options(f: &mut fmt::Formatter<'_>, options: &[NdOption]) -> fmt::Result {
    for o in options {
        write!(f, "; {o}")?;
    }
    Ok(())
}

impl fmt::Display for Icmpv6Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ICMPv6 {}", self.type_name())?;
        match self {
            Icmpv6Repr::DestinationUnreachable { code, invoking } => {
                write!(f, " code={code} invoking={}B", invoking.len())
            }
            Icmpv6Repr::ParameterProblem {
                code,
                pointer,
                invoking,
            } => write!(
                f,
                " code={code} pointer={pointer} invoking={}B",
                invoking.len()
            ),
            Icmpv6Repr::EchoRequest { id, seq, data } | Icmpv6Repr::EchoReply { id, seq, data } => {
                write!(f, " id=0x{id:04x} seq={seq} len={}", data.len())
            }
            Icmpv6Repr::RouterSolicitation { options } => write_options(f, options),
            Icmpv6Repr::NeighborSolicitation { target, options } => {
                write!(f, " target={target}")?;
                write_options(f, options)
            }
            Icmpv6Repr::NeighborAdvertisement {
                r,
                s,
                o,
                target,
                options,
            } => {
                write!(
                    f,
                    " R={} S={} O={} target={target}",
                    flag(*r),
                    flag(*s),
                    flag(*o)
                )?;
                write_options(f, options)
            }
            Icmpv6Repr::RouterAdvertisement {
                hop_limit,
                m,
                o,
                h,
                prf,
                router_lifetime,
                reachable_time,
                retrans_timer,
                options,
            } => {
                write!(
                    f,
                    " hop-limit={hop_limit} M={} O={} H={} prf={} lifetime={router_lifetime} reachable={reachable_time} retrans={retrans_timer}",
                    flag(*m),
                    flag(*o),
                    flag(*h),
                    prf.name()
                )?;
                write_options(f, options)
            }
            Icmpv6Repr::HaadRequest { identifier, r } => {
                write!(f, " id=0x{identifier:04x} R={}", flag(*r))
            }
            Icmpv6Repr::HaadReply {
                identifier,
                r,
                home_agents,
            } => {
                write!(f, " id=0x{identifier:04x} R={}", flag(*r))?;
                for (i, a) in home_agents.iter().enumerate() {
                    write!(f, "{}{a}", if i == 0 { " home-agents=" } else { "," })?;
                }
                Ok(())
            }
            Icmpv6Repr::MobilePrefixSolicitation { identifier } => {
                write!(f, " id=0x{identifier:04x}")
            }
            Icmpv6Repr::MobilePrefixAdvertisement {
                identifier,
                m,
                o,
                options,
            } => {
                write!(f, " id=0x{identifier:04x} M={} O={}", flag(*m), flag(*o))?;
                write_options(f, options)
            }
            Icmpv6Repr::Other {
                msg_type,
                code,
                body,
            } => write!(f, " type={msg_type} code={code} len={}", body.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn mn() -> Ipv6Addr {
        a("2001:db8::2")
    }

    fn ha() -> Ipv6Addr {
        a("2001:db8::1")
    }

    fn drop(kind: ErrorKind) -> Error {
        Error::drop(kind)
    }

    /// Round trip through bytes with a checksum, and through `parse` alone.
    fn round_trip(r: &Icmpv6Repr) -> Vec<u8> {
        let b = r.to_bytes(&mn(), &ha());
        assert_eq!(b.len(), r.buffer_len());
        assert_eq!(Icmpv6Repr::parse_checked(&b, &mn(), &ha()).as_ref(), Ok(r));
        assert_eq!(Icmpv6Repr::parse(&b).as_ref(), Ok(r));
        b
    }

    #[test]
    fn haad_request_hand_computed_checksum() {
        // Pseudo-header 2001:db8::2 → 2001:db8::1, length 8, next header 58, then
        // 9000 0000 1234 8000. Sum of 16-bit words:
        //   2001+0db8+0002 + 2001+0db8+0001 + 0008 + 003a + 9000 + 1234 + 8000 = 0x17deb,
        // folded 0x7dec, complemented 0x8213.
        let want = [0x90, 0x00, 0x82, 0x13, 0x12, 0x34, 0x80, 0x00];
        let r = Icmpv6Repr::HaadRequest {
            identifier: 0x1234,
            r: true,
        };
        assert_eq!(round_trip(&r), want);
        assert_eq!(r.to_string(), "ICMPv6 haad-request id=0x1234 R=1");
        assert_eq!(r.type_name(), "haad-request");
        // One flipped bit, or the wrong pseudo-header, fails the check.
        let mut bad = want;
        bad[5] ^= 1;
        assert_eq!(
            Icmpv6Repr::parse_checked(&bad, &mn(), &ha()),
            Err(drop(ErrorKind::BadChecksum))
        );
        assert_eq!(
            Icmpv6Repr::parse_checked(&want, &ha(), &a("2001:db8::3")),
            Err(drop(ErrorKind::BadChecksum))
        );
        // Trailing bytes after a request are ignored (the R=0 form, as umip sends it).
        let mut long = vec![144, 0, 0, 0, 0x12, 0x34, 0x00, 0x00, 0xff];
        assert_eq!(
            Icmpv6Repr::parse(&long),
            Ok(Icmpv6Repr::HaadRequest {
                identifier: 0x1234,
                r: false
            })
        );
        long[1] = 1;
        assert_eq!(Icmpv6Repr::parse(&long), Err(drop(ErrorKind::BadIcmpv6)));
    }

    #[test]
    fn haad_reply_byte_exact() {
        let r = Icmpv6Repr::HaadReply {
            identifier: 0xbeef,
            r: false,
            home_agents: vec![ha(), a("2001:db8::fe")],
        };
        let b = round_trip(&r);
        let mut want = vec![145, 0, b[2], b[3], 0xbe, 0xef, 0, 0];
        want.extend_from_slice(&ha().octets());
        want.extend_from_slice(&a("2001:db8::fe").octets());
        assert_eq!(b, want);
        assert_eq!(
            r.to_string(),
            "ICMPv6 haad-reply id=0xbeef R=0 home-agents=2001:db8::1,2001:db8::fe"
        );
        // A partial address: drop.
        assert_eq!(
            Icmpv6Repr::parse(&want[..want.len() - 1]),
            Err(drop(ErrorKind::BadIcmpv6))
        );
        // Empty list is legal (no home agent known).
        round_trip(&Icmpv6Repr::HaadReply {
            identifier: 1,
            r: true,
            home_agents: vec![],
        });
    }

    /// RA from a home agent: H set, SLLA, PIO with R (the HA's own address), Advertisement
    /// Interval, Home Agent Information.
    #[rustfmt::skip]
    const RA: [u8; 72] = [
        134, 0, 0, 0,                 // Type, Code, Checksum (filled below)
        64, 0x20, 0x07, 0x08,         // Cur Hop Limit 64, H, Router Lifetime 1800
        0, 0, 0, 0,                   // Reachable Time
        0, 0, 0, 0,                   // Retrans Timer
        1, 1, 0x02, 0, 0, 0, 0, 0x01, // Source link-layer address 02:00:00:00:00:01
        3, 4, 64, 0xe0,               // Prefix Information, /64, L A R
        0x00, 0x01, 0x51, 0x80,       // Valid Lifetime 86400
        0x00, 0x00, 0x38, 0x40,       // Preferred Lifetime 14400
        0, 0, 0, 0,                   // Reserved2
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
        7, 1, 0, 0, 0x00, 0x00, 0x03, 0xe8, // Advertisement Interval 1000 ms
        8, 1, 0, 0, 0xff, 0xfe, 0x07, 0x08, // HA Information, preference -2, lifetime 1800
    ];

    fn ra_repr() -> Icmpv6Repr {
        Icmpv6Repr::RouterAdvertisement {
            hop_limit: 64,
            m: false,
            o: false,
            h: true,
            prf: RouterPreference::Medium,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            options: vec![
                NdOption::SourceLinkLayer(vec![2, 0, 0, 0, 0, 1]),
                NdOption::PrefixInformation {
                    prefix_len: 64,
                    l: true,
                    a: true,
                    r: true,
                    valid_lifetime: 86400,
                    preferred_lifetime: 14400,
                    prefix: ha(),
                },
                NdOption::AdvertisementInterval(1000),
                NdOption::HomeAgentInfo {
                    preference: -2,
                    lifetime: 1800,
                },
            ],
        }
    }

    #[test]
    fn router_advertisement_byte_exact() {
        let r = ra_repr();
        let b = round_trip(&r);
        assert_eq!(b[4..], RA[4..]);
        assert_eq!(b[..2], RA[..2]);
        assert!(checksum::verify(&mn(), &ha(), 58, &b));
        assert_eq!(Icmpv6Repr::parse(&RA), Ok(r.clone()));
        assert_eq!(
            r.to_string(),
            "ICMPv6 router-advertisement hop-limit=64 M=0 O=0 H=1 prf=medium lifetime=1800 \
             reachable=0 retrans=0; source-link-layer-address 02:00:00:00:00:01; \
             prefix-information 2001:db8::1/64 L=1 A=1 R=1 valid=86400 preferred=14400; \
             advertisement-interval 1000ms; home-agent-information preference=-2 lifetime=1800"
        );
        let names: Vec<_> = match &r {
            Icmpv6Repr::RouterAdvertisement { options, .. } => {
                options.iter().map(NdOption::name).collect()
            }
            _ => unreachable!(),
        };
        assert_eq!(
            names,
            [
                "source-link-layer-address",
                "prefix-information",
                "advertisement-interval",
                "home-agent-information"
            ]
        );
    }

    #[test]
    fn router_advertisement_flags_and_preference() {
        for prf in [
            RouterPreference::Medium,
            RouterPreference::High,
            RouterPreference::Low,
            RouterPreference::Reserved,
        ] {
            let r = Icmpv6Repr::RouterAdvertisement {
                hop_limit: 255,
                m: true,
                o: true,
                h: false,
                prf,
                router_lifetime: 0,
                reachable_time: 30000,
                retrans_timer: 1000,
                options: vec![NdOption::Mtu(1500)],
            };
            let b = round_trip(&r);
            assert_eq!(b[5], 0xc0 | prf.bits() << 3);
            assert_eq!(&b[16..], &[5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        }
        // High preference is 01 in bits 3-4: 0x08.
        assert_eq!(
            RouterPreference::from_bits(0x08 >> 3),
            RouterPreference::High
        );
    }

    #[test]
    fn nd_option_errors() {
        let with = |opts: &[u8]| {
            let mut b = RA[..16].to_vec();
            b.extend_from_slice(opts);
            Icmpv6Repr::parse(&b)
        };
        // Length 0: drop (RFC 4861 §6.1.2, the CVE-2010-2522 case), even when last.
        assert_eq!(with(&[1, 0]), Err(drop(ErrorKind::BadOptionLength)));
        assert_eq!(
            with(&[1, 1, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]),
            Err(drop(ErrorKind::BadOptionLength))
        );
        // Runs past the end, or a lone byte.
        assert_eq!(
            with(&[1, 2, 0, 0, 0, 0, 0, 0]),
            Err(drop(ErrorKind::OptionOverrun))
        );
        assert_eq!(with(&[1]), Err(drop(ErrorKind::OptionOverrun)));
        // Known options with the wrong size.
        assert_eq!(
            with(&[3, 1, 64, 0, 0, 0, 0, 0]),
            Err(drop(ErrorKind::BadOptionLength))
        );
        assert_eq!(
            with(&[5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(drop(ErrorKind::BadOptionLength))
        );
        assert_eq!(
            with(&[7, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(drop(ErrorKind::BadOptionLength))
        );
        assert_eq!(
            with(&[8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(drop(ErrorKind::BadOptionLength))
        );
        // Prefix length 129.
        let mut pio = RA[24..56].to_vec();
        pio[2] = 129;
        assert_eq!(with(&pio), Err(drop(ErrorKind::BadField)));
        // An unknown option is kept whole and re-emitted.
        let r = with(&[200, 1, 1, 2, 3, 4, 5, 6]).unwrap();
        match &r {
            Icmpv6Repr::RouterAdvertisement { options, .. } => assert_eq!(
                options,
                &[NdOption::Unknown {
                    opt_type: 200,
                    data: vec![1, 2, 3, 4, 5, 6]
                }]
            ),
            _ => unreachable!(),
        }
        round_trip(&r);
    }

    #[test]
    fn message_errors() {
        assert_eq!(
            Icmpv6Repr::parse(&[134, 0, 0]),
            Err(drop(ErrorKind::Truncated))
        );
        assert_eq!(
            Icmpv6Repr::parse_checked(&[134], &mn(), &ha()),
            Err(drop(ErrorKind::Truncated))
        );
        // RA shorter than 16 bytes.
        assert_eq!(
            Icmpv6Repr::parse(&RA[..15]),
            Err(drop(ErrorKind::BadIcmpv6))
        );
        // Non-zero code on every message whose code must be 0.
        for t in [133, 134, 144, 145, 146, 147] {
            let len = if t == 134 { 16 } else { 8 };
            let mut b = vec![0u8; len];
            b[0] = t;
            assert!(Icmpv6Repr::parse(&b).is_ok(), "type {t}");
            b[1] = 1;
            assert_eq!(
                Icmpv6Repr::parse(&b),
                Err(drop(ErrorKind::BadIcmpv6)),
                "{t}"
            );
            // And one byte short of the fixed part.
            b[1] = 0;
            assert_eq!(
                Icmpv6Repr::parse(&b[..len - 1]),
                Err(drop(ErrorKind::BadIcmpv6))
            );
        }
        for t in [1, 4, 128, 129] {
            assert_eq!(
                Icmpv6Repr::parse(&[t, 0, 0, 0, 0, 0, 0]),
                Err(drop(ErrorKind::BadIcmpv6))
            );
        }
    }

    #[test]
    fn mobile_prefix_messages() {
        let s = Icmpv6Repr::MobilePrefixSolicitation { identifier: 7 };
        let b = round_trip(&s);
        assert_eq!(b, [146, 0, b[2], b[3], 0, 7, 0, 0]);
        assert_eq!(s.to_string(), "ICMPv6 mobile-prefix-solicitation id=0x0007");
        let adv = Icmpv6Repr::MobilePrefixAdvertisement {
            identifier: 7,
            m: true,
            o: false,
            options: vec![NdOption::PrefixInformation {
                prefix_len: 64,
                l: true,
                a: true,
                r: false,
                valid_lifetime: u32::MAX,
                preferred_lifetime: 600,
                prefix: a("2001:db8:1::"),
            }],
        };
        let b = round_trip(&adv);
        assert_eq!(&b[..2], &[147, 0]);
        assert_eq!(&b[4..12], &[0, 7, 0x80, 0, 3, 4, 64, 0xc0]);
        assert_eq!(adv.type_name(), "mobile-prefix-advertisement");
    }

    #[test]
    fn other_messages_round_trip() {
        let cases = [
            Icmpv6Repr::RouterSolicitation { options: vec![] },
            Icmpv6Repr::RouterSolicitation {
                options: vec![NdOption::SourceLinkLayer(vec![2, 0, 0, 0, 0, 2])],
            },
            Icmpv6Repr::ParameterProblem {
                code: 2,
                pointer: 46,
                invoking: vec![0x60, 0, 0, 0],
            },
            Icmpv6Repr::DestinationUnreachable {
                code: 3,
                invoking: vec![0x60; 48],
            },
            Icmpv6Repr::EchoRequest {
                id: 1,
                seq: 2,
                data: b"ping".to_vec(),
            },
            Icmpv6Repr::EchoReply {
                id: 1,
                seq: 2,
                data: vec![],
            },
            Icmpv6Repr::Other {
                msg_type: 2,
                code: 0,
                body: vec![0, 0, 5, 0],
            },
            Icmpv6Repr::Other {
                msg_type: 128,
                code: 1,
                body: vec![0, 1, 0, 2],
            },
        ];
        let names = [
            "router-solicitation",
            "router-solicitation",
            "parameter-problem",
            "destination-unreachable",
            "echo-request",
            "echo-reply",
            "other",
            "other",
        ];
        for (r, n) in cases.iter().zip(names) {
            round_trip(r);
            assert_eq!(r.type_name(), n);
        }
        let b = cases[2].to_bytes(&mn(), &ha());
        assert_eq!(b[..2], [4, 2]);
        assert_eq!(b[4..], [0, 0, 0, 46, 0x60, 0, 0, 0]);
        assert!(cases[2].is_error() && !cases[4].is_error());
        assert_eq!(
            cases[2].to_string(),
            "ICMPv6 parameter-problem code=2 pointer=46 invoking=4B"
        );
        assert_eq!(
            cases[4].to_string(),
            "ICMPv6 echo-request id=0x0001 seq=2 len=4"
        );
    }

    #[test]
    fn param_problem_from_error() {
        let e = Error::param_problem(ErrorKind::BadHeaderLength, 1).rebase(40);
        let pkt = vec![0u8; 2000];
        let r = Icmpv6Repr::param_problem_for(&e, &pkt).unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::ParameterProblem {
                code: 0,
                pointer: 41,
                invoking: vec![0; MAX_INVOKING_LEN]
            }
        );
        assert_eq!(r.buffer_len(), 1280 - 40);
        assert_eq!(
            Icmpv6Repr::param_problem_for(&drop(ErrorKind::Truncated), &pkt),
            None
        );
    }

    use crate::testutil::XorShift;

    fn parse_all(b: &[u8]) {
        let _ = Icmpv6Repr::parse_checked(b, &mn(), &ha());
        if let Ok(r) = Icmpv6Repr::parse(b) {
            let _ = r.to_string();
            // Re-emitting what was parsed gives something that parses the same.
            assert_eq!(Icmpv6Repr::parse(&r.to_bytes(&mn(), &ha())), Ok(r));
        }
        let _ = NdOption::parse_all(b);
    }

    #[test]
    fn no_panic_on_prefixes_and_noise() {
        let valid = [
            RA.to_vec(),
            ra_repr().to_bytes(&mn(), &ha()),
            Icmpv6Repr::HaadReply {
                identifier: 1,
                r: true,
                home_agents: vec![ha()],
            }
            .to_bytes(&mn(), &ha()),
        ];
        for v in &valid {
            for n in 0..=v.len() {
                parse_all(&v[..n]);
            }
        }
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let types = [1, 4, 128, 129, 133, 134, 144, 145, 146, 147, 3];
        for _ in 0..5000 {
            let n = (rng.next() % 96) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            // Mostly known types with code 0, so the bodies get exercised.
            if n > 1 && rng.next() % 4 != 0 {
                b[0] = types[(rng.next() % types.len() as u64) as usize];
                b[1] = 0;
            }
            // Small option lengths, so option lists often fit.
            for i in (16..n).step_by(8) {
                if rng.next() % 2 == 0 {
                    b[i - 7] = (rng.next() % 3) as u8;
                }
            }
            parse_all(&b);
        }
    }
}
