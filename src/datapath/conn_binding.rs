//! The acceptor's per-connection binding on the `user` data path: after a handoff, the
//! client (whose binding now maps the DSA to the acceptor's address) sends the
//! connection's segments with a Type 2 Routing Header to the acceptor, and expects them
//! back from the acceptor's address with a Home Address option carrying the DSA. Only
//! the handed-off connection's 5-tuple gets that treatment; the node's other traffic,
//! other connections on the DSA included, is untouched.
//!
//! The rules are constant, installed once per node ([`rules`], receive queue `N`, send
//! queue `N + 1`; bind both before installing them); a connection is two or three
//! elements of two `hash:ip,port,ip` IP sets ([`ConnBinding::elements`]), added and
//! removed by one netlink message each, so that no process is forked while a connection
//! is frozen:
//!
//! - raw PREROUTING `-p 135 -m set --match-set IN src,src,dst`, element (client, 135:0,
//!   CoA): the client's Care-of Test and Binding Acknowledgement, for the binder
//!   (`ds::redirect::Binder`): [`In::Mobility`].
//! - raw PREROUTING `-p tcp -m rt --rt-type 2 -m set --match-set IN src,src,dst`, element
//!   (client, tcp:P, CoA): [`rewrite::receive_rh2`], accepted only for the DSA at this CoA.
//! - raw OUTPUT `-p tcp -m set --match-set OUT dst,dst,src`, element (client, tcp:P,
//!   DSA): [`rewrite::send_hao`] (source := CoA; the kernel re-routes it).
//!
//! The sets do not name the service port: the queue's reader finds the connection by its
//! whole four-tuple ([`tcp_tuple`]) and lets other segments pass untouched.
//!
use super::rewrite;
use super::sets::match_set;
use super::user::Rule;
use crate::sys::ipset::Triple;
use crate::wire::packet::{self, Header, IPV6_HEADER_LEN};
use std::net::{Ipv6Addr, SocketAddrV6};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_MH: u8 = 135;

/// What the Home Address option adds to each segment.
pub const HAO_OVERHEAD: u32 = 24;

/// One handed-off connection as the acceptor serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnBinding {
    /// DSA and service port.
    pub local: SocketAddrV6,
    /// The client.
    pub peer: SocketAddrV6,
    /// The acceptor's own address (the binding's care-of address).
    pub coa: Ipv6Addr,
}

fn nfqueue(spec: &mut Vec<String>, queue: u16) {
    spec.extend(["-j", "NFQUEUE", "--queue-num"].map(String::from));
    spec.push(queue.to_string());
}

/// The node's constant rules, in order (receive queue `queue`, send queue `queue + 1`),
/// naming the sets `inbound` and `outbound` (create those first).
pub fn rules(queue: u16, inbound: &str, outbound: &str) -> Vec<Rule> {
    let mk = |chain, m: &[&str], set: &[&str], q| {
        let mut spec: Vec<String> = m.iter().chain(set).map(|s| s.to_string()).collect();
        nfqueue(&mut spec, q);
        Rule {
            table: "raw",
            chain,
            spec,
        }
    };
    vec![
        mk(
            "PREROUTING",
            &["-p", "135"],
            &match_set(inbound, "src,src,dst"),
            queue,
        ),
        mk(
            "PREROUTING",
            &["-p", "tcp", "-m", "rt", "--rt-type", "2"],
            &match_set(inbound, "src,src,dst"),
            queue,
        ),
        mk(
            "OUTPUT",
            &["-p", "tcp"],
            &match_set(outbound, "dst,dst,src"),
            queue.saturating_add(1),
        ),
    ]
}

/// A TCP segment's (source, destination, source port, destination port), past any
/// extension headers; `None` for anything else. Never panics.
pub fn tcp_tuple(payload: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u16, u16)> {
    let pkt = packet::parse(payload).ok()?;
    let len = pkt.headers.iter().find_map(|h| match h {
        Header::Upper { protocol, len } if *protocol == IPPROTO_TCP => Some(*len),
        _ => None,
    })?;
    // The walker measures the upper layer back from the end of the declared payload.
    let end = (IPV6_HEADER_LEN + usize::from(pkt.ip.payload_len)).min(payload.len());
    let tcp = payload.get(end.checked_sub(len)?..end)?;
    let ports = tcp.get(..4)?;
    Some((
        pkt.ip.src,
        pkt.ip.dst,
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    ))
}

impl ConnBinding {
    /// The set elements that bring this connection's packets to the queues: for the
    /// receive set (Mobility Headers, then segments with a Type 2 Routing Header), and
    /// for the send set.
    pub fn elements(&self) -> ([Triple; 2], Triple) {
        let client = *self.peer.ip();
        let port = self.peer.port();
        (
            [
                Triple {
                    ip: client,
                    proto: IPPROTO_MH,
                    port: 0,
                    ip2: self.coa,
                },
                Triple {
                    ip: client,
                    proto: IPPROTO_TCP,
                    port,
                    ip2: self.coa,
                },
            ],
            Triple {
                ip: client,
                proto: IPPROTO_TCP,
                port,
                ip2: *self.local.ip(),
            },
        )
    }

