//! Events into and actions out of the protocol state machines.
//!
//! The event loop turns what it reads from sockets and the kernel into an [`Event`]
//! (correspondent node, home agent) or an [`MnEvent`] (mobile node), hands it to a
//! machine with the current time, then drains [`Action`]s and applies them (send a
//! packet, install a tunnel, start DAD, …). Nothing here does I/O.

use crate::crypto::rr::{self, Kbm};
use crate::wire::mh::{Message, MhRepr};
use crate::wire::mh_option::MobilityOption;
use std::net::Ipv6Addr;
use std::time::Duration;

/// A Mobility Header as received, with what the IPv6 layer around it said.
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'a> {
    /// IPv6 Source Address as it arrived: the care-of address when `hao` is present.
    pub src: Ipv6Addr,
    /// IPv6 Destination Address: one of our addresses.
    pub dst: Ipv6Addr,
    /// The address in the Home Address destination option, if the packet had one.
    pub hao: Option<Ipv6Addr>,
    /// The parsed header (`MhRepr::parse_checked` already passed).
    pub repr: &'a MhRepr,
    /// The whole Mobility Header as received, for `wire::mh::auth_data_region`.
    pub raw: &'a [u8],
}

/// Something that happened, for a state machine to react to.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A Mobility Header arrived for one of our addresses.
    Mh(Inbound<'a>),
    /// The platform dropped a packet to `local` carrying a Home Address option for which
    /// it has no binding (the kernel's XFRM REPORT in umip): answer with Binding Error
    /// status 1 (RFC 6275 §9.3.1).
    HaoWithoutBinding {
        local: Ipv6Addr,
        src_coa: Ipv6Addr,
        hoa: Ipv6Addr,
    },
    /// The platform saw traffic use the binding (local, hoa) — e.g. XFRM `lastused`
    /// moved, or the user-space data path translated a packet. The CN only sends a
    /// Binding Refresh Request for bindings used recently (RFC 6275 §9.5.5).
    BindingUsed { local: Ipv6Addr, hoa: Ipv6Addr },
    /// The result of an [`Action::StartDad`] (HA only): `ok` is false if any of the
    /// addresses probed turned out to be in use.
    DadResult { hoa: Ipv6Addr, ok: bool },
}

/// A Mobility Header to send, ready on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: Ipv6Addr,
    /// The IPv6 Destination Address (the care-of address when `rh2` is set).
    pub dst: Ipv6Addr,
    /// Add a Type 2 Routing Header carrying this home address (RFC 6275 §6.4; only ever
    /// on a Binding Acknowledgement, §6.1, §9.5.4).
    pub rh2: Option<Ipv6Addr>,
    /// What is in `bytes`, for logs and tests.
    pub repr: MhRepr,
    /// The Mobility Header with checksum (and authenticator, if any) filled in. The
    /// checksum pseudo-header uses the final destination (the home address under `rh2`)
    /// and the home address as source when `hao` is set.
    pub bytes: Vec<u8>,
    /// Mobile node only: add a Home Address destination option carrying this home
    /// address; `src` is then the care-of address (RFC 6275 §6.3, §11.3.1 — Binding
    /// Updates sent from a care-of address, §11.7.1, §11.7.2).
    pub hao: Option<Ipv6Addr>,
    /// Mobile node only: send the packet inside the ip6ip6 tunnel to the home agent,
    /// as (outer source = care-of address, outer destination = home agent) — the Home
    /// Test Init, which must leave from the home address (RFC 6275 §11.6.1, §5.2.5).
    pub tunnel: Option<(Ipv6Addr, Ipv6Addr)>,
}

