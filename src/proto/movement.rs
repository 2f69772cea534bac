//! Movement detection for the mobile node (RFC 6275 §11.5), sans-IO.
//!
//! The kernel does the addressing: it runs SLAAC from the Router Advertisements it hears
//! (`accept_ra`, `autoconf`), its DAD, and the lifetimes of what it configured; the
//! daemon only watches the result over rtnetlink (link and address events) and turns it
//! into [`Movement`]s for [`crate::proto::mn::Mn`]. Why not our own RA processing, as
//! umip does: the kernel already does everything right that a mobile host needs from
//! RAs (prefix lifetimes, DAD, default routers), and what it concludes reaches us as
//! events at once; a second RA parser would only be a second opinion that can disagree.
//! What we lose is umip's faster movement hints (RA interval, NUD on the old router);
//! link-down is the hint the testbed and most real handovers give.
//!
//! For each interface the mobile node may use — the `Interface` statements (with their
//! `MnIfPreference`; preference 0 means never), plus the home link's interface — the
//! detector keeps what the kernel reported and decides one of:
//!
//! - **down**: not up or no carrier;
//! - **home**: up, with a usable address inside the home prefix (the home link's routers
//!   advertise it, or the home address itself is there);
//! - **away**: up, with a usable global address outside the home prefix: the care-of
//!   address (the one already in use while it stays; otherwise the lowest);
//! - **no address**: up, nothing usable yet (DAD running, no RA heard).
//!
//! "Usable" excludes tentative, DAD-failed and deprecated addresses, link-local ones, and
//! the home address itself when it sits outside the home prefix's length (the daemon's
//! own /128 on `lo`). Each change of that verdict is reported as [`Movement`]s; `down`
//! and `no address` both make the interface unusable (CoaDown + LinkDown), so the
//! machine never keeps a stale care-of address.

use crate::proto::event::Movement;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

/// Interfaces never considered when no `Interface` statement names any.
const ALWAYS_IGNORED: &[&str] = &["lo"];

/// What movement detection needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovementConfig {
    /// (name, `MnIfPreference`) of the interfaces to use; empty means every interface
    /// but `lo`, at the default preference.
    pub interfaces: Vec<(String, u8)>,
    /// The home link's interface (`MnHomeLink "name"`), always watched.
    pub home_interface: Option<String>,
    pub home_address: Ipv6Addr,
    pub home_prefix: (Ipv6Addr, u8),
}

/// The default `MnIfPreference`.
pub const DEFAULT_PREFERENCE: u8 = 10;

/// What the kernel told us, in the detector's terms (the platform converts rtnetlink
/// messages into these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A link exists (new or changed); `up` is administratively up with carrier.
    Link {
        index: u32,
        name: String,
        up: bool,
    },
    LinkGone {
        index: u32,
    },
    /// An IPv6 address exists (new or changed); `usable` as described in the module
    /// documentation (not tentative, DAD-failed or deprecated).
    Address {
        index: u32,
        addr: Ipv6Addr,
        prefix_len: u8,
        usable: bool,
    },
    AddressGone {
        index: u32,
        addr: Ipv6Addr,
    },
}

/// The verdict for one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    Down,
    NoAddress,
    Home,
    Away(Ipv6Addr),
}

#[derive(Clone, Debug, Default)]
struct LinkInfo {
    name: Option<String>,
    up: bool,
    /// address → (prefix length, usable)
    addrs: BTreeMap<Ipv6Addr, (u8, bool)>,
}

/// The detector: feed it [`Observation`]s, get [`Movement`]s.
#[derive(Clone, Debug)]
pub struct Detector {
    config: MovementConfig,
    links: BTreeMap<u32, LinkInfo>,
    reported: BTreeMap<u32, Attachment>,
}

/// Whether `a` is inside `prefix/len`.
pub fn in_prefix(a: &Ipv6Addr, prefix: &Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    (u128::from(*a) & mask) == (u128::from(*prefix) & mask)
}

