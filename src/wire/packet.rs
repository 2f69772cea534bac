//! Walks a whole IPv6 packet header by header, decoding what Mobile IPv6 defines.
//!
//! The walker is what a receiver and `mip6ctl decode` share: it knows the order of
//! extension headers, rebases error pointers so they count from the start of the IPv6
//! header (as an ICMPv6 Parameter Problem must), and computes upper-layer checksums with
//! the addresses the final receiver sees — the home address from a Home Address option as
//! source, the home address in a Type 2 Routing Header as destination (RFC 6275 §6.1.1).

use std::net::Ipv6Addr;

use super::error::{Error, ErrorKind, Result};
use super::ext_header::{self, DestOptsRepr, FragmentHeader, RoutingHeader, Type2RoutingRepr};
use super::icmpv6::Icmpv6Repr;
use super::mh::{self, MhRepr};
use super::{checksum, proto};

/// The fixed IPv6 header (RFC 8200 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Header {
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

pub const IPV6_HEADER_LEN: usize = 40;

impl Ipv6Header {
    pub fn parse(data: &[u8]) -> Result<Ipv6Header> {
        let h = data
            .get(..IPV6_HEADER_LEN)
            .ok_or(Error::drop(ErrorKind::Truncated))?;
        if h[0] >> 4 != 6 {
            return Err(Error::drop(ErrorKind::NotIpv6));
        }
        let addr = |o: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[o..o + 16]);
            Ipv6Addr::from(a)
        };
        Ok(Ipv6Header {
            traffic_class: (h[0] << 4) | (h[1] >> 4),
            flow_label: u32::from_be_bytes([0, h[1] & 0x0f, h[2], h[3]]),
            payload_len: u16::from_be_bytes([h[4], h[5]]),
            next_header: h[6],
            hop_limit: h[7],
            src: addr(8),
            dst: addr(24),
        })
    }

    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = 0x60 | (self.traffic_class >> 4);
        buf[1] = (self.traffic_class << 4) | ((self.flow_label >> 16) as u8 & 0x0f);
        buf[2..4].copy_from_slice(&(self.flow_label as u16).to_be_bytes());
        buf[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        buf[6] = self.next_header;
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src.octets());
        buf[24..40].copy_from_slice(&self.dst.octets());
    }
}

/// One decoded header after the fixed IPv6 header.
#[derive(Debug, Clone, PartialEq)]
pub enum Header {
    HopByHop {
        len: usize,
    },
    DestinationOptions(DestOptsRepr),
    Type2Routing(Type2RoutingRepr),
    /// A routing header of another type, stepped over.
    Routing {
        routing_type: u8,
        segments_left: u8,
        len: usize,
    },
    Fragment(FragmentHeader),
    Mobility {
        repr: MhRepr,
        checksum_ok: bool,
        /// Where the Mobility Header starts in the packet (for the authenticator check,
        /// which covers the bytes as received).
        offset: usize,
    },
    Icmpv6 {
        repr: Icmpv6Repr,
        checksum_ok: bool,
    },
    /// An IPv6 packet tunnelled inside this one (IPv6-in-IPv6, next header 41).
    Tunnel(Box<Packet>),
    /// A protocol the walker does not decode (TCP, UDP, ESP, a non-first fragment, …).
    Upper {
        protocol: u8,
        len: usize,
    },
}

/// A walked packet: the headers that could be decoded, then the first error, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub ip: Ipv6Header,
    pub headers: Vec<Header>,
    /// The first thing a receiver would object to; its Parameter Problem pointer counts
    /// from the start of the IPv6 header.
    pub error: Option<Error>,
}

impl Packet {
    /// The source address after Home Address option processing.
    pub fn final_src(&self) -> Ipv6Addr {
        self.headers
            .iter()
            .find_map(|h| match h {
                Header::DestinationOptions(d) => d.home_address(),
                _ => None,
            })
            .unwrap_or(self.ip.src)
    }

    /// The destination after Type 2 Routing Header processing.
    pub fn final_dst(&self) -> Ipv6Addr {
        self.headers
            .iter()
            .find_map(|h| match h {
                Header::Type2Routing(r) if r.segments_left > 0 => Some(r.home_address),
                _ => None,
            })
            .unwrap_or(self.ip.dst)
    }

    /// The decoded Mobility Header, if the packet carries one.
    pub fn mobility(&self) -> Option<&MhRepr> {
        self.headers.iter().find_map(|h| match h {
            Header::Mobility { repr, .. } => Some(repr),
            _ => None,
        })
    }
}

/// Bounds on how many extension headers we follow: a chain of tiny headers must not keep
/// a receiver busy (RFC 8200 allows each at most once or twice; 16 is generous).
const MAX_HEADERS: usize = 16;

/// Decodes a whole packet. Fails only when there is no IPv6 header to speak of; everything
/// after it is reported in [`Packet::error`] next to what could be decoded.
pub fn parse(data: &[u8]) -> Result<Packet> {
    parse_nested(data, 0)
}

