//! The packet transformations of the `user` data path, as pure functions over a packet's
//! bytes (from the IPv6 header on, as nfqueue and TUN hand them over). No sockets here:
//! the caller decides *whether* a packet may be rewritten (binding cache, binding update
//! list, the home agent's registrations) and what to do with the result.
//!
//! Every function either rewrites the packet completely and returns `Ok`, or leaves it
//! untouched and returns the reason. None panics, whatever the input (see the sweep in
//! the tests): everything is bounds-checked through the `wire` helpers.
//!
//! Upper-layer checksums are never touched. RFC 6275 makes the sender compute them over
//! the addresses the final receiver sees (home address as source with a Home Address
//! option, home address as destination with a Type 2 Routing Header, §6.1.1, §6.3,
//! §6.4), so once a receiver has moved the home address into the IPv6 header they are
//! valid as they stand; and a sender that adds the headers must not change them either.

use std::fmt;
use std::net::Ipv6Addr;

use crate::wire::error::Error as WireError;
use crate::wire::ext_header::{
    self, DestOption, DestOptsRepr, RoutingHeader, Type2RoutingRepr, OPT_HOME_ADDRESS, OPT_PAD1,
    OPT_PADN,
};
use crate::wire::packet::IPV6_HEADER_LEN;
use crate::wire::proto;

/// Why a packet was not rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewriteError {
    /// Shorter than its IPv6 header or than its Payload Length says.
    Truncated,
    /// Not IPv6 (version field).
    NotIpv6,
    /// Payload Length 0 (a jumbogram, RFC 2675): not supported.
    Jumbogram,
    /// The result would not fit a 16-bit Payload Length.
    TooLong,
    /// An extension header before the one we look for is malformed.
    BadHeader(WireError),
    /// No Destination Options header with a Home Address option.
    NoHomeAddressOption,
    /// No Type 2 Routing Header.
    NoType2Routing,
    /// The packet already carries a header we would have to add (a Routing header for
    /// [`send_rh2`], a Destination Options header after the routing headers for
    /// [`send_hao`]).
    AlreadyPresent,
    /// The address the rewrite would use is not a unicast address.
    BadAddress,
    /// Not an IPv6-in-IPv6 packet, or the inner packet is malformed.
    NotTunnelled,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewriteError::Truncated => f.write_str("truncated packet"),
            RewriteError::NotIpv6 => f.write_str("not IPv6"),
            RewriteError::Jumbogram => f.write_str("jumbogram not supported"),
            RewriteError::TooLong => f.write_str("rewritten packet would be too long"),
            RewriteError::BadHeader(e) => write!(f, "malformed extension header: {e:?}"),
            RewriteError::NoHomeAddressOption => f.write_str("no Home Address option"),
            RewriteError::NoType2Routing => f.write_str("no Type 2 Routing Header"),
            RewriteError::AlreadyPresent => f.write_str("header already present"),
            RewriteError::BadAddress => f.write_str("not a unicast address"),
            RewriteError::NotTunnelled => f.write_str("not an IPv6-in-IPv6 packet"),
        }
    }
}

impl std::error::Error for RewriteError {}

pub type Result<T> = std::result::Result<T, RewriteError>;

/// The two addresses a Home Address option tied together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeAddressInfo {
    /// The IPv6 source the packet arrived with.
    pub care_of: Ipv6Addr,
    /// The address from the option, now the IPv6 source.
    pub home: Ipv6Addr,
}

/// Outer addresses of a decapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelInfo {
    pub outer_src: Ipv6Addr,
    pub outer_dst: Ipv6Addr,
    pub inner_src: Ipv6Addr,
    pub inner_dst: Ipv6Addr,
}

// --- helpers ---------------------------------------------------------------------------

fn addr_at(pkt: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&pkt[at..at + 16]);
    Ipv6Addr::from(a)
}

const SRC: usize = 8;
const DST: usize = 24;

