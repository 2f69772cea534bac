//! Packets built by our own encoder, one for every message, option and header Mobile IPv6
//! defines, for the cross-checks against independent dissectors.

use std::net::Ipv6Addr;

use mip6d::wire::icmpv6::{Icmpv6Repr, NdOption, RouterPreference};
use mip6d::wire::mh::{BaFlags, BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use mip6d::wire::packet::{PacketBuilder, Payload};

pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub const HOA: &str = "2001:db8:1::1234";
pub const COA: &str = "2001:db8:2::abcd";
pub const CN: &str = "2001:db8:3::1";
pub const HA: &str = "2001:db8:1::1";

fn mh(message: Message, options: Vec<MobilityOption>) -> MhRepr {
    MhRepr { message, options }
}

/// (name, whole IPv6 packet) for every sample.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    let from_mn = |dst: &str| PacketBuilder {
        home_address_option: Some(a(HOA)),
        ..PacketBuilder::new(a(COA), a(dst))
    };
    let to_mn = |src: &str| PacketBuilder {
        type2_routing: Some(a(HOA)),
        ..PacketBuilder::new(a(src), a(COA))
    };
    let plain = |src: &str, dst: &str| PacketBuilder::new(a(src), a(dst));
    let mut v: Vec<(&'static str, PacketBuilder, MhRepr)> = vec![
        (
            "bu-home-registration",
            from_mn(HA),
            mh(
                Message::BindingUpdate {
                    sequence: 0x1234,
                    flags: BuFlags {
                        a: true,
                        h: true,
                        k: true,
                        ..BuFlags::default()
                    },
                    lifetime_units: 105,
                },
                vec![MobilityOption::AlternateCareOf(a(COA))],
            ),
        ),
        (
            "bu-to-cn-with-auth",
            from_mn(CN),
            mh(
                Message::BindingUpdate {
                    sequence: 7,
                    flags: BuFlags {
                        a: true,
                        ..BuFlags::default()
                    },
                    lifetime_units: 105,
                },
                vec![
                    MobilityOption::NonceIndices {
                        home: 1,
                        care_of: 2,
                    },
                    MobilityOption::BindingAuthData([0xf3; 12]),
                ],
            ),
        ),
        (
            "bu-mobile-router",
            from_mn(HA),
            mh(
                Message::BindingUpdate {
                    sequence: 65535,
                    flags: BuFlags {
                        a: true,
                        h: true,
                        l: true,
                        m: true,
                        r: true,
                        p: true,
                        k: false,
                    },
                    lifetime_units: 0xffff,
                },
                vec![
                    MobilityOption::MobileNetworkPrefix {
                        prefix_len: 48,
                        prefix: a("2001:db8:77::"),
                    },
                    MobilityOption::BindingRefreshAdvice { interval_units: 60 },
                ],
            ),
        ),
        (
            "ba-accepted",
            to_mn(HA),
            mh(
                Message::BindingAck {
                    status: 0,
                    flags: BaFlags {
                        k: true,
                        r: true,
                        p: false,
                    },
                    sequence: 0x1234,
                    lifetime_units: 100,
                },
                vec![
                    MobilityOption::BindingRefreshAdvice { interval_units: 95 },
                    MobilityOption::BindingAuthData([0x5a; 12]),
                ],
            ),
        ),
        (
            "ba-rejected",
            to_mn(CN),
            mh(
                Message::BindingAck {
                    status: 135,
                    flags: BaFlags::default(),
                    sequence: 9,
                    lifetime_units: 0,
                },
                vec![],
            ),
        ),
        (
            "hoti",
            plain(HOA, CN),
            mh(
                Message::HomeTestInit {
                    cookie: [1, 2, 3, 4, 5, 6, 7, 8],
                },
                vec![],
            ),
        ),
        (
            "coti",
            plain(COA, CN),
            mh(
                Message::CareOfTestInit {
                    cookie: [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7],
                },
                vec![],
            ),
        ),
        (
            "hot",
            plain(CN, HOA),
            mh(
                Message::HomeTest {
                    nonce_index: 0x0102,
                    cookie: [1, 2, 3, 4, 5, 6, 7, 8],
                    keygen_token: [0x5d, 0xbd, 0xab, 0x0c, 0x87, 0x79, 0xb6, 0xae],
                },
                vec![],
            ),
        ),
        (
            "cot",
            plain(CN, COA),
            mh(
                Message::CareOfTest {
                    nonce_index: 0xfffe,
                    cookie: [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7],
                    keygen_token: [0xff, 0x66, 0x00, 0x07, 0xf1, 0x16, 0x84, 0x68],
                },
                vec![],
            ),
        ),
        (
            "be",
            plain(CN, COA),
            mh(
                Message::BindingError {
                    status: 1,
                    home_address: a(HOA),
                },
                vec![],
            ),
        ),
        ("brr", to_mn(CN), mh(Message::BindingRefreshRequest, vec![])),
    ];
    let mut out: Vec<(&'static str, Vec<u8>)> = v
        .drain(..)
        .map(|(n, b, m)| (n, b.build(Payload::Mobility(&m))))
        .collect();

    let icmp: Vec<(&'static str, PacketBuilder, Icmpv6Repr)> = vec![
        (
            "haad-request",
            plain(COA, "2001:db8:1::fdff:ffff:ffff:fffe"),
            Icmpv6Repr::HaadRequest {
                identifier: 0x4242,
                r: false,
            },
        ),
        (
            "haad-reply",
            plain(HA, COA),
            Icmpv6Repr::HaadReply {
                identifier: 0x4242,
                r: true,
                home_agents: vec![a(HA), a("2001:db8:1::2")],
            },
        ),
        (
            "mps",
            from_mn(HA),
            Icmpv6Repr::MobilePrefixSolicitation { identifier: 99 },
        ),
        (
            "mpa",
            to_mn(HA),
            Icmpv6Repr::MobilePrefixAdvertisement {
                identifier: 99,
                m: true,
                o: false,
                options: vec![NdOption::PrefixInformation {
                    prefix_len: 64,
                    l: true,
                    a: true,
                    r: true,
                    valid_lifetime: 86400,
                    preferred_lifetime: 14400,
                    prefix: a(HA),
                }],
            },
        ),
        (
            // The home agent's DAD probe for a home address (RFC 6275 §10.4.1, RFC 4862
            // §5.4.2): unspecified source, the solicited-node group as destination.
            "ns-dad",
            PacketBuilder {
                hop_limit: 255,
                ..plain("::", "ff02::1:ff00:1234")
            },
            Icmpv6Repr::NeighborSolicitation {
                target: a(HOA),
                options: vec![],
            },
        ),
        (
            // The home agent defending a home address for its mobile node: unsolicited,
            // override set, its own link-layer address as the target's (§10.4.1).
            "na-proxy",
            PacketBuilder {
                hop_limit: 255,
                ..plain("fe80::1", "ff02::1")
            },
            Icmpv6Repr::NeighborAdvertisement {
                r: true,
                s: false,
                o: true,
                target: a(HOA),
                options: vec![NdOption::TargetLinkLayer(vec![2, 0, 0, 0, 0, 1])],
            },
        ),
        (
            "ra-home-agent",
            PacketBuilder {
                hop_limit: 255,
                ..plain("fe80::1", "ff02::1")
            },
            Icmpv6Repr::RouterAdvertisement {
                hop_limit: 64,
                m: false,
                o: true,
                h: true,
                prf: RouterPreference::Medium,
                router_lifetime: 1800,
                reachable_time: 30000,
                retrans_timer: 1000,
                options: vec![
                    NdOption::PrefixInformation {
                        prefix_len: 64,
                        l: true,
                        a: true,
                        r: true,
                        valid_lifetime: 86400,
                        preferred_lifetime: 14400,
                        prefix: a(HA),
                    },
                    NdOption::AdvertisementInterval(3000),
                    NdOption::HomeAgentInfo {
                        preference: 10,
                        lifetime: 1800,
                    },
                ],
            },
        ),
    ];
    out.extend(
        icmp.into_iter()
            .map(|(n, b, m)| (n, b.build(Payload::Icmpv6(&m)))),
    );
    out
}