/// How deep IPv6-in-IPv6 is followed: a Mobile IPv6 packet is tunnelled once (HA ⇄ MN);
/// a few levels more cost nothing, and a bound keeps a crafted onion from recursing.
const MAX_TUNNEL_DEPTH: usize = 4;

fn parse_nested(data: &[u8], depth: usize) -> Result<Packet> {
    let ip = Ipv6Header::parse(data)?;
    let mut packet = Packet {
        ip,
        headers: Vec::new(),
        error: None,
    };
    let declared_end = IPV6_HEADER_LEN + usize::from(packet.ip.payload_len);
    // A payload length of zero means a jumbogram (RFC 2675); take the buffer as it is then.
    let end = if packet.ip.payload_len == 0 {
        data.len()
    } else {
        declared_end.min(data.len())
    };
    let truncated = packet.ip.payload_len != 0 && declared_end > data.len();
    if let Err(e) = walk(&data[..end], &mut packet, depth) {
        packet.error = Some(e);
    } else if truncated {
        packet.error = Some(Error::drop(ErrorKind::Truncated));
    }
    Ok(packet)
}

fn walk(data: &[u8], packet: &mut Packet, depth: usize) -> Result<()> {
    let mut next = packet.ip.next_header;
    let mut at = IPV6_HEADER_LEN;
    for _ in 0..MAX_HEADERS {
        let rest = &data[at..];
        match next {
            proto::HOP_BY_HOP | proto::DESTINATION_OPTIONS | proto::ROUTING => {
                let len = ext_header::ext_header_len(rest).map_err(|e| e.rebase(at))?;
                let this = &rest[..len];
                let header = match next {
                    proto::HOP_BY_HOP => Header::HopByHop { len },
                    proto::DESTINATION_OPTIONS => Header::DestinationOptions(
                        DestOptsRepr::parse_with_dst(this, packet.ip.dst.is_multicast())
                            .map_err(|e| e.rebase(at))?,
                    ),
                    _ => {
                        let rh = RoutingHeader::peek(this).map_err(|e| e.rebase(at))?;
                        if rh.routing_type == ext_header::ROUTING_TYPE_2 {
                            Header::Type2Routing(
                                Type2RoutingRepr::parse(this).map_err(|e| e.rebase(at))?,
                            )
                        } else {
                            // RFC 8200 §4.4: an unknown type is skipped only when no
                            // segments are left; otherwise the receiver must object.
                            rh.check_unrecognized().map_err(|e| e.rebase(at))?;
                            Header::Routing {
                                routing_type: rh.routing_type,
                                segments_left: rh.segments_left,
                                len,
                            }
                        }
                    }
                };
                packet.headers.push(header);
                next = this[0];
                at += len;
            }
            proto::FRAGMENT => {
                let f = FragmentHeader::parse(rest).map_err(|e| e.rebase(at))?;
                at += FragmentHeader::LEN;
                next = f.next_header;
                let first = f.fragment_offset == 0;
                packet.headers.push(Header::Fragment(f));
                if !first {
                    // A later fragment carries no headers of its own to decode.
                    packet.headers.push(Header::Upper {
                        protocol: next,
                        len: data.len() - at,
                    });
                    return Ok(());
                }
            }
            proto::MOBILITY => {
                let (src, dst) = (packet.final_src(), packet.final_dst());
                let repr = MhRepr::parse(rest).map_err(|e| e.rebase(at))?;
                // Only the bytes Header Len covers are checksummed; trailing bytes in the
                // IPv6 payload are not part of the Mobility Header.
                let mh_len = repr.buffer_len().min(rest.len());
                let checksum_ok = mh::checksum_ok(&rest[..mh_len], &src, &dst);
                let receiver_error = repr.receiver_error();
                packet.headers.push(Header::Mobility {
                    repr,
                    checksum_ok,
                    offset: at,
                });
                if !checksum_ok {
                    return Err(Error::drop(ErrorKind::BadChecksum));
                }
                return receiver_error.map_or(Ok(()), Err);
            }
            proto::ICMPV6 => {
                let (src, dst) = (packet.final_src(), packet.final_dst());
                let repr = Icmpv6Repr::parse(rest).map_err(|e| e.rebase(at))?;
                let checksum_ok = checksum::verify(&src, &dst, proto::ICMPV6, rest);
                packet.headers.push(Header::Icmpv6 { repr, checksum_ok });
                if !checksum_ok {
                    return Err(Error::drop(ErrorKind::BadChecksum));
                }
                return Ok(());
            }
            proto::IPV6 if depth < MAX_TUNNEL_DEPTH => {
                // The home agent ⇄ mobile node tunnel (RFC 6275 §10.4, §11.3.1): the inner
                // packet is decoded in its own right, its checksums over its own addresses.
                let inner = parse_nested(rest, depth + 1).map_err(|e| e.rebase(at))?;
                let inner_error = inner.error.map(|e| e.rebase(at));
                packet.headers.push(Header::Tunnel(Box::new(inner)));
                return inner_error.map_or(Ok(()), Err);
            }
            proto::NO_NEXT_HEADER => return Ok(()),
            protocol => {
                packet.headers.push(Header::Upper {
                    protocol,
                    len: rest.len(),
                });
                return Ok(());
            }
        }
    }
    Err(Error::drop(ErrorKind::BadField))
}

