//! Routes with an SRv6 lightweight tunnel, and rules that match a transport protocol:
//! the kernel-native ip6ip6 tunnel of the `seg6` fast path (`crate::datapath::seg6`).
//!
//! `encap seg6 mode encap.red` with a single segment emits a plain RFC 2473 packet
//! (outer header, no Segment Routing Header: the reduced encapsulation leaves out the SRH
//! when its only segment is the outer destination), and `seg6local action End.DT6`
//! decapsulates one and routes the inner packet in a table. The attributes are encoded by
//! hand (`netlink-packet-route` cannot build the reduced mode or seg6local); the test
//! beside this file pins the bytes, and `tests/seg6_fastpath.rs` checks that the kernel
//! reads them back as `ip -6 route` shows its own.

use std::io;
use std::net::Ipv6Addr;

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{RouteAttribute, RouteLwEnCapType};
use netlink_packet_route::rule::RuleAttribute;
use netlink_packet_route::{IpProtocol, RouteNetlinkMessage};

use super::{msg, Route, Rtnl, Rule};

/// `RTA_ENCAP`.
const RTA_ENCAP: u16 = 22;
/// `SEG6_IPTUNNEL_SRH` (`linux/seg6_iptunnel.h`).
const SEG6_IPTUNNEL_SRH: u16 = 1;
/// `SEG6_IPTUN_MODE_ENCAP_RED`.
const SEG6_IPTUN_MODE_ENCAP_RED: u32 = 3;
/// `SEG6_LOCAL_ACTION`, `SEG6_LOCAL_TABLE` (`linux/seg6_local.h`).
const SEG6_LOCAL_ACTION: u16 = 1;
const SEG6_LOCAL_TABLE: u16 = 3;
/// `SEG6_LOCAL_ACTION_END_DT6`.
const SEG6_LOCAL_ACTION_END_DT6: u32 = 7;
/// `IPPROTO_IPV6`: what an ip6ip6 tunnel carries.
pub const IPPROTO_IPV6: u8 = 41;

/// The lightweight tunnel of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// `encap seg6 mode encap.red segs SEGMENT`: IPv6-in-IPv6 toward `SEGMENT`.
    Reduced(Ipv6Addr),
    /// `encap seg6local action End.DT6 table TABLE`: decapsulate, route the inner packet
    /// in `TABLE`.
    EndDt6 { table: u32 },
}

impl Encap {
    fn kind(&self) -> RouteLwEnCapType {
        match self {
            Encap::Reduced(_) => RouteLwEnCapType::Seg6,
            Encap::EndDt6 { .. } => RouteLwEnCapType::Seg6Local,
        }
    }

    /// The nested attributes inside `RTA_ENCAP`.
    pub fn attributes(&self) -> Vec<(u16, Vec<u8>)> {
        match *self {
            Encap::Reduced(segment) => {
                // struct seg6_iptunnel_encap { int mode; struct ipv6_sr_hdr srh; }, the
                // SRH with one segment: next header 0, length 2 (16 bytes in 8-byte units),
                // routing type 4, segments left 0, last entry 0, flags 0, tag 0.
                let mut v = SEG6_IPTUN_MODE_ENCAP_RED.to_ne_bytes().to_vec();
                v.extend_from_slice(&[0, 2, 4, 0, 0, 0, 0, 0]);
                v.extend_from_slice(&segment.octets());
                vec![(SEG6_IPTUNNEL_SRH, v)]
            }
            Encap::EndDt6 { table } => vec![
                (
                    SEG6_LOCAL_ACTION,
                    SEG6_LOCAL_ACTION_END_DT6.to_ne_bytes().to_vec(),
                ),
                (SEG6_LOCAL_TABLE, table.to_ne_bytes().to_vec()),
            ],
        }
    }
}

/// `RTM_NEWROUTE` for `r` with the tunnel `encap`.
pub fn new_route(r: &Route, encap: &Encap) -> RouteNetlinkMessage {
    let RouteNetlinkMessage::NewRoute(mut m) = msg::new_route(r) else {
        unreachable!("msg::new_route builds RTM_NEWROUTE")
    };
    // Built whole. The crate's `DefaultNla` drops `NLA_F_NESTED`, which iproute2 sets;
    // the kernel parses `RTM_NEWROUTE` leniently and does not require it.
    let mut nested = Vec::new();
    for (kind, value) in encap.attributes() {
        let len = 4 + value.len();
        nested.extend_from_slice(&(len as u16).to_ne_bytes());
        nested.extend_from_slice(&kind.to_ne_bytes());
        nested.extend_from_slice(&value);
        nested.resize(nested.len().next_multiple_of(4), 0);
    }
    m.attributes
        .push(RouteAttribute::Other(DefaultNla::new(RTA_ENCAP, nested)));
    m.attributes.push(RouteAttribute::EncapType(encap.kind()));
    RouteNetlinkMessage::NewRoute(m)
}

