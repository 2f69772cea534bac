//! Finding home agents and home prefixes, sans-IO: the home agent's Home Agents List
//! (RFC 6275 §10.5.1), its answers to Dynamic Home Agent Address Discovery (DHAAD, §10.5)
//! and Mobile Prefix Solicitations (§10.6), and the mobile node's DHAAD procedure
//! (§11.4.1) that feeds [`crate::proto::mn::Mn::set_home_agents`].
//!
//! # Choices where the RFC leaves room (and why)
//! - **One address per home agent** in a DHAAD reply: the first global address the
//!   agent advertised (Prefix Information with the R bit). A mobile node registers with
//!   one address per agent; listing more would only shorten the list that fits in 1280
//!   bytes.
//! - **Equal preferences** are ordered by a rotation that advances with every reply, so
//!   mobile nodes asking in turn spread over the agents (§10.5 asks for load sharing).
//! - **Lifetimes** come from the Home Agent Information option when present, else from
//!   the Router Lifetime (§10.5.1); a zero lifetime, or an advertisement without the H
//!   bit, removes the agent.

use crate::proto::backoff::Backoff;
use crate::wire::icmpv6::{Icmpv6Repr, NdOption};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// RFC 6275 §12 INITIAL_DHAAD_TIMEOUT.
pub const INITIAL_DHAAD_TIMEOUT: Duration = Duration::from_secs(3);
/// RFC 6275 §12 DHAAD_RETRIES: retransmissions after the first request.
pub const DHAAD_RETRIES: u32 = 4;
/// RFC 2526 §3: the Mobile IPv6 Home-Agents subnet anycast ID.
pub const HOME_AGENTS_ANYCAST_ID: u8 = 0x7e;
/// Addresses that fit in a DHAAD reply without exceeding the minimum IPv6 MTU
/// (§10.5: 1280 - 40 IPv6 - 8 ICMPv6 header, 16 bytes each).
pub const MAX_REPLY_ADDRESSES: usize = (1280 - 40 - 8) / 16;

/// The Mobile IPv6 Home-Agents anycast address of a subnet (RFC 2526 §2, RFC 6275
/// §10.5): the prefix with the interface identifier `fdff:ffff:ffff:fffe` for a 64-bit
/// identifier in EUI-64 format (universal/local bit clear), otherwise the highest
/// addresses of the subnet with the anycast ID in the low 7 bits. `None` for prefixes
/// longer than 121 bits, which have no room for reserved anycast addresses.
pub fn home_agents_anycast(prefix: Ipv6Addr, prefix_len: u8) -> Option<Ipv6Addr> {
    if prefix_len > 121 {
        return None;
    }
    let host_bits = 128 - u32::from(prefix_len);
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let net = u128::from(prefix) & !host_mask;
    let mut host = host_mask & !0x7f;
    if prefix_len == 64 {
        // EUI-64 format: the universal/local bit (bit 6 of the first identifier octet)
        // is zero in reserved anycast addresses.
        host &= !(0x0200u128 << 48);
    }
    Some(Ipv6Addr::from(
        net | host | u128::from(HOME_AGENTS_ANYCAST_ID),
    ))
}

/// One home agent on a home link, as its Router Advertisements describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeAgentEntry {
    /// The advertisement's source: the agent's link-local address, which identifies it.
    pub link_local: Ipv6Addr,
    /// Global addresses from Prefix Information options with the R bit, in order seen.
    pub global: Vec<Ipv6Addr>,
    pub preference: i16,
    /// `None` for the home agent's own entry, which lives as long as its configuration.
    pub expires: Option<Instant>,
}

/// The Home Agents List of one home link (RFC 6275 §10.5.1).
#[derive(Clone, Debug, Default)]
pub struct HomeAgentsList {
    entries: Vec<HomeAgentEntry>,
    rotation: usize,
}

impl HomeAgentsList {
    pub fn new() -> HomeAgentsList {
        HomeAgentsList::default()
    }

