//! Neighbour Discovery the home agent does on behalf of its mobile nodes (RFC 6275
//! §10.4.1), sans-IO: Duplicate Address Detection for a home address before the first
//! registration is accepted (§10.3.1, RFC 4862 §5.4), and the unsolicited Neighbor
//! Advertisements that move the home link's neighbour caches to the home agent.

use crate::wire::icmpv6::{Icmpv6Repr, NdOption};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// RFC 4861 §10 RETRANS_TIMER: how long DAD waits after its probe (DupAddrDetectTransmits
/// = 1, RFC 4862 §5.1).
pub const RETRANS_TIMER: Duration = Duration::from_secs(1);
/// RFC 4861 §10 MAX_NEIGHBOR_ADVERTISEMENT: unsolicited advertisements per change
/// (RFC 6275 §10.4.1 "MAY send ... up to MAX_NEIGHBOR_ADVERTISEMENT times").
pub const MAX_NEIGHBOR_ADVERTISEMENT: usize = 3;

/// The solicited-node multicast group of an address (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX
/// with the address's low 24 bits.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// An ICMPv6 Neighbour Discovery message to send on the home link (hop limit 255).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdSend {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub message: Icmpv6Repr,
}

/// The DAD probe for `target`: from the unspecified address to its solicited-node group
/// (RFC 4862 §5.4.2).
pub fn dad_probe(target: Ipv6Addr) -> NdSend {
    NdSend {
        src: Ipv6Addr::UNSPECIFIED,
        dst: solicited_node(target),
        message: Icmpv6Repr::NeighborSolicitation {
            target,
            options: vec![],
        },
    }
}

/// The home agent's unsolicited advertisement for a mobile node's address: to all
/// nodes, override set so caches switch to `lladdr` (the home agent's), router flag
/// clear (§10.4.1: the mobile node is a host unless it registered as a router).
pub fn proxy_advertisement(src: Ipv6Addr, target: Ipv6Addr, lladdr: &[u8], router: bool) -> NdSend {
    NdSend {
        src,
        dst: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        message: Icmpv6Repr::NeighborAdvertisement {
            r: router,
            s: false,
            o: true,
            target,
            options: vec![NdOption::TargetLinkLayer(lladdr.to_vec())],
        },
    }
}

/// How one DAD run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DadOutcome {
    /// Nobody claimed the address within [`RETRANS_TIMER`].
    Unique,
    /// Another node advertised it, or probed it at the same time (RFC 4862 §5.4.3/4).
    Duplicate,
}

/// One Duplicate Address Detection run for one address.
#[derive(Clone, Debug)]
pub struct Dad {
    target: Ipv6Addr,
    deadline: Instant,
    outcome: Option<DadOutcome>,
}

impl Dad {
    /// Starts DAD; send [`dad_probe`]`(target)` now.
    pub fn start(target: Ipv6Addr, now: Instant) -> (Dad, NdSend) {
        (
            Dad {
                target,
                deadline: now + RETRANS_TIMER,
                outcome: None,
            },
            dad_probe(target),
        )
    }

    pub fn target(&self) -> Ipv6Addr {
        self.target
    }

    /// Something arrived on the home link. `own` is true for our own transmissions looped
    /// back (multicast loops back to the sender), which must not count as a conflict.
    pub fn on_message(&mut self, src: Ipv6Addr, message: &Icmpv6Repr, own: bool) {
        if self.outcome.is_some() || own {
            return;
        }
        let duplicate = match message {
            Icmpv6Repr::NeighborAdvertisement { target, .. } => *target == self.target,
            // Another node probing the same tentative address at the same time.
            Icmpv6Repr::NeighborSolicitation { target, .. } => {
                *target == self.target && src.is_unspecified()
            }
            _ => false,
        };
        if duplicate {
            self.outcome = Some(DadOutcome::Duplicate);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_none() && now >= self.deadline {
            self.outcome = Some(DadOutcome::Unique);
        }
    }

    pub fn outcome(&self) -> Option<DadOutcome> {
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn solicited_node_groups() {
        assert_eq!(
            solicited_node(a("2001:db8:1::1234")),
            a("ff02::1:ff00:1234")
        );
        assert_eq!(
            solicited_node(a("fe80::211:22ff:fe33:4455")),
            a("ff02::1:ff33:4455")
        );
    }

    #[test]
    fn dad_is_unique_after_the_timer_unless_claimed() {
        let t0 = Instant::now();
        let hoa = a("2001:db8:1::100");
        let (mut d, probe) = Dad::start(hoa, t0);
        assert_eq!(probe.src, Ipv6Addr::UNSPECIFIED);
        assert_eq!(probe.dst, a("ff02::1:ff00:100"));
        // Our own probe looped back, and messages about other targets, change nothing.
        d.on_message(Ipv6Addr::UNSPECIFIED, &probe.message, true);
        d.on_message(
            a("fe80::9"),
            &proxy_advertisement(a("fe80::9"), a("2001:db8:1::101"), &[2; 6], false).message,
            false,
        );
        d.handle_timeout(t0 + RETRANS_TIMER / 2);
        assert_eq!(d.outcome(), None);
        assert_eq!(d.poll_timeout(), Some(t0 + RETRANS_TIMER));
        d.handle_timeout(t0 + RETRANS_TIMER);
        assert_eq!(d.outcome(), Some(DadOutcome::Unique));
        assert_eq!(d.poll_timeout(), None);

        let (mut d, _) = Dad::start(hoa, t0);
        d.on_message(
            a("fe80::9"),
            &proxy_advertisement(a("fe80::9"), hoa, &[2; 6], false).message,
            false,
        );
        d.handle_timeout(t0 + RETRANS_TIMER);
        assert_eq!(d.outcome(), Some(DadOutcome::Duplicate));

        let (mut d, probe) = Dad::start(hoa, t0);
        d.on_message(Ipv6Addr::UNSPECIFIED, &probe.message, false);
        assert_eq!(
            d.outcome(),
            Some(DadOutcome::Duplicate),
            "simultaneous probe"
        );
        // A solicitation from a configured address is address resolution, not DAD.
        let (mut d, probe) = Dad::start(hoa, t0);
        d.on_message(a("2001:db8:1::5"), &probe.message, false);
        assert_eq!(d.outcome(), None);
    }

    #[test]
    fn advertisement_overrides_caches() {
        let na = proxy_advertisement(
            a("fe80::1"),
            a("2001:db8:1::100"),
            &[2, 0, 0, 0, 0, 1],
            false,
        );
        assert_eq!(na.dst, a("ff02::1"));
        let bytes = na.message.to_bytes(&na.src, &na.dst);
        let back = Icmpv6Repr::parse_checked(&bytes, &na.src, &na.dst).unwrap();
        assert_eq!(back, na.message);
        assert!(matches!(
            back,
            Icmpv6Repr::NeighborAdvertisement {
                o: true,
                s: false,
                ..
            }
        ));
    }
}
