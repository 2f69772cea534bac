//! The mobile node's `user` engine (driven by [`super::mn_path::MnPath`]), on a kernel
//! without `CONFIG_IPV6_MIP6` and without `ip6_tunnel`: netfilter queues for what the node
//! receives and what it sends from its home address, and an `IPPROTO_RAW` socket for the
//! Mobility Headers the machines write.
//!
//! Queues (each bound before any rule that feeds it exists):
//!
//! - `N` (receive), raw PREROUTING, in this order, all `-m addrtype --dst-type LOCAL`:
//!   1. `-p 41`: the home agent's tunnel. Decapsulated only when the outer source is our
//!      home agent and the inner destination our home address (§11.3.1 / §10.4.5 seen
//!      from the mobile node); a Mobility Header inside (the Home Test, a Binding Refresh
//!      Request) goes to the machine with the tunnel's source, anything else is handed
//!      back with verdict `Repeat`, so the raw chain runs again on the inner packet.
//!   2. `-p 135`: every Mobility Header. Home Test Init, Care-of Test Init and Binding
//!      Update go to the correspondent node, the rest (BA, HoT, CoT, BRR, BE) to the
//!      mobile node, with the Type 2 Routing Header and Home Address option it came with.
//!   3. `-m rt --rt-type 2`: route-optimised traffic from a correspondent:
//!      [`rewrite::receive_rh2`], accepted only for our home address arriving at our
//!      current care-of address.
//!   4. `-m ipv6header --header dst --soft`: Home Address options, for the
//!      correspondent node part (as in [`super::user`]).
//!
//!   Plus the counting conntrack rule of the home agent ([`super::ha_user::defrag_rule`]):
//!   a tunnelled full-size packet may arrive fragmented.
//! - `N + 1` (home address out), raw OUTPUT `-s HoA/128 ! -p 135`, present while the
//!   node is away (or blocked): route-optimised correspondents get
//!   [`rewrite::send_hao`] (source := care-of address), everything else
//!   [`rewrite::encapsulate`] (CoA → HA), or is dropped while no registration covers the
//!   current location ([`Action::BlockHoa`]). The first packet to a new destination asks
//!   the machine for route optimisation with it ([`MnEvent::StartRo`], the ACQUIRE of
//!   umip's trigger policy), as `DoRouteOptimizationMN` and `MnRoPolicy` allow.
//!   Mobility Headers are left out: the machine builds its own, already tunnelled or
//!   with their Home Address option.
//! - `N + 2`: the correspondent node's route-optimisation queue ([`RoRules`]).
//!
//! Kernel state, each piece recorded in the daemon's registry with its undo:
//!
//! - **The home address stays on the node.** Away (or detached), as a /128 on `lo`
//!   (`nodad`, `IFA_F_HOMEADDRESS`; umip puts it on its tunnel device); at home, with the
//!   home prefix length on the interface attached to the home link. Without it, sockets
//!   could not bind to it and the Type 2 rewrite would have no local destination.
//! - **Home-address routing with a smaller MTU.** Away, a rule `from HoA lookup 252`
//!   and, in table 252 (umip's), a default route through the current link's router with
//!   an MTU 40 bytes below the link's (`proto 16`), so that TCP sizes its segments for
//!   the tunnel (and the 24 bytes of a Home Address option) instead of relying on
//!   fragmentation of the outer packet.
//!
//! Returning home (deregistration accepted) removes the rule, the route, the `lo` address
//! and the output rule; SIGTERM removes everything through the registry.

pub(crate) use super::ha_user::defrag_rule;
use super::rewrite;
use super::user::{self, Disposition, Rule};
use crate::config::RoPolicy;
use crate::proto::cn::Cn;
use crate::proto::event::{Inbound, MnEvent, MnInbound, Transmit};
use crate::proto::mn::{Location, Mn};
use crate::sys::nfqueue::QueuedPacket;
use crate::wire::mh::mh_type;
use crate::wire::packet::{self, Header, Ipv6Header, PacketBuilder, Payload};
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;