    /// Takes in a Router Advertisement received on the home link from `src` (§10.5.1).
    /// Anything that is not a Router Advertisement is ignored.
    pub fn on_router_advertisement(&mut self, src: Ipv6Addr, ra: &Icmpv6Repr, now: Instant) {
        let Icmpv6Repr::RouterAdvertisement {
            h,
            router_lifetime,
            options,
            ..
        } = ra
        else {
            return;
        };
        if !h {
            self.remove(&src);
            return;
        }
        let info = options.iter().find_map(|o| match o {
            NdOption::HomeAgentInfo {
                preference,
                lifetime,
            } => Some((*preference, *lifetime)),
            _ => None,
        });
        let (preference, lifetime) = info.unwrap_or((0, *router_lifetime));
        if lifetime == 0 {
            self.remove(&src);
            return;
        }
        let advertised: Vec<Ipv6Addr> = options
            .iter()
            .filter_map(|o| match o {
                NdOption::PrefixInformation {
                    r: true, prefix, ..
                } if is_global(prefix) => Some(*prefix),
                _ => None,
            })
            .collect();
        let expires = Some(now + Duration::from_secs(u64::from(lifetime)));
        match self.entries.iter_mut().find(|e| e.link_local == src) {
            Some(e) => {
                for a in advertised {
                    if !e.global.contains(&a) {
                        e.global.push(a);
                    }
                }
                e.preference = preference;
                e.expires = expires;
            }
            None => self.entries.push(HomeAgentEntry {
                link_local: src,
                global: advertised,
                preference,
                expires,
            }),
        }
    }

    /// Adds or replaces the home agent's own entry, which never expires (its own
    /// advertisements do not come back to it).
    pub fn set_local(&mut self, link_local: Ipv6Addr, global: Ipv6Addr, preference: i16) {
        self.entries.retain(|e| e.link_local != link_local);
        self.entries.push(HomeAgentEntry {
            link_local,
            global: vec![global],
            preference,
            expires: None,
        });
    }

    fn remove(&mut self, link_local: &Ipv6Addr) {
        self.entries.retain(|e| e.link_local != *link_local);
    }

    /// Drops expired entries.
    pub fn expire(&mut self, now: Instant) {
        self.entries.retain(|e| e.expires.map_or(true, |t| t > now));
    }

    /// When the next entry expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.expires).min()
    }

    pub fn entries(&self) -> &[HomeAgentEntry] {
        &self.entries
    }

    /// One global address per live agent with one, by preference (highest first), equal
    /// preferences rotated by `rotation`; at most [`MAX_REPLY_ADDRESSES`].
    pub fn ordered(&self, now: Instant, rotation: usize) -> Vec<Ipv6Addr> {
        let mut live: Vec<(i16, Ipv6Addr)> = self
            .entries
            .iter()
            .filter(|e| e.expires.map_or(true, |t| t > now))
            .filter_map(|e| e.global.first().map(|g| (e.preference, *g)))
            .collect();
        live.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out = Vec::with_capacity(live.len());
        let mut i = 0;
        while i < live.len() {
            let j = live[i..]
                .iter()
                .position(|(p, _)| *p != live[i].0)
                .map_or(live.len(), |k| i + k);
            let group = &live[i..j];
            let shift = rotation % group.len();
            out.extend(
                group[shift..]
                    .iter()
                    .chain(&group[..shift])
                    .map(|(_, a)| *a),
            );
            i = j;
        }
        out.truncate(MAX_REPLY_ADDRESSES);
        out
    }

    /// The home agent's answer to a DHAAD request (§10.5); `None` for anything else, or
    /// when no agent is known (there is nothing useful to say).
    pub fn dhaad_reply(&mut self, request: &Icmpv6Repr, now: Instant) -> Option<Icmpv6Repr> {
        let Icmpv6Repr::HaadRequest { identifier, r } = request else {
            return None;
        };
        let home_agents = self.ordered(now, self.rotation);
        if home_agents.is_empty() {
            return None;
        }
        self.rotation = self.rotation.wrapping_add(1);
        Some(Icmpv6Repr::HaadReply {
            identifier: *identifier,
            r: *r,
            home_agents,
        })
    }
}

