//! Home agent under simulated time (RFC 6275 §10, RFC 3963 R flag).

mod proto_support;

use mip6d::proto::cn::status;
use mip6d::proto::event::{Action, Event};
use mip6d::proto::ha::{link_local_of, Ha, HaConfig, HaState, HomePrefix};
use mip6d::wire::mh::{BaFlags, BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use proto_support::*;
use ring::rand::SystemRandom;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HA: &str = "2001:db8:1::ffff";
const HOA: &str = "2001:db8:1::1234";
const COA: &str = "2001:db8:2::abcd";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config() -> HaConfig {
    HaConfig {
        home_prefixes: vec![HomePrefix {
            prefix: a("2001:db8:1::"),
            len: 64,
            valid_until: None,
        }],
        ..HaConfig::default()
    }
}

fn ha_with(c: HaConfig, t0: Instant) -> Ha {
    Ha::new(c, Arc::new(SystemRandom::new()), t0).unwrap()
}

fn home_flags() -> BuFlags {
    BuFlags {
        a: true,
        h: true,
        ..BuFlags::default()
    }
}

/// A home registration as §11.7.1 builds it: from the CoA with a HAO, A+H, Alternate
/// Care-of Address option.
fn home_bu(
    ha: &mut Ha,
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    seq: u16,
    flags: BuFlags,
    units: u16,
    now: Instant,
) -> Vec<Action> {
    let repr = MhRepr {
        message: Message::BindingUpdate {
            sequence: seq,
            flags,
            lifetime_units: units,
        },
        options: if coa == hoa {
            vec![]
        } else {
            vec![MobilityOption::AlternateCareOf(coa)]
        },
    };
    let raw = repr.to_bytes(&hoa, &a(HA));
    let hao = (coa != hoa).then_some(hoa);
    deliver(ha, coa, a(HA), hao, &raw, now);
    drain(ha)
}

fn register(ha: &mut Ha, seq: u16, units: u16, now: Instant) -> Vec<Action> {
    let acts = home_bu(ha, a(HOA), a(COA), seq, home_flags(), units, now);
    assert_eq!(
        acts,
        vec![Action::StartDad {
            hoa: a(HOA),
            link_local: None
        }]
    );
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        now,
    );
    drain(ha)
}

#[test]
fn first_registration_runs_dad_then_installs_and_acks() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    let acts = home_bu(&mut ha, a(HOA), a(COA), 10, home_flags(), 100, t0);
    // BA deferred while DAD runs; nothing installed yet.
    assert_eq!(
        acts,
        vec![Action::StartDad {
            hoa: a(HOA),
            link_local: None
        }]
    );
    assert!(matches!(
        ha.binding(&a(HA), &a(HOA)).unwrap().state,
        HaState::Dad { .. }
    ));
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        t0 + secs(1),
    );
    let acts = drain(&mut ha);
    let (st, seq, units, ba) = only_ba(&acts);
    assert_eq!((st, seq, units), (status::ACCEPTED, 10, 100));
    assert_eq!((ba.src, ba.dst, ba.rh2), (a(HA), a(COA), Some(a(HOA))));
    let installs: Vec<_> = acts
        .iter()
        .filter(|x| !matches!(x, Action::Send(_)))
        .cloned()
        .collect();
    assert_eq!(
        installs,
        vec![
            Action::TunnelAdd {
                local: a(HA),
                remote: a(COA)
            },
            Action::RouteAdd {
                hoa: a(HOA),
                tunnel_local: a(HA),
                tunnel_remote: a(COA)
            },
            Action::ProxyNdAdd {
                addr: a(HOA),
                router: false
            },
            Action::BindingInstalled {
                local: a(HA),
                hoa: a(HOA),
                coa: a(COA),
                lifetime: secs(400),
                home: true
            },
        ]
    );
    let b = ha.binding(&a(HA), &a(HOA)).unwrap();
    assert_eq!((b.state, b.expires), (HaState::Active, t0 + secs(401)));
}

#[test]
fn dad_failure_gives_134_and_installs_nothing() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    home_bu(&mut ha, a(HOA), a(COA), 10, home_flags(), 100, t0);
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: false,
        },
        t0 + secs(1),
    );
    let acts = drain(&mut ha);
    assert_eq!(acts.len(), 1, "only the BA: {acts:#?}");
    let (st, seq, units, _) = only_ba(&acts);
    assert_eq!((st, seq, units), (status::DAD_FAILED, 10, 0));
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());
    assert_eq!(ha.poll_timeout(), None);
}