/// Outer hop limit of the reverse tunnel (RFC 2473 §6.3).
const TUNNEL_HOP_LIMIT: u8 = 64;
/// What the tunnel (40 bytes) or a Home Address option (24) adds; HoA-sourced routes
/// get an MTU this much smaller than the link's.
pub const TUNNEL_OVERHEAD: u32 = 40;

// --- rules -------------------------------------------------------------------------------------

fn queue_rule(table: &'static str, chain: &'static str, m: &[&str], queue: u16) -> Rule {
    let q = queue.to_string();
    let mut spec: Vec<&str> = m.to_vec();
    spec.extend(["-j", "NFQUEUE", "--queue-num", q.as_str()]);
    Rule::new(table, chain, &spec)
}

/// The receive rules on queue `queue`, in evaluation order.
pub fn receive_rules(queue: u16) -> Vec<Rule> {
    let local = ["-m", "addrtype", "--dst-type", "LOCAL"];
    let with_local = |m: &[&str]| {
        let mut v = m.to_vec();
        v.extend(local);
        queue_rule("raw", "PREROUTING", &v, queue)
    };
    vec![
        with_local(&["-p", "41"]),
        with_local(&["-p", "135"]),
        with_local(&["-m", "rt", "--rt-type", "2"]),
        with_local(&["-m", "ipv6header", "--header", "dst", "--soft"]),
    ]
}

/// The rule that brings what leaves from the home address to queue `queue`.
pub fn output_rule(hoa: Ipv6Addr, queue: u16) -> Rule {
    let s = format!("{hoa}/128");
    queue_rule("raw", "OUTPUT", &["-s", &s, "!", "-p", "135"], queue)
}

// --- packets ---------------------------------------------------------------------------------

/// What the data path was told by the machine: where home-address traffic goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paths {
    /// (home agent, care-of address) of the accepted registration.
    pub tunnel: Option<(Ipv6Addr, Ipv6Addr)>,
    pub blocked: bool,
    /// Correspondent → care-of address, for route-optimised ones.
    pub ro: HashMap<Ipv6Addr, Ipv6Addr>,
    /// The kernel encapsulates for `tunnel` ([`super::mn_seg6`]): tunnelled packets pass
    /// unchanged.
    pub kernel_tunnel: bool,
}

/// What to do with a packet from the output queue.
#[derive(Debug, PartialEq, Eq)]
pub enum OutVerdict {
    /// Rewritten (tunnelled or with a Home Address option): let the kernel re-route it.
    Rewritten(Vec<u8>),
    /// At home and unblocked (or not from the home address): unchanged.
    Pass,
    Drop,
}

/// Decides a packet the node sends from its home address. Never panics.
pub fn outgoing(paths: &Paths, hoa: Ipv6Addr, payload: &[u8]) -> OutVerdict {
    let Ok(ip) = Ipv6Header::parse(payload) else {
        return OutVerdict::Pass;
    };
    if ip.src != hoa || super::ha_user::is_neighbour_discovery(&ip, payload) {
        // Neighbour Discovery stays on the link it is about: back home, the answer to the
        // home agent's solicitation for the home address is what lets the deregistration's
        // acknowledgement reach us.
        return OutVerdict::Pass;
    }
    let mut buf = payload.to_vec();
    if let Some(coa) = paths.ro.get(&ip.dst) {
        return match rewrite::send_hao(&mut buf, *coa) {
            Ok(()) => OutVerdict::Rewritten(buf),
            Err(_) => OutVerdict::Drop,
        };
    }
    if let Some((ha, coa)) = paths.tunnel {
        if paths.kernel_tunnel {
            return OutVerdict::Pass;
        }
        return match rewrite::encapsulate(&mut buf, coa, ha, TUNNEL_HOP_LIMIT) {
            Ok(()) => OutVerdict::Rewritten(buf),
            Err(_) => OutVerdict::Drop,
        };
    }
    if paths.blocked {
        OutVerdict::Drop
    } else {
        OutVerdict::Pass
    }
}

/// What to do with a packet from the receive queue.
#[derive(Debug, PartialEq, Eq)]
pub enum InVerdict {
    /// A Mobility Header for a machine: dropped from the kernel's path.
    Consumed,
    Accept(Option<Vec<u8>>),
    /// Decapsulated: run the chain again on the inner packet.
    Repeat(Vec<u8>),
    Drop,
}

