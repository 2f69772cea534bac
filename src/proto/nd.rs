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

/// The home agent's Neighbour Discovery on one home link: the DAD runs of pending
/// registrations (a home address and, with the L bit, a link-local address per run) and
/// the unsolicited advertisements it repeats ([`MAX_NEIGHBOR_ADVERTISEMENT`] times,
/// [`RETRANS_TIMER`] apart, RFC 4861 §7.2.6) when it starts defending an address.
#[derive(Debug, Default)]
pub struct HomeLinkNd {
    /// Home address → the runs for it; the result is reported when all have ended.
    runs: Vec<(Ipv6Addr, Vec<Dad>)>,
    /// (when, message, copies still to send after this one).
    adverts: Vec<(Instant, NdSend, usize)>,
    outbox: Vec<NdSend>,
    results: Vec<(Ipv6Addr, bool)>,
}

impl HomeLinkNd {
    pub fn new() -> HomeLinkNd {
        HomeLinkNd::default()
    }

    /// Starts DAD for `hoa` (and `link_local`); a run already going for `hoa` is kept.
    pub fn start_dad(&mut self, hoa: Ipv6Addr, link_local: Option<Ipv6Addr>, now: Instant) {
        if self.runs.iter().any(|(h, _)| *h == hoa) {
            return;
        }
        let mut dads = Vec::new();
        for target in std::iter::once(hoa).chain(link_local) {
            let (d, probe) = Dad::start(target, now);
            self.outbox.push(probe);
            dads.push(d);
        }
        self.runs.push((hoa, dads));
    }

    /// Starts advertising `target` as ours (proxy): one advertisement now, the others
    /// from [`Self::handle_timeout`]. Replaces a series already running for `target`.
    pub fn advertise(
        &mut self,
        src: Ipv6Addr,
        target: Ipv6Addr,
        lladdr: &[u8],
        router: bool,
        now: Instant,
    ) {
        self.adverts.retain(|(_, m, _)| !is_advert_for(m, target));
        let na = proxy_advertisement(src, target, lladdr, router);
        self.outbox.push(na.clone());
        if MAX_NEIGHBOR_ADVERTISEMENT > 1 {
            self.adverts
                .push((now + RETRANS_TIMER, na, MAX_NEIGHBOR_ADVERTISEMENT - 2));
        }
    }

    /// Stops advertising `target` (the registration went away).
    pub fn stop_advertising(&mut self, target: Ipv6Addr) {
        self.adverts.retain(|(_, m, _)| !is_advert_for(m, target));
    }

    /// A Neighbour Discovery message heard on the home link (never our own: the platform
    /// keeps its multicast from looping back).
    pub fn on_message(&mut self, src: Ipv6Addr, message: &Icmpv6Repr) {
        for (_, dads) in &mut self.runs {
            for d in dads.iter_mut() {
                d.on_message(src, message, false);
            }
        }
        self.collect();
    }

    fn collect(&mut self) {
        let mut i = 0;
        while i < self.runs.len() {
            let dads = &self.runs[i].1;
            let dup = dads
                .iter()
                .any(|d| d.outcome() == Some(DadOutcome::Duplicate));
            let done = dads.iter().all(|d| d.outcome().is_some());
            if dup || done {
                let (hoa, _) = self.runs.remove(i);
                self.results.push((hoa, !dup));
            } else {
                i += 1;
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let dad = self
            .runs
            .iter()
            .flat_map(|(_, d)| d.iter().filter_map(Dad::poll_timeout));
        dad.chain(self.adverts.iter().map(|(t, _, _)| *t)).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for (_, dads) in &mut self.runs {
            for d in dads.iter_mut() {
                d.handle_timeout(now);
            }
        }
        self.collect();
        let mut keep = Vec::with_capacity(self.adverts.len());
        for (t, na, left) in std::mem::take(&mut self.adverts) {
            if t > now {
                keep.push((t, na, left));
                continue;
            }
            self.outbox.push(na.clone());
            if left > 0 {
                keep.push((now + RETRANS_TIMER, na, left - 1));
            }
        }
        self.adverts = keep;
    }

    pub fn poll_transmit(&mut self) -> Option<NdSend> {
        (!self.outbox.is_empty()).then(|| self.outbox.remove(0))
    }

    /// A finished DAD run: (home address, unique).
    pub fn poll_result(&mut self) -> Option<(Ipv6Addr, bool)> {
        (!self.results.is_empty()).then(|| self.results.remove(0))
    }
}

fn is_advert_for(m: &NdSend, t: Ipv6Addr) -> bool {
    matches!(m.message, Icmpv6Repr::NeighborAdvertisement { target, .. } if target == t)
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

    #[test]
    fn home_link_runs_dad_for_both_addresses_and_repeats_advertisements() {
        let t0 = Instant::now();
        let (hoa, ll) = (a("2001:db8:1::100"), a("fe80::100"));
        let mut nd = HomeLinkNd::new();
        nd.start_dad(hoa, Some(ll), t0);
        nd.start_dad(hoa, Some(ll), t0);
        let probes: Vec<_> = std::iter::from_fn(|| nd.poll_transmit()).collect();
        assert_eq!(
            probes,
            vec![dad_probe(hoa), dad_probe(ll)],
            "one run per address"
        );
        nd.handle_timeout(t0 + RETRANS_TIMER / 2);
        assert_eq!(nd.poll_result(), None);
        // The link-local address is taken: the whole registration fails at once.
        let owner = a("fe80::9");
        nd.on_message(
            owner,
            &proxy_advertisement(owner, ll, &[2; 6], false).message,
        );
        assert_eq!(nd.poll_result(), Some((hoa, false)));
        assert_eq!(nd.poll_timeout(), None);
        // A second run, nobody answers: unique after the timer.
        nd.start_dad(hoa, None, t0);
        nd.handle_timeout(t0 + RETRANS_TIMER);
        assert_eq!(nd.poll_result(), Some((hoa, true)));

        let mut nd = HomeLinkNd::new();
        nd.advertise(a("fe80::1"), hoa, &[2, 0, 0, 0, 0, 1], false, t0);
        let mut sent = vec![];
        let mut now = t0;
        loop {
            while let Some(m) = nd.poll_transmit() {
                sent.push((now - t0, m));
            }
            let Some(t) = nd.poll_timeout() else { break };
            now = t;
            nd.handle_timeout(now);
        }
        assert_eq!(sent.len(), MAX_NEIGHBOR_ADVERTISEMENT);
        assert_eq!(sent[2].0, 2 * RETRANS_TIMER);
        assert!(sent.iter().all(|(_, m)| matches!(m.message, Icmpv6Repr::NeighborAdvertisement { o: true, target, .. } if target == hoa)));
        nd.advertise(a("fe80::1"), hoa, &[2; 6], false, t0);
        nd.stop_advertising(hoa);
        assert_eq!(nd.poll_timeout(), None);
    }
}