/// What a built packet carries after its extension headers.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Mobility(&'a MhRepr),
    Icmpv6(&'a Icmpv6Repr),
    /// A UDP datagram: route-optimised data as a mobile node or correspondent sends it.
    Udp {
        src_port: u16,
        dst_port: u16,
        data: &'a [u8],
    },
}

/// Builds whole IPv6 packets the way a Mobile IPv6 node sends them: a Type 2 Routing
/// Header (CN → MN), then a Destination Options header with the Home Address option
/// (MN → CN), in the order RFC 6275 §6.3 and RFC 8200 §4.1 prescribe, and the upper-layer
/// checksum over the home addresses.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// The sender's home address; the IPv6 source is then its care-of address.
    pub home_address_option: Option<Ipv6Addr>,
    /// The receiver's home address; the IPv6 destination is then its care-of address.
    pub type2_routing: Option<Ipv6Addr>,
}

impl PacketBuilder {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> PacketBuilder {
        PacketBuilder {
            src,
            dst,
            hop_limit: 64,
            home_address_option: None,
            type2_routing: None,
        }
    }

    pub fn build(&self, payload: Payload) -> Vec<u8> {
        let upper = match payload {
            Payload::Mobility(_) => proto::MOBILITY,
            Payload::Icmpv6(_) => proto::ICMPV6,
            Payload::Udp { .. } => proto::UDP,
        };
        let final_src = self.home_address_option.unwrap_or(self.src);
        let final_dst = self.type2_routing.unwrap_or(self.dst);
        let dest_opts = self.home_address_option.map(|hoa| DestOptsRepr {
            next_header: upper,
            options: vec![ext_header::DestOption::HomeAddress(hoa)],
        });
        let rh2 = self.type2_routing.map(|hoa| Type2RoutingRepr {
            next_header: if dest_opts.is_some() {
                proto::DESTINATION_OPTIONS
            } else {
                upper
            },
            segments_left: 1,
            home_address: hoa,
        });
        let first = match (&rh2, &dest_opts) {
            (Some(_), _) => proto::ROUTING,
            (None, Some(_)) => proto::DESTINATION_OPTIONS,
            (None, None) => upper,
        };
        let mut out = vec![0u8; IPV6_HEADER_LEN];
        if let Some(r) = &rh2 {
            out.extend_from_slice(&r.to_bytes());
        }
        if let Some(d) = &dest_opts {
            out.extend_from_slice(&d.to_bytes());
        }
        match payload {
            Payload::Mobility(m) => out.extend_from_slice(&m.to_bytes(&final_src, &final_dst)),
            Payload::Icmpv6(i) => out.extend_from_slice(&i.to_bytes(&final_src, &final_dst)),
            Payload::Udp {
                src_port,
                dst_port,
                data,
            } => {
                let start = out.len();
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(data);
                // Like every upper-layer checksum, over the home addresses (§6.1.1's rule
                // holds for UDP too: the receiver checks after HAO / RH2 processing).
                let mut c = checksum::compute(&final_src, &final_dst, proto::UDP, &out[start..]);
                if c == 0 {
                    // RFC 8200 §8.1: a computed UDP checksum of zero is sent as all ones.
                    c = 0xffff;
                }
                out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
            }
        }
        Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: (out.len() - IPV6_HEADER_LEN) as u16,
            next_header: first,
            hop_limit: self.hop_limit,
            src: self.src,
            dst: self.dst,
        }
        .emit(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A route-optimised UDP datagram (MN → CN with the Home Address option): the UDP
    /// checksum covers the home address, so it verifies once the receiver has swapped the
    /// HAO into the source — and not over the care-of address on the wire.
    #[test]
    fn udp_with_home_address_option_checksums_over_the_home_address() {
        let (hoa, coa, cn) = (
            a("2001:db8:1::100"),
            a("2001:db8:41::100"),
            a("2001:db8:3::1"),
        );
        let bytes = PacketBuilder {
            home_address_option: Some(hoa),
            ..PacketBuilder::new(coa, cn)
        }
        .build(Payload::Udp {
            src_port: 40000,
            dst_port: 5005,
            data: b"hello",
        });
        let p = parse(&bytes).unwrap();
        assert_eq!(p.error, None);
        assert_eq!((p.ip.src, p.final_src()), (coa, hoa));
        let udp_at = IPV6_HEADER_LEN + 24;
        assert!(matches!(
            p.headers.last(),
            Some(Header::Upper {
                protocol: proto::UDP,
                len: 13
            })
        ));
        let udp = &bytes[udp_at..];
        assert_eq!(&udp[..4], &[0x9c, 0x40, 0x13, 0x8d]);
        assert!(checksum::verify(&hoa, &cn, proto::UDP, udp));
        assert!(!checksum::verify(&coa, &cn, proto::UDP, udp));
    }
}