/// Message types the correspondent node part answers (the rest are the mobile node's).
pub(crate) fn for_correspondent(t: u8) -> bool {
    matches!(
        t,
        mh_type::HOME_TEST_INIT | mh_type::CARE_OF_TEST_INIT | mh_type::BINDING_UPDATE
    )
}

/// Hands a Mobility Header to the mobile node machine. `Err` when the packet has none
/// (or a bad checksum: then `Ok(false)`, to be dropped).
fn mn_mobility(
    mn: &mut Mn,
    payload: &[u8],
    tunnel_src: Option<Ipv6Addr>,
    now: Instant,
    count: &mut impl FnMut(u8),
) -> Option<bool> {
    let pkt = packet::parse(payload).ok()?;
    let (repr, ok, offset) = pkt.headers.iter().find_map(|h| match h {
        Header::Mobility {
            repr,
            checksum_ok,
            offset,
        } => Some((repr, *checksum_ok, *offset)),
        _ => None,
    })?;
    if !ok {
        return Some(false);
    }
    let end = offset.saturating_add(repr.buffer_len()).min(payload.len());
    let raw = payload.get(offset..end)?;
    let hao = pkt.headers.iter().find_map(|h| match h {
        Header::DestinationOptions(d) => d.home_address(),
        _ => None,
    });
    let rh2 = pkt.headers.iter().find_map(|h| match h {
        Header::Type2Routing(r) => Some(r.home_address),
        _ => None,
    });
    count(repr.mh_type());
    mn.handle(
        MnEvent::Mh(MnInbound {
            packet: Inbound {
                src: pkt.ip.src,
                dst: pkt.ip.dst,
                hao,
                repr,
                raw,
            },
            rh2,
            tunnel_src,
        }),
        now,
    );
    Some(true)
}

/// Whether `payload` is a Home Test or Care-of Test the machine did not ask for.
fn unawaited_test(mn: &Mn, payload: &[u8]) -> bool {
    let Ok(pkt) = packet::parse(payload) else {
        return false;
    };
    pkt.headers.iter().any(|h| match h {
        Header::Mobility { repr, .. } => match &repr.message {
            crate::wire::mh::Message::HomeTest { cookie, .. }
            | crate::wire::mh::Message::CareOfTest { cookie, .. } => {
                !mn.awaits_test(&pkt.ip.src, cookie)
            }
            _ => false,
        },
        _ => false,
    })
}

/// Decides a packet from the receive queue and feeds the machines what it learns.
/// Never panics, whatever the bytes.
pub fn incoming(
    mn: &mut Mn,
    cn: &mut Cn,
    payload: &[u8],
    now: Instant,
    count: &mut impl FnMut(u8),
) -> InVerdict {
    let hoa = mn.home_address();
    let Ok(pkt) = packet::parse(payload) else {
        return InVerdict::Accept(None);
    };
    if pkt.headers.iter().any(|h| matches!(h, Header::Tunnel(_))) {
        let mut inner = payload.to_vec();
        return match rewrite::decapsulate(&mut inner) {
            Ok(t) if Some(t.outer_src) == mn.home_agent() && t.inner_dst == hoa => {
                if unawaited_test(mn, &inner) {
                    // Delivered to the home address as if it had arrived there: below.
                    return InVerdict::Repeat(inner);
                }
                match mn_mobility(mn, &inner, Some(t.outer_src), now, count) {
                    Some(_) => InVerdict::Consumed,
                    None => InVerdict::Repeat(inner),
                }
            }
            // Not from our home agent, or not for our home address.
            _ => InVerdict::Drop,
        };
    }
    let mh = pkt.headers.iter().find_map(|h| match h {
        Header::Mobility { repr, .. } => Some(repr.mh_type()),
        _ => None,
    });
    if let Some(t) = mh {
        if pkt.ip.dst == hoa && unawaited_test(mn, payload) {
            // A Distributed Servers contact node's home test for another node: its
            // socket on the home address takes it (`ds::redirect`). The cookie is what
            // authenticates it there, as here.
            return InVerdict::Accept(None);
        }
        if for_correspondent(t) {
            return match user::receive(cn, payload, now, count) {
                Disposition::Consumed => InVerdict::Consumed,
                Disposition::Accept(b) => InVerdict::Accept(b),
                Disposition::Drop => InVerdict::Drop,
            };
        }
        return match mn_mobility(mn, payload, None, now, count) {
            Some(true) => InVerdict::Consumed,
            _ => InVerdict::Drop,
        };
    }
    if pkt
        .headers
        .iter()
        .any(|h| matches!(h, Header::Type2Routing(_)))
    {
        let mut buf = payload.to_vec();
        let here = match mn.location() {
            Location::Away(coa) => Some(coa),
            _ => None,
        };
        return match rewrite::receive_rh2(&mut buf) {
            // §11.3.3: only our home address, at the care-of address we use.
            Ok(i) if i.home == hoa && Some(i.care_of) == here => InVerdict::Accept(Some(buf)),
            _ => InVerdict::Drop,
        };
    }
    match user::receive(cn, payload, now, count) {
        Disposition::Consumed => InVerdict::Consumed,
        Disposition::Accept(b) => InVerdict::Accept(b),
        Disposition::Drop => InVerdict::Drop,
    }
}