#[test]
fn dad_without_result_times_out_silently() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    home_bu(&mut ha, a(HOA), a(COA), 10, home_flags(), 100, t0);
    assert_eq!(ha.poll_timeout(), Some(t0 + secs(10)));
    ha.handle_timeout(t0 + secs(10));
    assert!(drain(&mut ha).is_empty());
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());
    // A late result is ignored.
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        t0 + secs(11),
    );
    assert!(drain(&mut ha).is_empty());
}

#[test]
fn bu_during_dad_is_answered_once_with_the_newest_request() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    home_bu(&mut ha, a(HOA), a(COA), 10, home_flags(), 100, t0);
    let coa2 = a("2001:db8:5::5");
    assert!(home_bu(&mut ha, a(HOA), coa2, 11, home_flags(), 50, t0 + secs(1)).is_empty());
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        t0 + secs(1),
    );
    let acts = drain(&mut ha);
    let (st, seq, units, ba) = only_ba(&acts);
    assert_eq!((st, seq, units, ba.dst), (status::ACCEPTED, 11, 50, coa2));
    assert!(acts.contains(&Action::TunnelAdd {
        local: a(HA),
        remote: coa2
    }));
}

#[test]
fn link_local_flag_defends_the_link_local_too() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    let flags = BuFlags {
        l: true,
        ..home_flags()
    };
    let acts = home_bu(&mut ha, a(HOA), a(COA), 1, flags, 10, t0);
    let ll = link_local_of(&a(HOA));
    assert_eq!(
        acts,
        vec![Action::StartDad {
            hoa: a(HOA),
            link_local: Some(ll)
        }]
    );
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        t0,
    );
    let acts = drain(&mut ha);
    assert!(acts.contains(&Action::ProxyNdAdd {
        addr: ll,
        router: false
    }));
    // Deregistration removes both proxy entries.
    let acts = home_bu(&mut ha, a(HOA), a(COA), 2, flags, 0, t0 + secs(1));
    assert!(acts.contains(&Action::ProxyNdDel { addr: ll }));
    assert!(acts.contains(&Action::ProxyNdDel { addr: a(HOA) }));
}

#[test]
fn not_a_home_subnet_gets_132() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    let acts = home_bu(
        &mut ha,
        a("2001:db8:99::1"),
        a(COA),
        1,
        home_flags(),
        10,
        t0,
    );
    let (st, ..) = only_ba(&acts);
    assert_eq!(st, status::NOT_HOME_SUBNET);
    assert_eq!(acts.len(), 1);
}

#[test]
fn sequence_check_gives_135_with_the_last_number() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    register(&mut ha, 65535, 100, t0);
    let acts = home_bu(
        &mut ha,
        a(HOA),
        a(COA),
        65535,
        home_flags(),
        100,
        t0 + secs(1),
    );
    let (st, seq, ..) = only_ba(&acts);
    assert_eq!((st, seq), (status::SEQUENCE_OUT_OF_WINDOW, 65535));
    // Wrap: 0 is newer than 65535; a refresh needs no new DAD and no new tunnel.
    let acts = home_bu(&mut ha, a(HOA), a(COA), 0, home_flags(), 100, t0 + secs(2));
    let (st, seq, ..) = only_ba(&acts);
    assert_eq!((st, seq), (status::ACCEPTED, 0));
    assert!(!acts
        .iter()
        .any(|x| matches!(x, Action::StartDad { .. } | Action::TunnelAdd { .. })));
}

#[test]
fn acl_gives_129_and_mobile_router_gives_140_unless_accepted() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    ha.set_policy(Box::new(|hoa: &Ipv6Addr, _: &Ipv6Addr, _| *hoa != a(HOA)));
    let (st, ..) = only_ba(&home_bu(&mut ha, a(HOA), a(COA), 1, home_flags(), 10, t0));
    assert_eq!(st, status::ADMINISTRATIVELY_PROHIBITED);

    let mut ha = ha_with(config(), t0);
    let mr = BuFlags {
        r: true,
        ..home_flags()
    };
    let (st, ..) = only_ba(&home_bu(&mut ha, a(HOA), a(COA), 1, mr, 10, t0));
    assert_eq!(st, status::MOBILE_ROUTER_NOT_PERMITTED);

    let mut ha = ha_with(
        HaConfig {
            accept_mobile_router: true,
            ..config()
        },
        t0,
    );
    home_bu(&mut ha, a(HOA), a(COA), 1, mr, 10, t0);
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        t0,
    );
    let acts = drain(&mut ha);
    let (st, _, _, ba) = only_ba(&acts);
    assert_eq!(st, status::ACCEPTED);
    assert!(matches!(
        ba.repr.message,
        Message::BindingAck {
            flags: BaFlags { r: true, .. },
            ..
        }
    ));
    assert!(acts.contains(&Action::ProxyNdAdd {
        addr: a(HOA),
        router: true
    }));
}