impl Detector {
    pub fn new(config: MovementConfig) -> Detector {
        Detector {
            config,
            links: BTreeMap::new(),
            reported: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &MovementConfig {
        &self.config
    }

    /// The preference of interface `name`, or `None` if the mobile node must not use it.
    pub fn preference(&self, name: &str) -> Option<u8> {
        if let Some((_, p)) = self.config.interfaces.iter().find(|(n, _)| n == name) {
            return (*p != 0).then_some(*p);
        }
        if self.config.home_interface.as_deref() == Some(name) {
            return Some(DEFAULT_PREFERENCE);
        }
        (self.config.interfaces.is_empty() && !ALWAYS_IGNORED.contains(&name))
            .then_some(DEFAULT_PREFERENCE)
    }

    /// The current verdict for each watched interface index.
    pub fn attachments(&self) -> &BTreeMap<u32, Attachment> {
        &self.reported
    }

    /// The name the kernel gave interface `index`, if known.
    pub fn name(&self, index: u32) -> Option<&str> {
        self.links.get(&index).and_then(|l| l.name.as_deref())
    }

    /// Takes one observation; returns the movements it implies (often none).
    pub fn observe(&mut self, o: Observation) -> Vec<Movement> {
        let index = match o {
            Observation::Link { index, name, up } => {
                let l = self.links.entry(index).or_default();
                l.name = Some(name);
                l.up = up;
                index
            }
            Observation::LinkGone { index } => {
                self.links.remove(&index);
                index
            }
            Observation::Address {
                index,
                addr,
                prefix_len,
                usable,
            } => {
                self.links
                    .entry(index)
                    .or_default()
                    .addrs
                    .insert(addr, (prefix_len, usable));
                index
            }
            Observation::AddressGone { index, addr } => {
                if let Some(l) = self.links.get_mut(&index) {
                    l.addrs.remove(&addr);
                }
                index
            }
        };
        self.reevaluate(index)
    }

    fn verdict(&self, index: u32) -> Option<(Attachment, u8)> {
        let l = self.links.get(&index)?;
        let pref = self.preference(l.name.as_deref()?)?;
        if !l.up {
            return Some((Attachment::Down, pref));
        }
        let (hp, hlen) = self.config.home_prefix;
        let usable = l.addrs.iter().filter(|(a, (len, ok))| {
            *ok && crate::proto::event::is_unicast_routable(a)
                // Our own /128 (on lo, or anywhere) says nothing about where we are.
                && !(**a == self.config.home_address && *len != hlen)
        });
        let mut home = false;
        let mut foreign = Vec::new();
        for (a, _) in usable {
            if in_prefix(a, &hp, hlen) {
                home = true;
            } else {
                foreign.push(*a);
            }
        }
        let v = if home {
            Attachment::Home
        } else if let Some(Attachment::Away(c)) = self.reported.get(&index) {
            if foreign.contains(c) {
                Attachment::Away(*c)
            } else {
                foreign
                    .first()
                    .map_or(Attachment::NoAddress, |c| Attachment::Away(*c))
            }
        } else {
            foreign
                .first()
                .map_or(Attachment::NoAddress, |c| Attachment::Away(*c))
        };
        Some((v, pref))
    }

    fn reevaluate(&mut self, index: u32) -> Vec<Movement> {
        let (now, pref) = self
            .verdict(index)
            .map_or((Attachment::Down, DEFAULT_PREFERENCE), |(v, p)| (v, p));
        let before = self.reported.get(&index).copied();
        if before == Some(now) || (before.is_none() && now == Attachment::Down) {
            return Vec::new();
        }
        if self.verdict(index).is_none() {
            // Gone, or not an interface of ours: forget it after saying it is unusable.
            self.reported.remove(&index);
        } else {
            self.reported.insert(index, now);
        }
        match now {
            Attachment::Home => vec![Movement::AtHome {
                iface: index,
                preference: pref,
            }],
            Attachment::Away(coa) => vec![Movement::CoaUp {
                iface: index,
                coa,
                preference: pref,
            }],
            Attachment::Down | Attachment::NoAddress => vec![
                Movement::CoaDown { iface: index },
                Movement::LinkDown { iface: index },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn detector(ifaces: &[(&str, u8)]) -> Detector {
        Detector::new(MovementConfig {
            interfaces: ifaces.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            home_interface: Some("home1".into()),
            home_address: a("2001:db8:1::100"),
            home_prefix: (a("2001:db8:1::"), 64),
        })
    }

    fn link(index: u32, name: &str, up: bool) -> Observation {
        Observation::Link {
            index,
            name: name.into(),
            up,
        }
    }

    fn addr(index: u32, s: &str, usable: bool) -> Observation {
        Observation::Address {
            index,
            addr: a(s),
            prefix_len: 64,
            usable,
        }
    }

    #[test]
    fn a_foreign_address_is_a_care_of_address_and_home_prefix_means_home() {
        let mut d = detector(&[("foreign1", 1), ("foreign2", 2)]);
        assert_eq!(
            d.observe(link(3, "foreign1", true)),
            vec![
                Movement::CoaDown { iface: 3 },
                Movement::LinkDown { iface: 3 }
            ]
        );
        // Tentative: nothing yet; link-local: never.
        assert!(d.observe(addr(3, "2001:db8:41::100", false)).is_empty());
        assert!(d.observe(addr(3, "fe80::1", true)).is_empty());
        assert_eq!(
            d.observe(addr(3, "2001:db8:41::100", true)),
            vec![Movement::CoaUp {
                iface: 3,
                coa: a("2001:db8:41::100"),
                preference: 1
            }]
        );
        // A second address does not move us; losing the one in use does.
        assert!(d.observe(addr(3, "2001:db8:41::7", true)).is_empty());
        assert_eq!(
            d.observe(Observation::AddressGone {
                index: 3,
                addr: a("2001:db8:41::100")
            }),
            vec![Movement::CoaUp {
                iface: 3,
                coa: a("2001:db8:41::7"),
                preference: 1
            }]
        );
        // The home link (not in the Interface list, but the MnHomeLink's).
        d.observe(link(2, "home1", true));
        assert_eq!(
            d.observe(addr(2, "2001:db8:1::5", true)),
            vec![Movement::AtHome {
                iface: 2,
                preference: DEFAULT_PREFERENCE
            }]
        );
        // Carrier lost: unusable.
        assert_eq!(
            d.observe(link(3, "foreign1", false)),
            vec![
                Movement::CoaDown { iface: 3 },
                Movement::LinkDown { iface: 3 }
            ]
        );
        assert_eq!(d.attachments().get(&3), Some(&Attachment::Down));
        assert_eq!(d.attachments().get(&2), Some(&Attachment::Home));
    }

    #[test]
    fn own_home_address_on_lo_and_unlisted_interfaces_are_ignored() {
        let mut d = detector(&[("foreign1", 1), ("wlan0", 0)]);
        d.observe(link(1, "lo", true));
        assert!(d
            .observe(Observation::Address {
                index: 1,
                addr: a("2001:db8:1::100"),
                prefix_len: 128,
                usable: true
            })
            .is_empty());
        d.observe(link(5, "eth9", true));
        assert!(d.observe(addr(5, "2001:db8:99::1", true)).is_empty());
        // Preference 0: never used.
        d.observe(link(6, "wlan0", true));
        assert!(d.observe(addr(6, "2001:db8:98::1", true)).is_empty());
        assert!(d.attachments().is_empty());
        // With no Interface statement, every interface but lo counts.
        let mut all = detector(&[]);
        all.observe(link(5, "eth9", true));
        assert_eq!(
            all.observe(addr(5, "2001:db8:99::1", true)),
            vec![Movement::CoaUp {
                iface: 5,
                coa: a("2001:db8:99::1"),
                preference: DEFAULT_PREFERENCE
            }]
        );
    }

    #[test]
    fn a_vanished_link_is_reported_unusable_and_forgotten() {
        let mut d = detector(&[("foreign2", 2)]);
        d.observe(link(4, "foreign2", true));
        d.observe(addr(4, "2001:db8:42::100", true));
        assert_eq!(
            d.observe(Observation::LinkGone { index: 4 }),
            vec![
                Movement::CoaDown { iface: 4 },
                Movement::LinkDown { iface: 4 }
            ]
        );
        assert!(d.attachments().is_empty());
        // Events for an interface seen only through its addresses wait for its name.
        assert!(d.observe(addr(9, "2001:db8:43::1", true)).is_empty());
    }

    #[test]
    fn prefix_match() {
        assert!(in_prefix(&a("2001:db8:1::100"), &a("2001:db8:1::"), 64));
        assert!(!in_prefix(&a("2001:db8:2::100"), &a("2001:db8:1::"), 64));
        assert!(in_prefix(&a("::1"), &a("2001:db8::"), 0));
        assert!(in_prefix(&a("2001:db8::1"), &a("2001:db8::1"), 200));
    }
}