/// [`user::hand_back`] for a receive verdict that carries a packet.
pub fn ready_to_hand_back(v: InVerdict, p: &QueuedPacket) -> InVerdict {
    match v {
        InVerdict::Accept(Some(b)) => {
            user::hand_back(b, p).map_or(InVerdict::Drop, |b| InVerdict::Accept(Some(b)))
        }
        InVerdict::Repeat(b) => user::hand_back(b, p).map_or(InVerdict::Drop, InVerdict::Repeat),
        v => v,
    }
}

/// The whole IPv6 packet for a mobile node's [`Transmit`]: the Home Address option when
/// `hao` is set, the ip6ip6 tunnel when `tunnel` is; the Mobility Header exactly as the
/// machine emitted it. Returns (packet, where to send it).
pub fn build_packet(t: &Transmit) -> Option<(Vec<u8>, Ipv6Addr)> {
    if t.rh2.is_some() {
        // A correspondent's BA; not built here.
        return user::build_packet(t).map(|p| (p, t.dst));
    }
    let mut b = PacketBuilder::new(t.src, t.dst);
    b.home_address_option = t.hao;
    let mut pkt = b.build(Payload::Mobility(&t.repr));
    let at = pkt.len().checked_sub(t.bytes.len())?;
    if pkt.len() - at != t.repr.buffer_len() {
        return None;
    }
    pkt[at..].copy_from_slice(&t.bytes);
    match t.tunnel {
        Some((coa, ha)) => {
            rewrite::encapsulate(&mut pkt, coa, ha, TUNNEL_HOP_LIMIT).ok()?;
            Some((pkt, ha))
        }
        None => Some((pkt, t.dst)),
    }
}