fn is_global(a: &Ipv6Addr) -> bool {
    crate::proto::event::is_unicast_routable(a)
}

/// A home prefix as the home agent advertises it to mobile nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertisedPrefix {
    pub prefix: Ipv6Addr,
    pub len: u8,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
}

/// The home agent's answer to a Mobile Prefix Solicitation (§10.6.1): the home prefixes
/// as Prefix Information options with the same identifier. `None` for anything else.
pub fn mobile_prefix_advertisement(
    solicitation: &Icmpv6Repr,
    prefixes: &[AdvertisedPrefix],
) -> Option<Icmpv6Repr> {
    let Icmpv6Repr::MobilePrefixSolicitation { identifier } = solicitation else {
        return None;
    };
    Some(Icmpv6Repr::MobilePrefixAdvertisement {
        identifier: *identifier,
        m: false,
        o: false,
        options: prefixes
            .iter()
            .map(|p| NdOption::PrefixInformation {
                prefix_len: p.len,
                l: true,
                a: true,
                r: false,
                valid_lifetime: p.valid_lifetime,
                preferred_lifetime: p.preferred_lifetime,
                prefix: p.prefix,
            })
            .collect(),
    })
}

/// An ICMPv6 message for the mobile node's platform to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhaadSend {
    /// The care-of address (§11.4.1: the request is sent from it).
    pub src: Ipv6Addr,
    /// The home subnet's Home-Agents anycast address.
    pub dst: Ipv6Addr,
    pub request: Icmpv6Repr,
}

/// What the mobile node's DHAAD procedure concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhaadOutcome {
    /// Home agents, most preferred first: hand them to `Mn::set_home_agents`.
    Found(Vec<Ipv6Addr>),
    /// No reply after [`DHAAD_RETRIES`] retransmissions.
    GaveUp,
}

/// The mobile node's Dynamic Home Agent Address Discovery (§11.4.1): a request to the
/// anycast address, retransmitted with exponential back-off, answered by the first reply
/// carrying its identifier.
#[derive(Clone, Debug)]
pub struct DhaadClient {
    anycast: Ipv6Addr,
    coa: Ipv6Addr,
    identifier: u16,
    backoff: Backoff,
    outbox: Vec<DhaadSend>,
    outcome: Option<DhaadOutcome>,
}

impl DhaadClient {
    /// Starts discovery for the home prefix from `coa`; `identifier` should be random
    /// (the caller's random source), so that stale replies do not match. `None` when the
    /// prefix has no anycast address (longer than /121).
    pub fn start(
        home_prefix: Ipv6Addr,
        prefix_len: u8,
        coa: Ipv6Addr,
        identifier: u16,
        now: Instant,
    ) -> Option<DhaadClient> {
        let anycast = home_agents_anycast(home_prefix, prefix_len)?;
        let mut c = DhaadClient {
            anycast,
            coa,
            identifier,
            backoff: Backoff::new(INITIAL_DHAAD_TIMEOUT, Duration::from_secs(3600)),
            outbox: Vec::new(),
            outcome: None,
        };
        c.send(now);
        Some(c)
    }

    fn send(&mut self, now: Instant) {
        self.backoff.on_send(now);
        self.outbox.push(DhaadSend {
            src: self.coa,
            dst: self.anycast,
            request: Icmpv6Repr::HaadRequest {
                identifier: self.identifier,
                r: false,
            },
        });
    }

    /// Moves to a new care-of address: later retransmissions leave from it.
    pub fn set_care_of(&mut self, coa: Ipv6Addr) {
        self.coa = coa;
    }