fn with_proto(m: RouteNetlinkMessage, proto: u8) -> RouteNetlinkMessage {
    match m {
        RouteNetlinkMessage::NewRule(mut r) => {
            r.attributes
                .push(RuleAttribute::IpProtocol(IpProtocol::from(proto)));
            RouteNetlinkMessage::NewRule(r)
        }
        RouteNetlinkMessage::DelRule(mut r) => {
            r.attributes
                .push(RuleAttribute::IpProtocol(IpProtocol::from(proto)));
            RouteNetlinkMessage::DelRule(r)
        }
        other => other,
    }
}

/// `RTM_NEWRULE` for `r`, matching only packets of transport protocol `proto`
/// (`ipproto`).
pub fn new_proto_rule(r: &Rule, proto: u8) -> RouteNetlinkMessage {
    with_proto(msg::new_rule(r), proto)
}

pub fn del_proto_rule(r: &Rule, proto: u8) -> RouteNetlinkMessage {
    with_proto(msg::del_rule(r), proto)
}

impl Rtnl {
    /// Adds (or replaces) `r` with the lightweight tunnel `encap`. `del_route` removes it.
    pub fn add_encap_route(&mut self, r: &Route, encap: &Encap) -> io::Result<()> {
        self.request(
            new_route(r, encap),
            NLM_F_CREATE | NLM_F_REPLACE,
            "add lwtunnel route",
        )
    }

    /// Adds `r` matching transport protocol `proto` only. Among rules of equal priority
    /// the kernel puts a new one after the others.
    pub fn add_proto_rule(&mut self, r: &Rule, proto: u8) -> io::Result<()> {
        self.request(
            new_proto_rule(r, proto),
            netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
            "add rule",
        )
    }

    pub fn del_proto_rule(&mut self, r: &Rule, proto: u8) -> io::Result<()> {
        self.request(del_proto_rule(r, proto), 0, "delete rule")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// The `RTA_ENCAP` (type 22) and `RTA_ENCAP_TYPE` (21) attributes of the encoded
    /// message: the bytes `ip -6 route add ... encap seg6 mode encap.red segs
    /// 2001:db8:41::100` and `... encap seg6local action End.DT6 table 254` send (read
    /// from `strace -X raw` of iproute2 6.1 on x86-64), but for `NLA_F_NESTED` (0x80 in
    /// the fourth byte), which iproute2 sets and the kernel does not need.
    #[test]
    fn encap_attributes_are_the_bytes_iproute2_sends() {
        let r = Route {
            dst: a("2001:db8:1::100"),
            dst_len: 128,
            table: 200,
            ..Route::default()
        };
        let bytes = msg::encode(new_route(&r, &Encap::Reduced(a("2001:db8:41::100"))), 0, 1);
        let red: [u8; 36] = [
            0x24, 0x00, 0x16, 0x00, // RTA_ENCAP, 36 bytes
            0x20, 0x00, 0x01, 0x00, // SEG6_IPTUNNEL_SRH, 32 bytes
            0x03, 0x00, 0x00, 0x00, // mode encap.red
            0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, // SRH, one segment
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
        ];
        let ty: [u8; 8] = [0x06, 0x00, 0x15, 0x00, 0x05, 0x00, 0x00, 0x00];
        assert!(
            bytes.windows(red.len()).any(|w| w == red),
            "{}",
            crate::hex::encode(&bytes)
        );
        assert!(bytes.windows(ty.len()).any(|w| w == ty));
        let bytes = msg::encode(new_route(&r, &Encap::EndDt6 { table: 254 }), 0, 1);
        let dt6: [u8; 20] = [
            0x14, 0x00, 0x16, 0x00, // RTA_ENCAP
            0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, // action End.DT6
            0x08, 0x00, 0x03, 0x00, 0xfe, 0x00, 0x00, 0x00, // table 254
        ];
        let ty: [u8; 8] = [0x06, 0x00, 0x15, 0x00, 0x07, 0x00, 0x00, 0x00];
        assert!(
            bytes.windows(dt6.len()).any(|w| w == dt6),
            "{}",
            crate::hex::encode(&bytes)
        );
        assert!(bytes.windows(ty.len()).any(|w| w == ty));
    }

    #[test]
    fn a_protocol_rule_carries_fra_ip_proto() {
        let r = Rule {
            priority: 0,
            table: 200,
            ..Rule::default()
        };
        let bytes = msg::encode(new_proto_rule(&r, IPPROTO_IPV6), 0, 1);
        // FRA_IP_PROTO (22), one byte, padded.
        let want: [u8; 8] = [0x05, 0x00, 0x16, 0x00, 41, 0, 0, 0];
        assert!(bytes.windows(want.len()).any(|w| w == want));
    }
}