/// Something for the platform to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Transmit),
    /// A binding was created or changed: install (or replace) the route optimisation
    /// state for it (CN: RH2 out, HAO in; HA: informational, the tunnel actions below do
    /// the work). `lifetime` is what was granted.
    BindingInstalled {
        local: Ipv6Addr,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        lifetime: Duration,
        home: bool,
    },
    /// A binding is gone (deregistration, expiry, or replaced by a tombstone).
    BindingRemoved {
        local: Ipv6Addr,
        hoa: Ipv6Addr,
        home: bool,
    },
    /// HA: run Duplicate Address Detection for the home address (and the link-local
    /// address when the L flag was set) on the home link, then report
    /// [`Event::DadResult`] (RFC 6275 §10.3.1).
    StartDad {
        hoa: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    /// HA: an ip6ip6 tunnel `local` ⇄ `remote` (the care-of address) is needed
    /// (RFC 6275 §10.4.1). The platform reference-counts tunnels per (local, remote).
    TunnelAdd {
        local: Ipv6Addr,
        remote: Ipv6Addr,
    },
    /// HA: one user of that tunnel is gone.
    TunnelDel {
        local: Ipv6Addr,
        remote: Ipv6Addr,
    },
    /// HA: host route to the home address through the tunnel to `remote`, replacing any
    /// previous one.
    RouteAdd {
        hoa: Ipv6Addr,
        tunnel_local: Ipv6Addr,
        tunnel_remote: Ipv6Addr,
    },
    RouteDel {
        hoa: Ipv6Addr,
    },
    /// HA: answer Neighbour Solicitations for `addr` on the home link and send the
    /// unsolicited Neighbor Advertisement (RFC 6275 §10.4.1); `router` for a mobile
    /// router (RFC 3963).
    ProxyNdAdd {
        addr: Ipv6Addr,
        router: bool,
    },
    ProxyNdDel {
        addr: Ipv6Addr,
    },
    /// MN: a Binding Update List entry (RFC 6275 §11.1) was created or changed: Binding
    /// Updates for `hoa` naming `coa` go to `peer` (the home agent when `home`). The
    /// platform lets them leave with a Home Address option and lets the answers in with
    /// a Type 2 Routing Header (umip's per-entry XFRM policies). `lifetime` is the one
    /// asked for (zero for a deregistration).
    BulUpdated {
        hoa: Ipv6Addr,
        peer: Ipv6Addr,
        coa: Ipv6Addr,
        lifetime: Duration,
        home: bool,
    },
    /// MN: the Binding Update List entry for `peer` is gone.
    BulRemoved {
        hoa: Ipv6Addr,
        peer: Ipv6Addr,
        home: bool,
    },
    /// MN: the home agent accepted the registration of `coa`: send and receive
    /// home-address traffic through the ip6ip6 tunnel `coa` ⇄ `ha` (RFC 6275 §11.3.1),
    /// replacing any previous tunnel.
    HomeTunnelSet {
        hoa: Ipv6Addr,
        ha: Ipv6Addr,
        coa: Ipv6Addr,
    },
    /// MN: no home registration any more (back home, expired, given up).
    HomeTunnelClear {
        hoa: Ipv6Addr,
    },
    /// MN: drop traffic from the home address (signalling excepted) until
    /// [`Action::UnblockHoa`] — no accepted registration covers the current location, so
    /// the packets could only leak natively from the care-of address or go into a
    /// stale tunnel (umip's rule 1003 and its "block until BA" policy).
    BlockHoa {
        hoa: Ipv6Addr,
    },
    UnblockHoa {
        hoa: Ipv6Addr,
    },
    /// MN: route optimisation with `cn` is on: send to it from `coa` with a Home
    /// Address option, accept its packets with a Type 2 Routing Header (RFC 6275
    /// §11.3.1); replaces any previous care-of address for that correspondent.
    RoStart {
        hoa: Ipv6Addr,
        cn: Ipv6Addr,
        coa: Ipv6Addr,
    },
    /// MN: traffic with `cn` goes through the home agent again.
    RoStop {
        hoa: Ipv6Addr,
        cn: Ipv6Addr,
    },
    /// MN: a home registration failed for good at `ha` (`status` is the BA status, or
    /// `None` after too many unanswered retransmissions). `exhausted` says no other
    /// candidate home agent is left: the platform may run DHAAD (RFC 6275 §11.4.1) and
    /// hand the result to `Mn::set_home_agents`.
    HomeRegistrationFailed {
        hoa: Ipv6Addr,
        ha: Ipv6Addr,
        status: Option<u8>,
        exhausted: bool,
    },
}

/// A Mobility Header arriving at the mobile node, with what the IPv6 layer around it
/// said beyond [`Inbound`].
#[derive(Clone, Copy, Debug)]
pub struct MnInbound<'a> {
    /// `dst` is the IPv6 destination as received (the care-of address when `rh2` is
    /// set; the home address for a packet that came through the tunnel).
    pub packet: Inbound<'a>,
    /// The home address from a Type 2 Routing Header, if there was one.
    pub rh2: Option<Ipv6Addr>,
    /// The outer source address when the packet came through an ip6ip6 tunnel (the
    /// home agent for traffic to the home address while away).
    pub tunnel_src: Option<Ipv6Addr>,
}

/// Something that happened, for the mobile node (RFC 6275 §11).
#[derive(Clone, Copy, Debug)]
pub enum MnEvent<'a> {
    /// A Mobility Header for us (checksum already verified).
    Mh(MnInbound<'a>),
    /// An ICMPv6 Parameter Problem from `from` about a packet we sent; `invoking` is
    /// the part of that packet the message carried, from its IPv6 header on
    /// (RFC 4443 §3.4). Tells us a correspondent lacks Mobile IPv6 (§11.3.5).
    ParameterProblem {
        from: Ipv6Addr,
        code: u8,
        pointer: u32,
        invoking: &'a [u8],
    },
    /// Movement detection's verdicts (RFC 6275 §11.5).
    Movement(Movement),
    /// The platform wants route optimisation with `cn` (umip: an XFRM ACQUIRE from the
    /// trigger policy on the first packet to it).
    StartRo { cn: Ipv6Addr },
    /// Route optimisation with `cn` is no longer wanted (policy change).
    StopRo { cn: Ipv6Addr },
}