/// Checks the fixed header and returns where the packet ends according to Payload Length.
fn frame(pkt: &[u8]) -> Result<usize> {
    if pkt.len() < IPV6_HEADER_LEN {
        return Err(RewriteError::Truncated);
    }
    if pkt[0] >> 4 != 6 {
        return Err(RewriteError::NotIpv6);
    }
    let payload_len = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
    if payload_len == 0 {
        return Err(RewriteError::Jumbogram);
    }
    let end = IPV6_HEADER_LEN + payload_len;
    if end > pkt.len() {
        return Err(RewriteError::Truncated);
    }
    Ok(end)
}

fn set_payload_len(pkt: &mut [u8], len: usize) -> Result<()> {
    let len = u16::try_from(len).map_err(|_| RewriteError::TooLong)?;
    pkt[4..6].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// One extension header found by [`headers`].
#[derive(Debug, Clone, Copy)]
struct Hdr {
    /// Its type (the Next Header value that named it).
    kind: u8,
    /// Index of the byte holding that Next Header value (6 for the IPv6 header).
    named_at: usize,
    offset: usize,
    len: usize,
}

/// The extension headers in front of the upper layer, up to (not past) a Fragment header,
/// and where the chain ends: `(headers, next_header_index, upper_offset)`. Headers after
/// a Fragment header are not looked at: in a non-first fragment they are not headers, and
/// Mobile IPv6's headers all come before it (RFC 6275 §6.3, §6.4).
fn headers(pkt: &[u8], end: usize) -> Result<(Vec<Hdr>, usize, usize)> {
    let mut out = Vec::new();
    let mut named_at = 6;
    let mut at = IPV6_HEADER_LEN;
    // Bounded like the wire walker: a chain of tiny headers must not keep us busy.
    for _ in 0..16 {
        let kind = pkt[named_at];
        if kind == proto::FRAGMENT || !ext_header::is_walkable_ext_header(kind) {
            return Ok((out, named_at, at));
        }
        let step =
            ext_header::ext_header_step(kind, &pkt[at..end]).map_err(RewriteError::BadHeader)?;
        let Some((_, len)) = step else {
            return Ok((out, named_at, at));
        };
        out.push(Hdr {
            kind,
            named_at,
            offset: at,
            len,
        });
        named_at = at;
        at += len;
    }
    Err(RewriteError::BadHeader(WireError::drop(
        crate::wire::error::ErrorKind::BadField,
    )))
}

/// Removes `pkt[h.offset..h.offset + h.len]` and relinks the chain around it.
fn remove_header(pkt: &mut Vec<u8>, end: usize, h: Hdr) -> Result<()> {
    let next = pkt[h.offset];
    let new_payload = end - IPV6_HEADER_LEN - h.len;
    if new_payload == 0 {
        // Payload Length 0 would read as a jumbogram; nothing sane carries no payload.
        return Err(RewriteError::Truncated);
    }
    pkt.truncate(end);
    pkt[h.named_at] = next;
    pkt.drain(h.offset..h.offset + h.len);
    set_payload_len(pkt, new_payload)
}

/// Inserts `header` (whose own Next Header byte is already right) at `offset`, named
/// by the byte at `named_at`.
fn insert_header(
    pkt: &mut Vec<u8>,
    end: usize,
    named_at: usize,
    offset: usize,
    kind: u8,
    header: &[u8],
) -> Result<()> {
    let new_payload = end - IPV6_HEADER_LEN + header.len();
    if new_payload > usize::from(u16::MAX) {
        return Err(RewriteError::TooLong);
    }
    pkt.truncate(end);
    pkt[named_at] = kind;
    pkt.splice(offset..offset, header.iter().copied());
    set_payload_len(pkt, new_payload)
}

/// Offset inside a Destination Options header of the Home Address option's type byte.
fn find_hao(hdr: &[u8]) -> Option<usize> {
    let mut i = 2;
    while i < hdr.len() {
        match hdr[i] {
            OPT_PAD1 => i += 1,
            t => {
                let len = usize::from(*hdr.get(i + 1)?);
                if t == OPT_HOME_ADDRESS {
                    return Some(i);
                }
                i += 2 + len;
            }
        }
    }
    None
}

// --- correspondent / home agent: receive a Home Address option ---------------------------

/// RFC 6275 §9.3.1 for a node whose kernel does not know the Home Address option: the
/// option's address becomes the IPv6 source, and the option disappears so the kernel
/// does not answer it with a Parameter Problem. The Destination Options header goes
/// away entirely when the option (and padding) was all it held; otherwise the option is
/// overwritten with padding in place, so the other options keep their alignment.
///
/// Returns the care-of address (the source the packet arrived with) and the home address.
/// The caller must still apply §9.3.1's admission rule: without a binding cache entry for
/// that pair, only a Binding Update may carry the option, and otherwise the packet is
/// dropped and a Binding Error sent. A Binding Update should not be rewritten at all: the
/// daemon needs its care-of address, which this rewrite removes from the packet.
pub fn receive_hao(pkt: &mut Vec<u8>) -> Result<HomeAddressInfo> {
    let end = frame(pkt)?;
    let (hdrs, _, _) = headers(pkt, end)?;
    for h in hdrs.iter().filter(|h| h.kind == proto::DESTINATION_OPTIONS) {
        let bytes = &pkt[h.offset..h.offset + h.len];
        let dst_multicast = pkt[DST] == 0xff;
        let repr =
            DestOptsRepr::parse_with_dst(bytes, dst_multicast).map_err(RewriteError::BadHeader)?;
        let Some(home) = repr.home_address() else {
            continue;
        };
        let info = HomeAddressInfo {
            care_of: addr_at(pkt, SRC),
            home,
        };
        if !ext_header::is_valid_home_address(&info.care_of) {
            return Err(RewriteError::BadAddress);
        }
        let only_hao = repr
            .options
            .iter()
            .all(|o| matches!(o, DestOption::HomeAddress(_)));
        if only_hao {
            remove_header(pkt, end, *h)?;
        } else {
            let at = h.offset + find_hao(bytes).ok_or(RewriteError::NoHomeAddressOption)?;
            pkt.truncate(end);
            // PadN covering the option's 18 bytes: type, length 16, sixteen zeros.
            pkt[at] = OPT_PADN;
            pkt[at + 2..at + 18].fill(0);
        }
        pkt[SRC..SRC + 16].copy_from_slice(&home.octets());
        return Ok(info);
    }
    Err(RewriteError::NoHomeAddressOption)
}

/// The mobile node's side of [`receive_hao`] (RFC 6275 §11.3.1, route-optimised sending):
/// the IPv6 source (the home address) moves into a new Home Address option and `care_of`
/// becomes the source. The option goes after the Hop-by-Hop and routing headers (§6.3).
pub fn send_hao(pkt: &mut Vec<u8>, care_of: Ipv6Addr) -> Result<()> {
    let end = frame(pkt)?;
    if !ext_header::is_valid_home_address(&care_of) {
        return Err(RewriteError::BadAddress);
    }
    let (hdrs, _, _) = headers(pkt, end)?;
    // Place after the last Hop-by-Hop / Routing header (a Destination Options header in
    // front of a Routing header belongs to it and stays in front).
    let before = hdrs
        .iter()
        .rposition(|h| h.kind == proto::HOP_BY_HOP || h.kind == proto::ROUTING);
    let (named_at, offset) = match before {
        Some(i) => (hdrs[i].offset, hdrs[i].offset + hdrs[i].len),
        None => (6, IPV6_HEADER_LEN),
    };
    if hdrs[before.map_or(0, |i| i + 1)..]
        .iter()
        .any(|h| h.kind == proto::DESTINATION_OPTIONS)
    {
        return Err(RewriteError::AlreadyPresent);
    }
    let home = addr_at(pkt, SRC);
    let header = DestOptsRepr {
        next_header: pkt[named_at],
        options: vec![DestOption::HomeAddress(home)],
    }
    .to_bytes();
    insert_header(
        pkt,
        end,
        named_at,
        offset,
        proto::DESTINATION_OPTIONS,
        &header,
    )?;
    pkt[SRC..SRC + 16].copy_from_slice(&care_of.octets());
    Ok(())
}

// --- correspondent: send with a Type 2 Routing Header -----------------------------------

/// RFC 6275 §9.3.2 for a correspondent with a binding for the packet's destination (a
/// home address): the destination becomes `care_of` and a Type 2 Routing Header right
/// after the IPv6 (and Hop-by-Hop) header carries the home address, Segments Left 1.
///
/// The packet grows by 24 bytes; keeping it under the path MTU is the caller's concern
/// (a route MTU 24 bytes smaller for home addresses with a binding, or local
/// fragmentation, which the kernel does after the reroute).
pub fn send_rh2(pkt: &mut Vec<u8>, care_of: Ipv6Addr) -> Result<()> {
    let end = frame(pkt)?;
    if !ext_header::is_valid_home_address(&care_of) {
        return Err(RewriteError::BadAddress);
    }
    let home = addr_at(pkt, DST);
    if home.is_multicast() {
        return Err(RewriteError::BadAddress);
    }
    let (hdrs, _, _) = headers(pkt, end)?;
    if hdrs.iter().any(|h| h.kind == proto::ROUTING) {
        return Err(RewriteError::AlreadyPresent);
    }
    let (named_at, offset) = match hdrs.first() {
        Some(h) if h.kind == proto::HOP_BY_HOP => (h.offset, h.offset + h.len),
        _ => (6, IPV6_HEADER_LEN),
    };
    let rh = Type2RoutingRepr {
        next_header: pkt[named_at],
        segments_left: 1,
        home_address: home,
    }
    .to_bytes();
    insert_header(pkt, end, named_at, offset, proto::ROUTING, &rh)?;
    pkt[DST..DST + 16].copy_from_slice(&care_of.octets());
    Ok(())
}

/// The mobile node's side of [`send_rh2`] (RFC 6275 §11.3.3) for a kernel that does not
/// know routing type 2: the Type 2 Routing Header goes away and its home address becomes
/// the destination. Returns the care-of address the packet arrived for and the home
/// address. The caller must check that the home address is one of its own (and that the
/// care-of address is its current one) before accepting the result.
pub fn receive_rh2(pkt: &mut Vec<u8>) -> Result<HomeAddressInfo> {
    let end = frame(pkt)?;
    let (hdrs, _, _) = headers(pkt, end)?;
    let h = *hdrs
        .iter()
        .find(|h| h.kind == proto::ROUTING)
        .ok_or(RewriteError::NoType2Routing)?;
    let bytes = &pkt[h.offset..h.offset + h.len];
    let rh = RoutingHeader::peek(bytes).map_err(RewriteError::BadHeader)?;
    if rh.routing_type != ext_header::ROUTING_TYPE_2 {
        return Err(RewriteError::NoType2Routing);
    }
    let repr = Type2RoutingRepr::parse(bytes).map_err(RewriteError::BadHeader)?;
    let info = HomeAddressInfo {
        care_of: addr_at(pkt, DST),
        home: repr.home_address,
    };
    remove_header(pkt, end, h)?;
    pkt[DST..DST + 16].copy_from_slice(&info.home.octets());
    Ok(info)
}

// --- IPv6-in-IPv6 (RFC 2473) between mobile node and home agent ----------------------------

/// Prepends an outer IPv6 header `outer_src` → `outer_dst` (Next Header 41). The traffic
/// class is copied from the inner packet, the flow label is left 0.
pub fn encapsulate(
    pkt: &mut Vec<u8>,
    outer_src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    hop_limit: u8,
) -> Result<()> {
    let end = frame(pkt)?;
    if end > usize::from(u16::MAX) {
        return Err(RewriteError::TooLong);
    }
    pkt.truncate(end);
    let mut outer = [0u8; IPV6_HEADER_LEN];
    // Version 6 and the inner traffic class (the 8 bits straddling bytes 0 and 1).
    outer[0] = 0x60 | (pkt[0] & 0x0f);
    outer[1] = pkt[1] & 0xf0;
    outer[4..6].copy_from_slice(&(end as u16).to_be_bytes());
    outer[6] = proto::IPV6;
    outer[7] = hop_limit;
    outer[SRC..SRC + 16].copy_from_slice(&outer_src.octets());
    outer[DST..DST + 16].copy_from_slice(&outer_dst.octets());
    pkt.splice(0..0, outer);
    Ok(())
}

/// Strips the outer IPv6 header (and any extension headers in front of Next Header 41,
/// e.g. a Tunnel Encapsulation Limit option) and leaves the inner packet. The caller
/// (a home agent) must check that the outer source is the registered care-of address of
/// the inner source (RFC 6275 §10.4.5) before forwarding the result.
pub fn decapsulate(pkt: &mut Vec<u8>) -> Result<TunnelInfo> {
    let end = frame(pkt)?;
    let (_, named_at, upper) = headers(pkt, end)?;
    if pkt[named_at] != proto::IPV6 {
        return Err(RewriteError::NotTunnelled);
    }
    let inner = &pkt[upper..end];
    let inner_end = frame(inner).map_err(|_| RewriteError::NotTunnelled)?;
    let info = TunnelInfo {
        outer_src: addr_at(pkt, SRC),
        outer_dst: addr_at(pkt, DST),
        inner_src: addr_at(inner, SRC),
        inner_dst: addr_at(inner, DST),
    };
    pkt.truncate(upper + inner_end);
    pkt.drain(..upper);
    Ok(info)
}

/// Writes the full upper-layer checksum (TCP, UDP or ICMPv6, after any extension headers
/// up to a Fragment header) over the packet's own addresses. Needed for a packet the
/// kernel queued with its checksum not yet computed (`CHECKSUM_PARTIAL`: the field holds
/// only the pseudo-header sum, the rest was left to the network card) and that is handed
/// back rewritten: the kernel then verifies it in software. Any other upper layer is
/// left as it is and reported as `BadHeader`.
pub fn complete_checksum(pkt: &mut [u8]) -> Result<()> {
    let end = frame(pkt)?;
    let (_, named_at, upper) = headers(pkt, end)?;
    let nh = pkt[named_at];
    let field = match nh {
        proto::TCP => 16,
        proto::UDP => 6,
        proto::ICMPV6 => 2,
        _ => {
            return Err(RewriteError::BadHeader(WireError::drop(
                crate::wire::error::ErrorKind::BadField,
            )))
        }
    };
    if upper + field + 2 > end {
        return Err(RewriteError::Truncated);
    }
    let (src, dst) = (addr_at(pkt, SRC), addr_at(pkt, DST));
    pkt[upper + field..upper + field + 2].fill(0);
    let mut c = crate::wire::checksum::compute(&src, &dst, nh, &pkt[upper..end]);
    if nh == proto::UDP && c == 0 {
        // RFC 8200 §8.1: a computed UDP checksum of zero is sent as all ones.
        c = 0xffff;
    }
    pkt[upper + field..upper + field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;
    use crate::wire::checksum;
    use crate::wire::packet::Ipv6Header;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const HOA: &str = "2001:db8:1::100";
    const COA: &str = "2001:db8:41::100";
    const CN: &str = "2001:db8:10::2";
    const HA: &str = "2001:db8:21::2";

    /// A UDP datagram `src` → `dst` with the checksum computed over (`ck_src`, `ck_dst`).
    fn udp(src: Ipv6Addr, dst: Ipv6Addr, ck_src: Ipv6Addr, ck_dst: Ipv6Addr) -> Vec<u8> {
        let mut u = vec![
            0x30, 0x39, 0x1f, 0x90, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o',
        ];
        let c = checksum::compute(&ck_src, &ck_dst, proto::UDP, &u);
        u[6..8].copy_from_slice(&c.to_be_bytes());
        let mut p = vec![0u8; 40];
        Ipv6Header {
            traffic_class: 0xb8,
            flow_label: 0x12345,
            payload_len: u.len() as u16,
            next_header: proto::UDP,
            hop_limit: 64,
            src,
            dst,
        }
        .emit(&mut p);
        p.extend(u);
        p
    }

    fn udp_ok(pkt: &[u8]) -> bool {
        let ip = Ipv6Header::parse(pkt).unwrap();
        assert_eq!(ip.next_header, proto::UDP);
        checksum::verify(&ip.src, &ip.dst, proto::UDP, &pkt[40..])
    }

    /// What a MIPv6 mobile node sends: DestOpts(PadN 2, HAO) between IPv6 and UDP, source
    /// CoA, checksum over the HoA.
    fn with_hao() -> Vec<u8> {
        let mut p = udp(a(COA), a(CN), a(HOA), a(CN));
        let d = DestOptsRepr {
            next_header: proto::UDP,
            options: vec![DestOption::HomeAddress(a(HOA))],
        }
        .to_bytes();
        assert_eq!(&d[..8], &[17, 2, 1, 2, 0, 0, 0xc9, 16]);
        p[6] = proto::DESTINATION_OPTIONS;
        p.splice(40..40, d);
        let len = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn complete_checksum_replaces_a_pseudo_header_only_sum() {
        // As a CHECKSUM_PARTIAL packet comes: the field holds only the pseudo-header sum,
        // here inside a Destination Options header that must be walked past.
        let mut p = with_hao();
        p[8..24].copy_from_slice(&a(HOA).octets());
        let upper = p.len() - 13;
        p[upper + 6..upper + 8].copy_from_slice(&[0x12, 0x34]);
        let ok = |p: &[u8]| checksum::verify(&a(HOA), &a(CN), proto::UDP, &p[upper..]);
        assert!(!ok(&p));
        complete_checksum(&mut p).unwrap();
        assert!(ok(&p));
        // Not an upper layer it knows: untouched, and said so.
        let mut q = p.clone();
        q[40] = proto::NO_NEXT_HEADER;
        let before = q.clone();
        assert!(complete_checksum(&mut q).is_err());
        assert_eq!(q, before);
    }

    #[test]
    fn receive_hao_removes_header_swaps_source_and_keeps_checksum_valid() {
        let mut p = with_hao();
        let plain = udp(a(HOA), a(CN), a(HOA), a(CN));
        let info = receive_hao(&mut p).unwrap();
        assert_eq!(
            info,
            HomeAddressInfo {
                care_of: a(COA),
                home: a(HOA)
            }
        );
        assert_eq!(p, plain);
        assert!(
            udp_ok(&p),
            "sender's checksum over the HoA holds after the swap"
        );
    }

    #[test]
    fn checksum_over_the_care_of_address_would_not_survive() {
        // The control for the claim above: a (wrong) sender that summed over the CoA
        // produces a datagram that fails after the swap — the rewrite does not fix it up.
        let mut p = udp(a(COA), a(CN), a(COA), a(CN));
        let d = DestOptsRepr {
            next_header: proto::UDP,
            options: vec![DestOption::HomeAddress(a(HOA))],
        }
        .to_bytes();
        p[6] = proto::DESTINATION_OPTIONS;
        p.splice(40..40, d);
        let len = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        receive_hao(&mut p).unwrap();
        assert!(!udp_ok(&p));
    }

    #[test]
    fn receive_hao_keeps_other_options_as_padding() {
        let mut p = udp(a(COA), a(CN), a(HOA), a(CN));
        let d = DestOptsRepr {
            next_header: proto::UDP,
            options: vec![
                DestOption::HomeAddress(a(HOA)),
                DestOption::Unknown {
                    opt_type: 0x1e, // 00 action bits: skip if unknown
                    data: vec![1, 2, 3],
                },
            ],
        }
        .to_bytes();
        p[6] = proto::DESTINATION_OPTIONS;
        p.splice(40..40, d.clone());
        let len = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        let before = p.len();
        receive_hao(&mut p).unwrap();
        assert_eq!(p.len(), before);
        let repr = DestOptsRepr::parse(&p[40..]).unwrap();
        assert_eq!(repr.home_address(), None);
        assert_eq!(repr.options.len(), 1);
        assert_eq!(Ipv6Header::parse(&p).unwrap().src, a(HOA));
        assert!(checksum::verify(
            &a(HOA),
            &a(CN),
            proto::UDP,
            &p[40 + d.len()..]
        ));
    }

    #[test]
    fn receive_hao_without_option_or_with_garbage_is_untouched() {
        let plain = udp(a(HOA), a(CN), a(HOA), a(CN));
        let mut p = plain.clone();
        assert_eq!(receive_hao(&mut p), Err(RewriteError::NoHomeAddressOption));
        assert_eq!(p, plain);
        let mut p = with_hao();
        p[40 + 7] = 8; // HAO length 8
        let orig = p.clone();
        assert!(matches!(
            receive_hao(&mut p),
            Err(RewriteError::BadHeader(_))
        ));
        assert_eq!(p, orig);
    }

    #[test]
    fn send_hao_is_the_inverse_of_receive_hao() {
        let mut p = udp(a(HOA), a(CN), a(HOA), a(CN));
        send_hao(&mut p, a(COA)).unwrap();
        assert_eq!(p, with_hao());
        let mut q = p.clone();
        assert_eq!(send_hao(&mut q, a(COA)), Err(RewriteError::AlreadyPresent));
    }

    #[test]
    fn send_rh2_then_receive_rh2_round_trip() {
        let plain = udp(a(CN), a(HOA), a(CN), a(HOA));
        let mut p = plain.clone();
        send_rh2(&mut p, a(COA)).unwrap();
        let ip = Ipv6Header::parse(&p).unwrap();
        assert_eq!(ip.dst, a(COA));
        assert_eq!(ip.next_header, proto::ROUTING);
        assert_eq!(usize::from(ip.payload_len), p.len() - 40);
        let rh = Type2RoutingRepr::parse(&p[40..]).unwrap();
        assert_eq!(rh.home_address, a(HOA));
        assert_eq!(rh.next_header, proto::UDP);
        // The project's packet walker agrees the upper-layer checksum is valid for the
        // final destination.
        let walked = crate::wire::packet::parse(&p).unwrap();
        assert_eq!(walked.final_dst(), a(HOA));
        assert_eq!(
            send_rh2(&mut p.clone(), a(COA)),
            Err(RewriteError::AlreadyPresent)
        );

        let info = receive_rh2(&mut p).unwrap();
        assert_eq!(
            info,
            HomeAddressInfo {
                care_of: a(COA),
                home: a(HOA)
            }
        );
        assert_eq!(p, plain);
        assert!(udp_ok(&p));
    }

    #[test]
    fn receive_rh2_rejects_other_routing_types_and_bad_segments() {
        let mut p = udp(a(CN), a(HOA), a(CN), a(HOA));
        send_rh2(&mut p, a(COA)).unwrap();
        for (at, val) in [(42, 0u8), (43, 0), (43, 2), (41, 3)] {
            let mut q = p.clone();
            q[at] = val;
            let orig = q.clone();
            assert!(receive_rh2(&mut q).is_err(), "byte {at} = {val}");
            assert_eq!(q, orig);
        }
    }

    #[test]
    fn encapsulate_then_decapsulate_round_trip() {
        let inner = udp(a(HOA), a(CN), a(HOA), a(CN));
        let mut p = inner.clone();
        encapsulate(&mut p, a(COA), a(HA), 64).unwrap();
        let ip = Ipv6Header::parse(&p).unwrap();
        assert_eq!((ip.src, ip.dst), (a(COA), a(HA)));
        assert_eq!(ip.next_header, proto::IPV6);
        assert_eq!(usize::from(ip.payload_len), inner.len());
        assert_eq!(ip.traffic_class, 0xb8);
        assert_eq!(ip.flow_label, 0);
        let info = decapsulate(&mut p).unwrap();
        assert_eq!(
            info,
            TunnelInfo {
                outer_src: a(COA),
                outer_dst: a(HA),
                inner_src: a(HOA),
                inner_dst: a(CN)
            }
        );
        assert_eq!(p, inner);
        assert_eq!(
            decapsulate(&mut inner.clone()),
            Err(RewriteError::NotTunnelled)
        );
    }

    #[test]
    fn too_long_and_truncated() {
        let mut big = udp(a(CN), a(HOA), a(CN), a(HOA));
        big.resize(40 + 65_530, 0);
        big[4..6].copy_from_slice(&65_530u16.to_be_bytes());
        let orig = big.clone();
        assert_eq!(send_rh2(&mut big, a(COA)), Err(RewriteError::TooLong));
        assert_eq!(big, orig);
        // encapsulation: the inner packet is the outer payload, at most 65535 bytes.
        assert_eq!(
            encapsulate(&mut big, a(COA), a(HA), 64),
            Err(RewriteError::TooLong)
        );
        let mut short = udp(a(CN), a(HOA), a(CN), a(HOA));
        short.truncate(50);
        assert_eq!(send_rh2(&mut short, a(COA)), Err(RewriteError::Truncated));
    }

    #[test]
    fn trailing_bytes_beyond_payload_length_are_dropped() {
        let mut p = with_hao();
        p.extend_from_slice(&[0xee; 6]);
        receive_hao(&mut p).unwrap();
        assert_eq!(p, udp(a(HOA), a(CN), a(HOA), a(CN)));
    }

    type Rewrite = fn(&mut Vec<u8>) -> bool;

    #[test]
    fn no_panic_on_random_or_mutated_input() {
        let rewrites: [Rewrite; 7] = [
            |p| receive_hao(p).is_ok(),
            |p| send_hao(p, "2001:db8::9".parse().unwrap()).is_ok(),
            |p| send_rh2(p, "2001:db8::9".parse().unwrap()).is_ok(),
            |p| receive_rh2(p).is_ok(),
            |p| encapsulate(p, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 1).is_ok(),
            |p| decapsulate(p).is_ok(),
            |p| complete_checksum(p).is_ok(),
        ];
        let mut seeds = vec![with_hao(), udp(a(CN), a(HOA), a(CN), a(HOA))];
        let mut rh = seeds[1].clone();
        send_rh2(&mut rh, a(COA)).unwrap();
        let mut both = rh.clone();
        send_hao(&mut both, a(COA)).unwrap();
        let mut tun = seeds[0].clone();
        encapsulate(&mut tun, a(COA), a(HA), 64).unwrap();
        seeds.extend([rh, both, tun]);
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut ok = 0;
        for round in 0..60_000 {
            let mut p = if round % 3 == 0 {
                let n = (rng.next() % 160) as usize;
                let mut v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                if let Some(b) = v.first_mut() {
                    *b = 0x60 | (*b & 0x0f);
                }
                v
            } else {
                let mut v = seeds[round % seeds.len()].clone();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % v.len();
                    v[i] = rng.next() as u8;
                }
                if rng.next() % 4 == 0 {
                    let cut = (rng.next() as usize) % (v.len() + 1);
                    v.truncate(cut);
                }
                v
            };
            let orig = p.clone();
            let f = rewrites[(rng.next() % 7) as usize];
            if f(&mut p) {
                ok += 1;
                // Whatever succeeded must still frame as an IPv6 packet.
                assert!(frame(&p).is_ok());
            } else {
                assert_eq!(p, orig, "a failed rewrite must leave the packet alone");
            }
        }
        assert!(ok > 1000, "the sweep reached the rewriting paths ({ok})");
    }
}
