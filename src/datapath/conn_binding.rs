//! The acceptor's per-connection binding on the `user` data path: after a handoff, the
//! client (whose binding now maps the DSA to the acceptor's address) sends the
//! connection's segments with a Type 2 Routing Header to the acceptor, and expects them
//! back from the acceptor's address with a Home Address option carrying the DSA. Only
//! the handed-off connection's 5-tuple gets that treatment; the node's other traffic,
//! other connections on the DSA included, is untouched.
//!
//! Rules (queue `N` in, `N + 1` out; bind both before installing the rules):
//!
//! - raw PREROUTING `-s client -d CoA -p 135`: the client's Care-of Test and Binding
//!   Acknowledgement, for the binder (`ds::redirect::Binder`): [`In::Mobility`].
//! - raw PREROUTING `-s client -d CoA -p tcp --sport P --dport D -m rt --rt-type 2`:
//!   [`rewrite::receive_rh2`], accepted only for the DSA at this CoA.
//! - raw OUTPUT `-s DSA -d client -p tcp --sport D --dport P`: [`rewrite::send_hao`]
//!   (source := CoA; the kernel re-routes it).
//!
//! The Home Address option adds 24 bytes: the path to the client needs an MTU that much
//! smaller before the socket is restored (TCP sizes its segments at re-creation).

use super::rewrite;
use super::user::Rule;
use crate::wire::packet::{self, Header};
use std::net::{Ipv6Addr, SocketAddrV6};

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

impl ConnBinding {
    /// The rules, in order (receive queue `queue`, send queue `queue + 1`).
    pub fn rules(&self, queue: u16) -> Vec<Rule> {
        let peer = format!("{}/128", self.peer.ip());
        let coa = format!("{}/128", self.coa);
        let dsa = format!("{}/128", self.local.ip());
        let (pp, lp) = (self.peer.port().to_string(), self.local.port().to_string());
        let mk = |table, chain, m: &[&str], q| {
            let mut spec: Vec<String> = m.iter().map(|s| s.to_string()).collect();
            nfqueue(&mut spec, q);
            Rule { table, chain, spec }
        };
        vec![
            mk(
                "raw",
                "PREROUTING",
                &["-s", &peer, "-d", &coa, "-p", "135"],
                queue,
            ),
            mk(
                "raw",
                "PREROUTING",
                &[
                    "-s",
                    &peer,
                    "-d",
                    &coa,
                    "-p",
                    "tcp",
                    "--sport",
                    &pp,
                    "--dport",
                    &lp,
                    "-m",
                    "rt",
                    "--rt-type",
                    "2",
                ],
                queue,
            ),
            mk(
                "raw",
                "OUTPUT",
                &[
                    "-s", &dsa, "-d", &peer, "-p", "tcp", "--sport", &lp, "--dport", &pp,
                ],
                queue.saturating_add(1),
            ),
        ]
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
    fn rules_name_the_five_tuple() {
        let r = binding().rules(70);
        let text: Vec<String> = r.iter().map(|r| r.describe()).collect();
        assert!(text[1].contains("--sport 40000 --dport 8000"), "{text:?}");
        assert!(text[1].contains("--queue-num 70"));
        assert!(text[2].contains("-s 2001:db8:1::200/128 -d 2001:db8:10::2/128"));
        assert!(text[2].contains("--sport 8000 --dport 40000 -j NFQUEUE --queue-num 71"));
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
        }
        for n in 0..seg.len() {
            let _ = b.outgoing(&seg[..n]);
        }
    }
}