    /// A DHAAD reply arrived; ignored unless it carries our identifier and at least one
    /// usable address.
    pub fn on_reply(&mut self, reply: &Icmpv6Repr) {
        if self.outcome.is_some() {
            return;
        }
        let Icmpv6Repr::HaadReply {
            identifier,
            home_agents,
            ..
        } = reply
        else {
            return;
        };
        if *identifier != self.identifier {
            return;
        }
        let usable: Vec<Ipv6Addr> =
            home_agents
                .iter()
                .copied()
                .filter(is_global)
                .fold(Vec::new(), |mut v, a| {
                    if !v.contains(&a) {
                        v.push(a);
                    }
                    v
                });
        if !usable.is_empty() {
            self.backoff.reset();
            self.outcome = Some(DhaadOutcome::Found(usable));
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        self.backoff.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() || self.backoff.poll_timeout().map_or(true, |d| d > now) {
            return;
        }
        if self.backoff.attempts() > DHAAD_RETRIES {
            self.backoff.reset();
            self.outcome = Some(DhaadOutcome::GaveUp);
            return;
        }
        self.send(now);
    }

    pub fn poll_transmit(&mut self) -> Option<DhaadSend> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.remove(0))
        }
    }

    /// The conclusion, once there is one.
    pub fn outcome(&self) -> Option<&DhaadOutcome> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ra(h: bool, router_lifetime: u16, options: Vec<NdOption>) -> Icmpv6Repr {
        Icmpv6Repr::RouterAdvertisement {
            hop_limit: 64,
            m: false,
            o: false,
            h,
            prf: crate::wire::icmpv6::RouterPreference::Medium,
            router_lifetime,
            reachable_time: 0,
            retrans_timer: 0,
            options,
        }
    }

    fn router_addr(addr: &str) -> NdOption {
        NdOption::PrefixInformation {
            prefix_len: 64,
            l: true,
            a: true,
            r: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: a(addr),
        }
    }

    fn info(preference: i16, lifetime: u16) -> NdOption {
        NdOption::HomeAgentInfo {
            preference,
            lifetime,
        }
    }

    #[test]
    fn anycast_addresses() {
        // RFC 2526 §2, EUI-64 format: the u/l bit is clear, anycast ID 126 in the low bits.
        assert_eq!(
            home_agents_anycast(a("2001:db8:1::"), 64),
            Some(a("2001:db8:1:0:fdff:ffff:ffff:fffe"))
        );
        // Host bits of the given prefix are ignored.
        assert_eq!(
            home_agents_anycast(a("2001:db8:1::1234"), 64),
            Some(a("2001:db8:1:0:fdff:ffff:ffff:fffe"))
        );
        // Non-EUI-64 lengths: all ones except the anycast ID in the low 7 bits.
        assert_eq!(
            home_agents_anycast(a("2001:db8:1::"), 48),
            Some(a("2001:db8:1:ffff:ffff:ffff:ffff:fffe"))
        );
        assert_eq!(
            home_agents_anycast(a("2001:db8::100"), 120),
            Some(a("2001:db8::1fe"))
        );
        assert_eq!(
            home_agents_anycast(a("2001:db8::80"), 121),
            Some(a("2001:db8::fe"))
        );
        assert_eq!(home_agents_anycast(a("2001:db8::"), 122), None);
        assert_eq!(
            home_agents_anycast(a("::"), 0),
            Some(a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"))
        );
    }

    #[test]
    fn list_follows_advertisements() {
        let t0 = Instant::now();
        let mut l = HomeAgentsList::new();
        let ha1 = a("fe80::1");
        let ha2 = a("fe80::2");
        l.on_router_advertisement(ha1, &ra(true, 1800, vec![router_addr("2001:db8:1::1")]), t0);
        l.on_router_advertisement(
            ha2,
            &ra(true, 1800, vec![info(10, 60), router_addr("2001:db8:1::2")]),
            t0,
        );
        // Highest preference first.
        assert_eq!(
            l.ordered(t0, 0),
            vec![a("2001:db8:1::2"), a("2001:db8:1::1")]
        );
        // The HA Information lifetime wins over the Router Lifetime.
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        l.expire(t0 + Duration::from_secs(61));
        assert_eq!(l.ordered(t0, 0), vec![a("2001:db8:1::1")]);
        // No H bit: the router is no longer a home agent.
        l.on_router_advertisement(ha1, &ra(false, 1800, vec![]), t0);
        assert!(l.entries().is_empty());
        // Zero lifetime removes too; a router advertising no R-bit address is listed
        // but has nothing to offer in a reply.
        l.on_router_advertisement(ha1, &ra(true, 1800, vec![]), t0);
        assert_eq!(l.entries().len(), 1);
        assert!(l.ordered(t0, 0).is_empty());
        l.on_router_advertisement(ha1, &ra(true, 1800, vec![info(0, 0)]), t0);
        assert!(l.entries().is_empty());
        // Not an RA: ignored.
        l.on_router_advertisement(ha1, &Icmpv6Repr::RouterSolicitation { options: vec![] }, t0);
        assert!(l.entries().is_empty());
    }

    #[test]
    fn link_local_and_repeated_addresses_are_not_offered() {
        let t0 = Instant::now();
        let mut l = HomeAgentsList::new();
        l.on_router_advertisement(
            a("fe80::1"),
            &ra(
                true,
                100,
                vec![router_addr("fe80::1"), router_addr("2001:db8:1::1")],
            ),
            t0,
        );
        l.on_router_advertisement(
            a("fe80::1"),
            &ra(true, 100, vec![router_addr("2001:db8:1::1")]),
            t0,
        );
        assert_eq!(l.entries()[0].global, vec![a("2001:db8:1::1")]);
    }

    #[test]
    fn dhaad_reply_rotates_equal_preferences_and_fits_1280() {
        let t0 = Instant::now();
        let mut l = HomeAgentsList::new();
        l.set_local(a("fe80::ff"), a("2001:db8:1::ff"), 0);
        for i in 1..=100u16 {
            let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i);
            let g = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i);
            let pref = if i == 50 { 5 } else { 0 };
            l.on_router_advertisement(
                ll,
                &ra(
                    true,
                    100,
                    vec![info(pref, 100), router_addr(&g.to_string())],
                ),
                t0,
            );
        }
        let req = Icmpv6Repr::HaadRequest {
            identifier: 77,
            r: false,
        };
        let Some(Icmpv6Repr::HaadReply {
            identifier,
            home_agents: first,
            ..
        }) = l.dhaad_reply(&req, t0)
        else {
            panic!("no reply")
        };
        assert_eq!(identifier, 77);
        assert_eq!(first.len(), MAX_REPLY_ADDRESSES);
        assert_eq!(first[0], a("2001:db8:1::32"), "preference 5 leads");
        assert_eq!(
            l.ordered(t0 + Duration::from_secs(101), 0),
            vec![a("2001:db8:1::ff")],
            "the local entry stays"
        );
        let reply = Icmpv6Repr::HaadReply {
            identifier: 77,
            r: false,
            home_agents: first.clone(),
        };
        assert!(40 + reply.buffer_len() <= 1280);
        let Some(Icmpv6Repr::HaadReply {
            home_agents: second,
            ..
        }) = l.dhaad_reply(&req, t0)
        else {
            panic!("no reply")
        };
        assert_eq!(second[0], first[0], "the single best stays first");
        assert_ne!(second[1], first[1], "equal preferences rotate");
        // Other messages get no answer; nor does a request when no agent is known.
        assert_eq!(
            l.dhaad_reply(&Icmpv6Repr::RouterSolicitation { options: vec![] }, t0),
            None
        );
        assert_eq!(HomeAgentsList::new().dhaad_reply(&req, t0), None);
        l.expire(t0 + Duration::from_secs(101));
    }

    #[test]
    fn prefix_advertisement_answers_solicitation() {
        let p = AdvertisedPrefix {
            prefix: a("2001:db8:1::"),
            len: 64,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
        };
        let mpa = mobile_prefix_advertisement(
            &Icmpv6Repr::MobilePrefixSolicitation { identifier: 9 },
            &[p],
        )
        .unwrap();
        // Through the wire format and back, so the answer is something a peer can parse.
        let (src, dst) = (a("2001:db8:1::1"), a("2001:db8:41::100"));
        let parsed = Icmpv6Repr::parse_checked(&mpa.to_bytes(&src, &dst), &src, &dst).unwrap();
        assert_eq!(parsed, mpa);
        let Icmpv6Repr::MobilePrefixAdvertisement {
            identifier,
            options,
            ..
        } = parsed
        else {
            panic!()
        };
        assert_eq!(identifier, 9);
        assert!(matches!(
            options[0],
            NdOption::PrefixInformation {
                prefix_len: 64,
                valid_lifetime: 86400,
                ..
            }
        ));
        assert_eq!(
            mobile_prefix_advertisement(
                &Icmpv6Repr::HaadRequest {
                    identifier: 1,
                    r: false
                },
                &[p]
            ),
            None
        );
    }

    #[test]
    fn client_retransmits_then_gives_up() {
        let t0 = Instant::now();
        let coa = a("2001:db8:41::100");
        let mut c = DhaadClient::start(a("2001:db8:1::"), 64, coa, 4242, t0).unwrap();
        let first = c.poll_transmit().unwrap();
        assert_eq!(first.src, coa);
        assert_eq!(first.dst, a("2001:db8:1:0:fdff:ffff:ffff:fffe"));
        assert_eq!(
            first.request,
            Icmpv6Repr::HaadRequest {
                identifier: 4242,
                r: false
            }
        );
        let mut sent_at = vec![Duration::ZERO];
        let mut now = t0;
        while let Some(deadline) = c.poll_timeout() {
            now = deadline;
            c.handle_timeout(now);
            if c.poll_transmit().is_some() {
                sent_at.push(now - t0);
            }
        }
        let secs: Vec<u64> = sent_at.iter().map(|d| d.as_secs()).collect();
        // 3 s doubling (§11.4.1), DHAAD_RETRIES retransmissions, then give up.
        assert_eq!(secs, vec![0, 3, 9, 21, 45]);
        assert_eq!(c.outcome(), Some(&DhaadOutcome::GaveUp));
        assert_eq!(now - t0, Duration::from_secs(93));
    }

    #[test]
    fn client_takes_matching_reply_only() {
        let t0 = Instant::now();
        let mut c =
            DhaadClient::start(a("2001:db8:1::"), 64, a("2001:db8:41::100"), 7, t0).unwrap();
        c.on_reply(&Icmpv6Repr::HaadReply {
            identifier: 8,
            r: false,
            home_agents: vec![a("2001:db8:1::1")],
        });
        assert_eq!(c.outcome(), None, "wrong identifier");
        c.on_reply(&Icmpv6Repr::HaadReply {
            identifier: 7,
            r: false,
            home_agents: vec![a("fe80::1"), a("::")],
        });
        assert_eq!(c.outcome(), None, "nothing usable");
        assert_eq!(c.poll_transmit().unwrap().src, a("2001:db8:41::100"));
        c.handle_timeout(t0 + INITIAL_DHAAD_TIMEOUT / 2);
        assert_eq!(c.poll_transmit(), None, "not due yet");
        c.set_care_of(a("2001:db8:42::100"));
        c.handle_timeout(t0 + INITIAL_DHAAD_TIMEOUT);
        assert_eq!(c.poll_transmit().unwrap().src, a("2001:db8:42::100"));
        c.on_reply(&Icmpv6Repr::HaadReply {
            identifier: 7,
            r: false,
            home_agents: vec![a("2001:db8:1::2"), a("2001:db8:1::1"), a("2001:db8:1::2")],
        });
        assert_eq!(
            c.outcome(),
            Some(&DhaadOutcome::Found(vec![
                a("2001:db8:1::2"),
                a("2001:db8:1::1")
            ]))
        );
        assert_eq!(c.poll_timeout(), None);
    }
}