/// What movement detection reports. Interfaces are named by index; `preference` is
/// umip's `MnIfPreference` (lower is preferred; ties go to the lower index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    /// `iface` has a (new) usable care-of address on a foreign link.
    CoaUp {
        iface: u32,
        coa: Ipv6Addr,
        preference: u8,
    },
    /// The care-of address on `iface` is gone (deprecated, DAD failed, prefix expired).
    CoaDown { iface: u32 },
    /// `iface` is attached to the home link (a router advertised the home prefix).
    AtHome { iface: u32, preference: u8 },
    /// The link on `iface` went down: nothing it had is usable until it comes back.
    LinkDown { iface: u32 },
    /// The link on `iface` came back with what it had before.
    LinkUp { iface: u32 },
}

/// Lifetimes travel in 4-second units (RFC 6275 §6.1.7); this rounds down so the peer is
/// never told more than was granted, and saturates at the 16-bit field.
pub fn lifetime_units(d: Duration) -> u16 {
    u16::try_from(d.as_secs() / u64::from(crate::wire::mh::TIME_UNIT_SECS)).unwrap_or(u16::MAX)
}

/// The lifetime a 16-bit Lifetime field means.
pub fn units_to_duration(units: u16) -> Duration {
    Duration::from_secs(u64::from(units) * u64::from(crate::wire::mh::TIME_UNIT_SECS))
}

/// Whether `a` may be a home or care-of address: RFC 6275 §9.5.1 wants "a unicast
/// routable home address", so unspecified, loopback, multicast and link-local addresses
/// (and IPv4-mapped ones, which never appear natively) are refused.
pub fn is_unicast_routable(a: &Ipv6Addr) -> bool {
    let seg0 = a.segments()[0];
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (seg0 & 0xffc0) == 0xfe80
        || a.to_ipv4_mapped().is_some())
}

/// Builds a [`Transmit`], emitting `repr` (which must carry a placeholder
/// `BindingAuthData` last if `auth` is given) and computing the authenticator over
/// (`coa` | `src` | MH data) with `kbm` (RFC 6275 §6.1.8, §6.2.7): for a BA from a CN,
/// `coa` is the care-of address of the binding and `src` the CN's own address.
pub(crate) fn transmit(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    rh2: Option<Ipv6Addr>,
    repr: MhRepr,
    auth: Option<(&Kbm, Ipv6Addr)>,
) -> Transmit {
    let mut bytes = vec![0; repr.buffer_len()];
    // §6.1.1 / §6.4: the checksum's pseudo-header names the final destination, the home
    // address, when a Type 2 Routing Header is present.
    let final_dst = rh2.unwrap_or(dst);
    match auth {
        Some((kbm, coa)) => {
            repr.emit_with_authenticator(&mut bytes, &src, &final_dst, |covered| {
                rr::authenticator(kbm, &coa, &src, covered)
            });
        }
        None => repr.emit(&mut bytes, &src, &final_dst),
    }
    Transmit {
        src,
        dst,
        rh2,
        repr,
        bytes,
        hao: None,
        tunnel: None,
    }
}

/// A Binding Acknowledgement repr, with a placeholder authenticator when `authenticated`.
pub(crate) fn ba_repr(
    status: u8,
    flags: crate::wire::mh::BaFlags,
    sequence: u16,
    lifetime_units: u16,
    mut options: Vec<MobilityOption>,
    authenticated: bool,
) -> MhRepr {
    if authenticated {
        // §6.2.7: Binding Authorization Data is always the last option.
        options.push(MobilityOption::BindingAuthData([0; 12]));
    }
    MhRepr {
        message: Message::BindingAck {
            status,
            flags,
            sequence,
            lifetime_units,
        },
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_down_and_saturate() {
        assert_eq!(lifetime_units(Duration::from_secs(420)), 105);
        assert_eq!(lifetime_units(Duration::from_secs(7)), 1);
        assert_eq!(lifetime_units(Duration::from_secs(3)), 0);
        assert_eq!(lifetime_units(Duration::from_secs(10_000_000)), u16::MAX);
        assert_eq!(units_to_duration(105), Duration::from_secs(420));
    }

    #[test]
    fn routable() {
        for bad in [
            "::",
            "::1",
            "ff02::1",
            "fe80::1",
            "febf::1",
            "::ffff:1.2.3.4",
        ] {
            assert!(!is_unicast_routable(&bad.parse().unwrap()), "{bad}");
        }
        for good in ["2001:db8::1", "fd00::1", "fec0::1"] {
            assert!(is_unicast_routable(&good.parse().unwrap()), "{good}");
        }
    }
}