#[test]
fn k_flag_is_echoed_only_when_supported() {
    let t0 = Instant::now();
    let k = BuFlags {
        k: true,
        ..home_flags()
    };
    for support in [false, true] {
        let mut ha = ha_with(
            HaConfig {
                key_mgmt_mobility: support,
                ..config()
            },
            t0,
        );
        home_bu(&mut ha, a(HOA), a(COA), 1, k, 10, t0);
        ha.handle(
            Event::DadResult {
                hoa: a(HOA),
                ok: true,
            },
            t0,
        );
        let (_, _, _, ba) = only_ba(&drain(&mut ha));
        let Message::BindingAck { flags, .. } = ba.repr.message else {
            unreachable!()
        };
        assert_eq!(flags.k, support);
    }
}

#[test]
fn lifetime_capped_by_config_and_prefix_lifetime() {
    let t0 = Instant::now();
    let mut ha = ha_with(
        HaConfig {
            max_binding_life: secs(600),
            ..config()
        },
        t0,
    );
    let (_, _, units, _) = only_ba(&register(&mut ha, 1, 1000, t0));
    assert_eq!(units, 150);

    let mut c = config();
    c.home_prefixes[0].valid_until = Some(t0 + secs(203));
    let mut ha = ha_with(c, t0);
    let (_, _, units, _) = only_ba(&register(&mut ha, 1, 1000, t0));
    assert_eq!(units, 50, "203 s left → 50 units (200 s)");
    // A prefix with less than 4 s left is as good as gone.
    ha.set_home_prefix(HomePrefix {
        prefix: a("2001:db8:1::"),
        len: 64,
        valid_until: Some(t0 + secs(3)),
    });
    let (st, ..) = only_ba(&home_bu(&mut ha, a(HOA), a(COA), 2, home_flags(), 10, t0));
    assert_eq!(st, status::NOT_HOME_SUBNET);
}

#[test]
fn care_of_change_repoints_the_tunnel() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    register(&mut ha, 1, 100, t0);
    let coa2 = a("2001:db8:7::7");
    let acts = home_bu(&mut ha, a(HOA), coa2, 2, home_flags(), 100, t0 + secs(5));
    let installs: Vec<_> = acts
        .iter()
        .filter(|x| !matches!(x, Action::Send(_)))
        .cloned()
        .collect();
    assert_eq!(
        installs,
        vec![
            Action::TunnelAdd {
                local: a(HA),
                remote: coa2
            },
            Action::RouteAdd {
                hoa: a(HOA),
                tunnel_local: a(HA),
                tunnel_remote: coa2
            },
            Action::TunnelDel {
                local: a(HA),
                remote: a(COA)
            },
            Action::BindingInstalled {
                local: a(HA),
                hoa: a(HOA),
                coa: coa2,
                lifetime: secs(400),
                home: true
            },
        ]
    );
}

#[test]
fn deregistration_from_home_and_unknown_deregistration() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    register(&mut ha, 1, 100, t0);
    // Back home: from the HoA, no HAO, no Alternate CoA (CoA == HoA).
    let acts = home_bu(&mut ha, a(HOA), a(HOA), 2, home_flags(), 0, t0 + secs(5));
    let (st, _, units, ba) = only_ba(&acts);
    assert_eq!(
        (st, units, ba.dst, ba.rh2),
        (status::ACCEPTED, 0, a(HOA), None)
    );
    let undo: Vec<_> = acts
        .iter()
        .filter(|x| !matches!(x, Action::Send(_)))
        .cloned()
        .collect();
    assert_eq!(
        undo,
        vec![
            Action::ProxyNdDel { addr: a(HOA) },
            Action::RouteDel { hoa: a(HOA) },
            Action::TunnelDel {
                local: a(HA),
                remote: a(COA)
            },
            Action::BindingRemoved {
                local: a(HA),
                hoa: a(HOA),
                home: true
            },
        ]
    );
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());
    let (st, ..) = only_ba(&home_bu(
        &mut ha,
        a(HOA),
        a(COA),
        3,
        home_flags(),
        0,
        t0 + secs(6),
    ));
    assert_eq!(st, status::NOT_HOME_AGENT_FOR_THIS_MN);
}