/// Whether route optimisation with `cn` is wanted (`MnRoPolicy`, most specific first,
/// then `DoRouteOptimizationMN`).
pub fn ro_wanted(policies: &[RoPolicy], default: bool, cn: &Ipv6Addr) -> bool {
    policies
        .iter()
        .find(|p| p.correspondent == Some(*cn))
        .or_else(|| policies.iter().find(|p| p.correspondent.is_none()))
        .map_or(default, |p| p.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cn::CnConfig;
    use crate::proto::event::Action;
    use crate::proto::event::Movement;
    use crate::proto::mn::MnConfig;
    use crate::wire::mh::{BaFlags, Message, MhRepr};
    use ring::rand::SystemRandom;
    use std::sync::Arc;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    const HOA: &str = "2001:db8:1::100";
    const HA: &str = "2001:db8:1::1";
    const COA: &str = "2001:db8:41::100";
    const CN: &str = "2001:db8:10::2";

    fn udp(src: &str, dst: &str) -> Vec<u8> {
        PacketBuilder::new(a(src), a(dst)).build(Payload::Udp {
            src_port: 1,
            dst_port: 2,
            data: b"payload",
        })
    }

    fn machines(now: Instant) -> (Mn, Cn) {
        let mut mn = Mn::new(
            MnConfig {
                home_address: a(HOA),
                home_agents: vec![a(HA)],
                ..MnConfig::default()
            },
            Arc::new(SystemRandom::new()),
        );
        mn.handle(
            MnEvent::Movement(Movement::CoaUp {
                iface: 3,
                coa: a(COA),
                preference: 1,
            }),
            now,
        );
        let cn = Cn::new(CnConfig::default(), Arc::new(SystemRandom::new()), now).unwrap();
        (mn, cn)
    }

    fn sends(mn: &mut Mn) -> Vec<Transmit> {
        std::iter::from_fn(|| mn.poll_action())
            .filter_map(|x| match x {
                Action::Send(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn queued(payload: Vec<u8>, skb_info: u32, cap_len: Option<u32>) -> QueuedPacket {
        QueuedPacket {
            id: 1,
            hw_protocol: 0x86dd,
            hook: 0,
            mark: None,
            indev: None,
            outdev: None,
            payload,
            skb_info,
            cap_len,
        }
    }

    #[test]
    fn a_rewritten_packet_goes_back_with_a_complete_checksum_or_not_at_all() {
        let good = udp(CN, HOA);
        let mut partial = good.clone();
        partial[46..48].copy_from_slice(&[0xab, 0xcd]);
        let csum_ok = |p: &[u8]| crate::wire::checksum::verify(&a(CN), &a(HOA), 17, &p[40..]);
        assert!(csum_ok(&good) && !csum_ok(&partial));
        let not_ready = crate::sys::nfqueue::skb_info::CSUM_NOT_READY;
        // Checksum left to the hardware: completed, whichever verdict carries the packet.
        let q = queued(Vec::new(), not_ready, None);
        let InVerdict::Repeat(b) = ready_to_hand_back(InVerdict::Repeat(partial.clone()), &q)
        else {
            panic!("not handed back")
        };
        assert!(csum_ok(&b));
        let InVerdict::Accept(Some(b)) =
            ready_to_hand_back(InVerdict::Accept(Some(partial.clone())), &q)
        else {
            panic!("not handed back")
        };
        assert!(csum_ok(&b));
        // A complete one is not touched.
        let q = queued(Vec::new(), 0, None);
        assert_eq!(
            ready_to_hand_back(InVerdict::Repeat(partial.clone()), &q),
            InVerdict::Repeat(partial.clone())
        );
        // Copied in part (a GSO packet beyond copy_range): cannot be rewritten.
        let q = queued(Vec::new(), 0, Some(70_000));
        assert_eq!(
            ready_to_hand_back(InVerdict::Repeat(good.clone()), &q),
            InVerdict::Drop
        );
        // Verdicts without a packet pass unchanged.
        assert_eq!(
            ready_to_hand_back(InVerdict::Accept(None), &q),
            InVerdict::Accept(None)
        );
    }

    #[test]
    fn home_address_traffic_is_tunnelled_optimised_or_held() {
        let hoa = a(HOA);
        let pkt = udp(HOA, CN);
        let mut paths = Paths {
            blocked: true,
            ..Paths::default()
        };
        assert_eq!(outgoing(&paths, hoa, &pkt), OutVerdict::Drop);
        assert_eq!(outgoing(&paths, hoa, &udp(COA, CN)), OutVerdict::Pass);
        paths.tunnel = Some((a(HA), a(COA)));
        let OutVerdict::Rewritten(t) = outgoing(&paths, hoa, &pkt) else {
            panic!("not tunnelled")
        };
        let p = packet::parse(&t).unwrap();
        assert_eq!((p.ip.src, p.ip.dst), (a(COA), a(HA)));
        assert!(matches!(&p.headers[0], Header::Tunnel(i) if i.ip.src == hoa));
        // With the reverse tunnel in the kernel, the kernel's route encapsulates.
        let kernel = Paths {
            kernel_tunnel: true,
            ..paths.clone()
        };
        assert_eq!(outgoing(&kernel, hoa, &pkt), OutVerdict::Pass);
        paths.ro.insert(a(CN), a(COA));
        let OutVerdict::Rewritten(r) = outgoing(&paths, hoa, &pkt) else {
            panic!("not optimised")
        };
        let p = packet::parse(&r).unwrap();
        assert_eq!((p.ip.src, p.ip.dst, p.final_src()), (a(COA), a(CN), hoa));
        assert!(p.error.is_none(), "{p:?}");
        // Neighbour Discovery from the home address is never held or tunnelled.
        let mut na = udp(HOA, HA);
        na[6] = crate::wire::proto::ICMPV6;
        na[40] = 136;
        assert_eq!(outgoing(&paths, hoa, &na), OutVerdict::Pass);
        // Home and unblocked: untouched.
        assert_eq!(outgoing(&Paths::default(), hoa, &pkt), OutVerdict::Pass);
        for cut in 0..pkt.len() {
            let _ = outgoing(&paths, hoa, &pkt[..cut]);
        }
    }

    #[test]
    fn home_registration_through_the_queues() {
        let now = Instant::now();
        let (mut mn, mut cn) = machines(now);
        let bu = sends(&mut mn);
        assert_eq!(bu.len(), 1);
        let (bytes, to) = build_packet(&bu[0]).unwrap();
        assert_eq!(to, a(HA));
        let p = packet::parse(&bytes).unwrap();
        assert!(p.error.is_none(), "{p:?}");
        assert_eq!((p.ip.src, p.final_src()), (a(COA), a(HOA)));
        let Some(Message::BindingUpdate { sequence, .. }) = p.mobility().map(|m| m.message.clone())
        else {
            panic!("no BU: {p:?}")
        };
        // The BA comes to the CoA with a Type 2 Routing Header for the HoA.
        let ba = MhRepr {
            message: Message::BindingAck {
                status: 0,
                flags: BaFlags::default(),
                sequence,
                lifetime_units: 100,
            },
            options: vec![],
        };
        let mut b = PacketBuilder::new(a(HA), a(COA));
        b.type2_routing = Some(a(HOA));
        let mut types = vec![];
        let v = incoming(
            &mut mn,
            &mut cn,
            &b.build(Payload::Mobility(&ba)),
            now,
            &mut |t| types.push(t),
        );
        assert_eq!((v, types), (InVerdict::Consumed, vec![6]));
        assert!(mn.home_binding().is_some());
        let acts: Vec<Action> = std::iter::from_fn(|| mn.poll_action()).collect();
        assert!(
            acts.contains(&Action::HomeTunnelSet {
                hoa: a(HOA),
                ha: a(HA),
                coa: a(COA)
            }),
            "{acts:?}"
        );

        // Tunnelled from the home agent: decapsulated and run again; from anyone else,
        // or for another address, dropped.
        let mut t = udp(CN, HOA);
        rewrite::encapsulate(&mut t, a(HA), a(COA), 64).unwrap();
        let v = incoming(&mut mn, &mut cn, &t, now, &mut |_| {});
        assert_eq!(v, InVerdict::Repeat(udp(CN, HOA)));
        let mut forged = udp(CN, HOA);
        rewrite::encapsulate(&mut forged, a(CN), a(COA), 64).unwrap();
        assert_eq!(
            incoming(&mut mn, &mut cn, &forged, now, &mut |_| {}),
            InVerdict::Drop
        );
        let mut other = udp(CN, "2001:db8:1::99");
        rewrite::encapsulate(&mut other, a(HA), a(COA), 64).unwrap();
        assert_eq!(
            incoming(&mut mn, &mut cn, &other, now, &mut |_| {}),
            InVerdict::Drop
        );
        // A Binding Refresh Request inside the tunnel goes to the machine.
        let brr = MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![],
        };
        let mut t = PacketBuilder::new(a(HA), a(HOA)).build(Payload::Mobility(&brr));
        rewrite::encapsulate(&mut t, a(HA), a(COA), 64).unwrap();
        let mut types = vec![];
        let v = incoming(&mut mn, &mut cn, &t, now, &mut |x| types.push(x));
        assert_eq!((v, types), (InVerdict::Consumed, vec![0]));
        // The refresh goes out at once.
        assert!(!sends(&mut mn).is_empty());
    }

    #[test]
    fn type2_routing_only_for_our_home_address_at_our_care_of_address() {
        let now = Instant::now();
        let (mut mn, mut cn) = machines(now);
        let rh2 = |home: &str, to: &str| {
            let mut b = PacketBuilder::new(a(CN), a(to));
            b.type2_routing = Some(a(home));
            b.build(Payload::Udp {
                src_port: 1,
                dst_port: 2,
                data: b"x",
            })
        };
        let InVerdict::Accept(Some(p)) =
            incoming(&mut mn, &mut cn, &rh2(HOA, COA), now, &mut |_| {})
        else {
            panic!("not accepted")
        };
        assert_eq!(Ipv6Header::parse(&p).unwrap().dst, a(HOA));
        for (home, to) in [("2001:db8:1::99", COA), (HOA, "2001:db8:42::100")] {
            assert_eq!(
                incoming(&mut mn, &mut cn, &rh2(home, to), now, &mut |_| {}),
                InVerdict::Drop
            );
        }
        // A HoTI is the correspondent node's.
        let hoti = PacketBuilder::new(a(CN), a(COA)).build(Payload::Mobility(&MhRepr {
            message: Message::HomeTestInit { cookie: [1; 8] },
            options: vec![],
        }));
        let mut types = vec![];
        assert_eq!(
            incoming(&mut mn, &mut cn, &hoti, now, &mut |t| types.push(t)),
            InVerdict::Consumed
        );
        assert_eq!(types, vec![1]);
        assert!(std::iter::from_fn(|| cn.poll_action()).any(|x| matches!(x, Action::Send(_))));
        // Garbage never panics.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..160 {
            let junk: Vec<u8> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if i == 0 {
                        0x60
                    } else {
                        seed as u8
                    }
                })
                .collect();
            let _ = incoming(&mut mn, &mut cn, &junk, now, &mut |_| {});
        }
    }

    #[test]
    fn the_home_test_init_leaves_through_the_tunnel() {
        let t = Transmit {
            src: a(HOA),
            dst: a(CN),
            rh2: None,
            repr: MhRepr {
                message: Message::HomeTestInit { cookie: [7; 8] },
                options: vec![],
            },
            bytes: {
                let r = MhRepr {
                    message: Message::HomeTestInit { cookie: [7; 8] },
                    options: vec![],
                };
                let mut b = vec![0; r.buffer_len()];
                r.emit(&mut b, &a(HOA), &a(CN));
                b
            },
            hao: None,
            tunnel: Some((a(COA), a(HA))),
        };
        let (pkt, to) = build_packet(&t).unwrap();
        assert_eq!(to, a(HA));
        let p = packet::parse(&pkt).unwrap();
        let Header::Tunnel(inner) = &p.headers[0] else {
            panic!("{p:?}")
        };
        assert_eq!((inner.ip.src, inner.ip.dst), (a(HOA), a(CN)));
        assert!(
            inner.error.is_none() && inner.mobility().is_some(),
            "{inner:?}"
        );
    }

    #[test]
    fn rules_and_policies() {
        let r = receive_rules(6275);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].describe(),
            "ip6tables -t raw -A PREROUTING -p 41 -m addrtype --dst-type LOCAL -j NFQUEUE --queue-num 6275"
        );
        assert_eq!(
            output_rule(a(HOA), 6276).describe(),
            "ip6tables -t raw -A OUTPUT -s 2001:db8:1::100/128 ! -p 135 -j NFQUEUE --queue-num 6276"
        );
        let p = [
            RoPolicy {
                correspondent: Some(a(CN)),
                enabled: false,
            },
            RoPolicy {
                correspondent: None,
                enabled: true,
            },
        ];
        assert!(!ro_wanted(&p, true, &a(CN)));
        assert!(ro_wanted(&p, false, &a("2001:db8::5")));
        assert!(!ro_wanted(&[], false, &a(CN)));
    }
}