    /// Decides a packet from the receive queue. Never panics.
    pub fn incoming(&self, payload: &[u8]) -> In {
        let Ok(pkt) = packet::parse(payload) else {
            return In::Drop;
        };
        if pkt
            .headers
            .iter()
            .any(|h| matches!(h, Header::Mobility { .. }))
        {
            return In::Mobility;
        }
        let mut buf = payload.to_vec();
        match rewrite::receive_rh2(&mut buf) {
            Ok(i) if i.home == *self.local.ip() && i.care_of == self.coa => In::Accept(buf),
            _ => In::Drop,
        }
    }

    /// Rewrites a packet from the send queue: `None` drops it. Never panics.
    pub fn outgoing(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let mut buf = payload.to_vec();
        rewrite::send_hao(&mut buf, self.coa).ok()?;
        Some(buf)
    }
}

/// What to do with a received packet.
#[derive(Debug, PartialEq, Eq)]
pub enum In {
    /// For the binder; drop it from the kernel's path.
    Mobility,
    /// The rewritten segment, for the restored socket.
    Accept(Vec<u8>),
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{Ipv6Header, PacketBuilder, Payload};

    const UDP: Payload<'static> = Payload::Udp {
        src_port: 8000,
        dst_port: 40000,
        data: &[0; 20],
    };

    fn binding() -> ConnBinding {
        ConnBinding {
            local: "[2001:db8:1::200]:8000".parse().unwrap(),
            peer: "[2001:db8:10::2]:40000".parse().unwrap(),
            coa: "2001:db8:32::2".parse().unwrap(),
        }
    }

    #[test]
    fn constant_rules_and_the_connection_as_set_elements() {
        let text: Vec<String> = rules(70, "mip6d-c70-in", "mip6d-c70-out")
            .iter()
            .map(|r| r.describe())
            .collect();
        assert!(text[0].contains("-p 135 -m set --match-set mip6d-c70-in src,src,dst"));
        assert!(text[1].contains("--rt-type 2 -m set --match-set mip6d-c70-in src,src,dst"));
        assert!(text[1].contains("--queue-num 70"), "{text:?}");
        assert!(text[2]
            .contains("-m set --match-set mip6d-c70-out dst,dst,src -j NFQUEUE --queue-num 71"));
        let b = binding();
        let ([mh, tcp_in], out) = b.elements();
        assert_eq!(
            (mh.ip, mh.proto, mh.port, mh.ip2),
            (*b.peer.ip(), 135, 0, b.coa)
        );
        assert_eq!((tcp_in.proto, tcp_in.port, tcp_in.ip2), (6, 40000, b.coa));
        assert_eq!(
            (out.ip, out.port, out.ip2),
            (*b.peer.ip(), 40000, *b.local.ip())
        );
    }

    #[test]
    fn tcp_tuple_reads_the_ports_past_a_routing_header() {
        let b = binding();
        // A UDP datagram relabelled TCP: the walker does not check TCP checksums.
        let mut seg = PacketBuilder::new(*b.peer.ip(), *b.local.ip()).build(UDP);
        seg[6] = IPPROTO_TCP;
        assert_eq!(
            tcp_tuple(&seg),
            Some((*b.peer.ip(), *b.local.ip(), 8000, 40000))
        );
        rewrite::send_rh2(&mut seg, b.coa).unwrap();
        assert_eq!(tcp_tuple(&seg), Some((*b.peer.ip(), b.coa, 8000, 40000)));
        let udp = PacketBuilder::new(*b.peer.ip(), *b.local.ip()).build(UDP);
        assert_eq!(tcp_tuple(&udp), None);
    }

    #[test]
    fn hao_out_and_rh2_in_only_for_the_dsa_at_this_care_of_address() {
        let b = binding();
        // What the acceptor's socket sends: DSA -> client; it leaves from the CoA.
        let seg = PacketBuilder::new(*b.local.ip(), *b.peer.ip()).build(UDP);
        let out = b.outgoing(&seg).expect("rewritten");
        let ip = Ipv6Header::parse(&out).unwrap();
        assert_eq!((ip.src, ip.dst), (b.coa, *b.peer.ip()));
        assert_eq!(out.len(), seg.len() + HAO_OVERHEAD as usize);
        // What the client's mip6d sends: to the CoA with an RH2 for the DSA.
        let mut back = PacketBuilder::new(*b.peer.ip(), *b.local.ip()).build(UDP);
        rewrite::send_rh2(&mut back, b.coa).unwrap();
        let In::Accept(inb) = b.incoming(&back) else {
            panic!("not accepted")
        };
        assert_eq!(Ipv6Header::parse(&inb).unwrap().dst, *b.local.ip());
        // Another home address under the RH2: not ours to take.
        let mut other =
            PacketBuilder::new(*b.peer.ip(), "2001:db8:1::9".parse().unwrap()).build(UDP);
        rewrite::send_rh2(&mut other, b.coa).unwrap();
        assert_eq!(b.incoming(&other), In::Drop);
        for n in 0..back.len() {
            let _ = b.incoming(&back[..n]);
            let _ = tcp_tuple(&back[..n]);
        }
        for n in 0..seg.len() {
            let _ = b.outgoing(&seg[..n]);
        }
    }
}