#[test]
fn expiry_removes_at_the_right_instant_with_remove_actions() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    register(&mut ha, 1, 25, t0);
    let end = t0 + secs(100);
    assert_eq!(ha.poll_timeout(), Some(end));
    ha.handle_timeout(end - Duration::from_nanos(1));
    assert!(drain(&mut ha).is_empty());
    assert!(ha.binding(&a(HA), &a(HOA)).is_some());
    ha.handle_timeout(end);
    let acts = drain(&mut ha);
    assert_eq!(
        acts,
        vec![
            Action::ProxyNdDel { addr: a(HOA) },
            Action::RouteDel { hoa: a(HOA) },
            Action::TunnelDel {
                local: a(HA),
                remote: a(COA)
            },
            Action::BindingRemoved {
                local: a(HA),
                hoa: a(HOA),
                home: true
            },
        ]
    );
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());
    assert_eq!(ha.poll_timeout(), None);
}

#[test]
fn refresh_advice_when_configured() {
    let t0 = Instant::now();
    let mut ha = ha_with(
        HaConfig {
            refresh_advice: Some(secs(60)),
            ..config()
        },
        t0,
    );
    let (_, _, _, ba) = only_ba(&register(&mut ha, 1, 100, t0));
    assert_eq!(
        ba.repr.options,
        vec![MobilityOption::BindingRefreshAdvice { interval_units: 15 }]
    );
}

#[test]
fn nonce_indices_in_a_home_registration_are_dropped() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    let repr = MhRepr {
        message: Message::BindingUpdate {
            sequence: 1,
            flags: home_flags(),
            lifetime_units: 10,
        },
        options: vec![MobilityOption::NonceIndices {
            home: 1,
            care_of: 2,
        }],
    };
    let raw = repr.to_bytes(&a(HOA), &a(HA));
    deliver(&mut ha, a(COA), a(HA), Some(a(HOA)), &raw, t0);
    assert!(drain(&mut ha).is_empty());
}

#[test]
fn non_home_bu_goes_to_the_embedded_cn_and_type_changes_get_139() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    // A correspondent's MN route-optimises with the HA's own address.
    let mut m = MnStub::new("2001:db8:8::8", "2001:db8:9::9", HA);
    m.rr(&mut ha, t0);
    let (st, _, _, ba) = only_ba(&m.bu(&mut ha, 1, 10, t0));
    assert_eq!(st, status::ACCEPTED);
    assert!(m.ba_authentic(&ba, false, m.coa));
    assert!(ha.cn().binding(&a(HA), &m.hoa).is_some());
    // The same HoA now asks for home registration → 139 (§9.5.1).
    let (st, ..) = only_ba(&home_bu(&mut ha, m.hoa, m.coa, 2, home_flags(), 10, t0));
    assert_eq!(st, status::REGISTRATION_TYPE_CHANGE);

    // And the other way round: a registered MN sending a non-home BU to its HA.
    let mut ha = ha_with(config(), t0);
    register(&mut ha, 1, 100, t0);
    let mut m = MnStub::new(HOA, COA, HA);
    m.rr(&mut ha, t0);
    let (st, ..) = only_ba(&m.bu(&mut ha, 2, 10, t0));
    assert_eq!(st, status::REGISTRATION_TYPE_CHANGE);
    assert!(ha.cn().binding(&a(HA), &a(HOA)).is_none());
}

#[test]
fn ha_routes_cn_events_and_timeouts() {
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    ha.handle(
        Event::HaoWithoutBinding {
            local: a(HA),
            src_coa: a(COA),
            hoa: a("2001:db8:8::8"),
        },
        t0,
    );
    let s = sends(&drain(&mut ha));
    assert!(matches!(
        s[0].repr.message,
        Message::BindingError { status: 1, .. }
    ));
    let mut m = MnStub::new("2001:db8:8::8", "2001:db8:9::9", HA);
    m.rr(&mut ha, t0);
    m.bu(&mut ha, 1, 10, t0);
    register(&mut ha, 1, 100, t0);
    // The CN binding (40 s) expires first, via the HA's timer interface.
    assert_eq!(ha.poll_timeout(), Some(t0 + secs(38)));
    ha.handle_timeout(t0 + secs(40));
    drain(&mut ha);
    assert!(ha.cn().binding(&a(HA), &m.hoa).is_none());
    assert!(ha.binding(&a(HA), &a(HOA)).is_some());
}

/// A registration overtaken by the deregistration (or arriving after expiry) must not
/// bring back a binding to an old care-of address: the HA remembers the last sequence
/// number for `SEQUENCE_GUARD` after the binding is gone (found by the simulation).
#[test]
fn an_old_registration_after_deregistration_or_expiry_gets_135() {
    use mip6d::proto::ha::SEQUENCE_GUARD;
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    register(&mut ha, 10, 100, t0);
    home_bu(&mut ha, a(HOA), a(HOA), 11, home_flags(), 0, t0 + secs(5));
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());

    // The delayed copy of registration 10 (or anything not newer than 11): 135 with 11.
    let acts = home_bu(&mut ha, a(HOA), a(COA), 10, home_flags(), 100, t0 + secs(6));
    let (st, seq, _, _) = only_ba(&acts);
    assert_eq!((st, seq), (status::SEQUENCE_OUT_OF_WINDOW, 11));
    assert!(!acts.iter().any(|x| matches!(x, Action::StartDad { .. })));
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());

    // A newer registration is welcome at once.
    let acts = home_bu(&mut ha, a(HOA), a(COA), 12, home_flags(), 25, t0 + secs(7));
    assert!(acts.iter().any(|x| matches!(x, Action::StartDad { .. })));
    ha.handle(
        Event::DadResult {
            hoa: a(HOA),
            ok: true,
        },
        t0 + secs(7),
    );
    drain(&mut ha);

    // Expiry remembers too.
    let expiry = t0 + secs(7 + 100);
    ha.handle_timeout(expiry);
    drain(&mut ha);
    assert!(ha.binding(&a(HA), &a(HOA)).is_none());
    let (st, seq, _, _) = only_ba(&home_bu(
        &mut ha,
        a(HOA),
        a(COA),
        12,
        home_flags(),
        25,
        expiry + secs(1),
    ));
    assert_eq!((st, seq), (status::SEQUENCE_OUT_OF_WINDOW, 12));

    // Once the guard is over, the old number is forgotten (§9.5.1 alone applies).
    let later = expiry + SEQUENCE_GUARD + secs(1);
    let acts = home_bu(&mut ha, a(HOA), a(COA), 5, home_flags(), 25, later);
    assert!(acts.iter().any(|x| matches!(x, Action::StartDad { .. })));
}

/// §10.6.1 on the live path: a registered home address gets the home prefixes back at
/// its care-of address through a Type 2 Routing Header; anyone else gets nothing, and
/// the Home Address option of a registered mobile node is admitted (§9.3.1).
#[test]
fn mobile_prefix_solicitation_is_answered_only_for_a_registered_home_address() {
    use mip6d::datapath::ha_icmp::mobile_prefix_answer;
    use mip6d::datapath::user::Responder;
    use mip6d::proto::discovery::AdvertisedPrefix;
    use mip6d::wire::icmpv6::{Icmpv6Repr, NdOption};
    use mip6d::wire::packet::{self, Header};
    let t0 = Instant::now();
    let mut ha = ha_with(config(), t0);
    let prefixes = [AdvertisedPrefix {
        prefix: a("2001:db8:1::"),
        len: 64,
        valid_lifetime: 86400,
        preferred_lifetime: 14400,
    }];
    let mps = Icmpv6Repr::MobilePrefixSolicitation { identifier: 77 };
    assert_eq!(mobile_prefix_answer(&ha, a(HOA), &mps, &prefixes), None);
    assert_eq!(ha.hao_coa(&a(HA), &a(HOA)), None);
    register(&mut ha, 1, 100, t0);
    assert_eq!(ha.hao_coa(&a(HA), &a(HOA)), Some(a(COA)));
    let (pkt, to) = mobile_prefix_answer(&ha, a(HOA), &mps, &prefixes).expect("an answer");
    assert_eq!(to, a(COA));
    let p = packet::parse(&pkt).unwrap();
    assert_eq!((p.ip.src, p.ip.dst), (a(HA), a(COA)));
    assert_eq!(p.final_dst(), a(HOA), "RH2 names the home address");
    let icmp = p.headers.iter().find_map(|h| match h {
        Header::Icmpv6 {
            repr,
            checksum_ok: true,
        } => Some(repr.clone()),
        _ => None,
    });
    let Some(Icmpv6Repr::MobilePrefixAdvertisement {
        identifier,
        options,
        ..
    }) = icmp
    else {
        panic!("not an MPA: {icmp:?}")
    };
    assert_eq!(identifier, 77);
    assert!(matches!(
        options[..],
        [NdOption::PrefixInformation { prefix_len: 64, prefix, .. }] if prefix == a("2001:db8:1::")
    ));
    // Another address, or a message that is not a solicitation: no answer.
    assert_eq!(
        mobile_prefix_answer(&ha, a("2001:db8:1::99"), &mps, &prefixes),
        None
    );
    assert_eq!(
        mobile_prefix_answer(
            &ha,
            a(HOA),
            &Icmpv6Repr::HaadRequest {
                identifier: 1,
                r: false
            },
            &prefixes
        ),
        None
    );
}
