//! Correspondent node under simulated time (RFC 6275 §9), driven by a mobile-node stub.

mod proto_support;

use mip6d::crypto::rr::MAX_NONCE_LIFETIME;
use mip6d::proto::cn::{status, Cn, CnConfig, MAX_RR_BINDING_LIFETIME};
use mip6d::proto::event::{Action, Event};
use mip6d::proto::ratelimit::RateLimit;
use mip6d::wire::mh::{BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use proto_support::*;
use ring::rand::SystemRandom;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cn_with(config: CnConfig, t0: Instant) -> Cn {
    Cn::new(config, Arc::new(SystemRandom::new()), t0).unwrap()
}

fn cn(t0: Instant) -> Cn {
    cn_with(CnConfig::default(), t0)
}

fn mn() -> MnStub {
    MnStub::new("2001:db8:1::1234", "2001:db8:2::abcd", "2001:db8:3::1")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn full_return_routability_and_bu_ends_with_a_binding() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let actions = m.bu(&mut c, 7, 50, t0);
    let (st, seq, units, ba) = only_ba(&actions);
    assert_eq!((st, seq, units), (status::ACCEPTED, 7, 50));
    // §9.5.4: to the CoA, with a type 2 routing header carrying the HoA.
    assert_eq!((ba.src, ba.dst, ba.rh2), (m.cn, m.coa, Some(m.hoa)));
    // §6.1.8: the BA is authenticated with the same Kbm.
    assert!(has_auth(&ba));
    assert!(m.ba_authentic(&ba, false, m.coa));
    assert!(actions.contains(&Action::BindingInstalled {
        local: m.cn,
        hoa: m.hoa,
        coa: m.coa,
        lifetime: secs(200),
        home: false,
    }));
    let b = c.binding(&m.cn, &m.hoa).expect("binding cached");
    assert_eq!((b.coa, b.seq.get(), b.expires), (m.coa, 7, t0 + secs(200)));
    assert_eq!(c.len(), 1);
    assert_eq!(c.stats().bu_accepted, 1);
}

#[test]
fn hoti_with_home_address_option_is_ignored() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let m = mn();
    let raw = MhRepr {
        message: Message::HomeTestInit { cookie: [1; 8] },
        options: vec![],
    }
    .to_bytes(&m.hoa, &m.cn);
    deliver(&mut c, m.coa, m.cn, Some(m.hoa), &raw, t0);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn route_optimization_off_answers_no_test_init() {
    let t0 = Instant::now();
    let mut c = cn_with(
        CnConfig {
            route_optimization: false,
            ..CnConfig::default()
        },
        t0,
    );
    let mut m = mn();
    assert!(m.home_test(&mut c, t0).is_empty());
    assert!(m.care_of_test(&mut c, t0).is_empty());
}

#[test]
fn home_registration_at_a_plain_cn_gets_131() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let flags = BuFlags {
        a: true,
        h: true,
        ..BuFlags::default()
    };
    let raw = m.bu_bytes(3, flags, 10);
    let (st, seq, _, ba) = only_ba(&m.send(&mut c, &raw, t0));
    assert_eq!((st, seq), (status::HOME_REGISTRATION_NOT_SUPPORTED, 3));
    assert!(!has_auth(&ba));
    assert!(c.is_empty());
}

#[test]
fn bu_without_nonce_indices_or_auth_data_is_silently_discarded() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let no_ni = m.bu_with_options(
        1,
        ack(),
        10,
        vec![MobilityOption::BindingAuthData([0; 12])],
        m.coa,
    );
    assert!(m.send(&mut c, &no_ni, t0).is_empty());
    let (h, co) = (m.home.unwrap().0, m.care_of.unwrap().0);
    let no_bad = m.bu_with_options(
        2,
        ack(),
        10,
        vec![MobilityOption::NonceIndices {
            home: h,
            care_of: co,
        }],
        m.coa,
    );
    assert!(m.send(&mut c, &no_bad, t0).is_empty());
    assert_eq!(c.stats().bu_dropped, 2);
    assert!(c.is_empty());
    // The same tokens still work in a well-formed BU.
    let (st, ..) = only_ba(&m.bu(&mut c, 3, 10, t0));
    assert_eq!(st, status::ACCEPTED);
}

#[test]
fn forged_authenticator_is_silently_dropped() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let good = m.bu_bytes(1, ack(), 10);
    // Flip each authenticator bit (fixing nothing else: the checksum then fails, so
    // recompute it the way an attacker would).
    for bit in 0..96 {
        let mut bad = good.clone();
        bad[20 + bit / 8] ^= 1 << (bit % 8);
        bad[4..6].fill(0);
        let ck = mip6d::wire::checksum::compute(&m.hoa, &m.cn, 135, &bad);
        bad[4..6].copy_from_slice(&ck.to_be_bytes());
        assert!(m.send(&mut c, &bad, t0).is_empty(), "bit {bit}");
    }
    // A mobile node with the wrong tokens (someone else's RR) gets nowhere either.
    let mut thief = mn();
    thief.home = Some((m.home.unwrap().0, [9; 8]));
    thief.care_of = m.care_of;
    assert!(thief.bu(&mut c, 1, 10, t0).is_empty());
    assert_eq!(c.stats().bu_dropped, 97);
    assert!(c.is_empty());
}

#[test]
fn expired_nonces_get_136_137_138() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    // Home nonce first used at t0, care-of nonce at t0 + 220 (after rotations).
    let mut m = mn();
    m.home_test(&mut c, t0);
    m.care_of_test(&mut c, t0 + secs(220));
    let at = t0 + MAX_NONCE_LIFETIME + secs(5);
    let (st, seq, _, ba) = only_ba(&m.bu(&mut c, 9, 10, at));
    assert_eq!((st, seq), (status::EXPIRED_HOME_NONCE, 9));
    assert!(
        !has_auth(&ba),
        "no Kbm can be computed for an expired nonce"
    );

    let mut c = cn(t0);
    let mut m = mn();
    m.care_of_test(&mut c, t0);
    m.home_test(&mut c, t0 + secs(220));
    let (st, ..) = only_ba(&m.bu(&mut c, 9, 10, at));
    assert_eq!(st, status::EXPIRED_CARE_OF_NONCE);

    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let (st, ..) = only_ba(&m.bu(&mut c, 9, 10, at));
    assert_eq!(st, status::EXPIRED_NONCES);
    // Right at the limit it is still accepted.
    let (st, ..) = only_ba(&m.bu(&mut c, 9, 10, t0 + MAX_NONCE_LIFETIME));
    assert_eq!(st, status::ACCEPTED);
}

#[test]
fn deletion_ignores_the_care_of_nonce() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.care_of_test(&mut c, t0);
    m.home_test(&mut c, t0 + secs(220));
    m.bu(&mut c, 1, 10, t0 + secs(221));
    assert!(c.binding(&m.cn, &m.hoa).is_some());
    // The care-of nonce has expired, but a deletion uses the home token alone (§5.2.6).
    let at = t0 + secs(250);
    let actions = m.bu(&mut c, 2, 0, at);
    let (st, seq, units, ba) = only_ba(&actions);
    assert_eq!((st, seq, units), (status::ACCEPTED, 2, 0));
    assert!(m.ba_authentic(&ba, true, m.coa));
    assert!(actions.contains(&Action::BindingRemoved {
        local: m.cn,
        hoa: m.hoa,
        home: false
    }));
    assert!(c.binding(&m.cn, &m.hoa).is_none());
}

#[test]
fn returning_home_deletes_with_care_of_equal_to_home() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    m.bu(&mut c, 1, 10, t0);
    // At home: no HAO, source = HoA = CoA, lifetime non-zero but still a deletion.
    m.coa = m.hoa;
    let actions = m.bu(&mut c, 2, 10, t0 + secs(1));
    let (st, _, units, ba) = only_ba(&actions);
    assert_eq!((st, units), (status::ACCEPTED, 0));
    assert_eq!(
        (ba.dst, ba.rh2),
        (m.hoa, None),
        "no routing header without a HAO"
    );
    assert!(m.ba_authentic(&ba, true, m.hoa));
    assert!(c.is_empty());
}

#[test]
fn sequence_numbers_replays_and_wrap() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let first = m.bu_bytes(65535, ack(), 10);
    let (st, ..) = only_ba(&m.send(&mut c, &first, t0));
    assert_eq!(st, status::ACCEPTED);
    // The very same BU again: a replay → 135 with the cached number, authenticated.
    let (st, seq, _, ba) = only_ba(&m.send(&mut c, &first, t0 + secs(1)));
    assert_eq!((st, seq), (status::SEQUENCE_OUT_OF_WINDOW, 65535));
    assert!(m.ba_authentic(&ba, false, m.coa));
    // 0 follows 65535 (§9.5.1 modulo 2^16).
    let (st, ..) = only_ba(&m.bu(&mut c, 0, 10, t0 + secs(2)));
    assert_eq!(st, status::ACCEPTED);
    // Half the space behind is "older".
    let (st, seq, ..) = only_ba(&m.bu(&mut c, 32768, 10, t0 + secs(3)));
    assert_eq!((st, seq), (status::SEQUENCE_OUT_OF_WINDOW, 0));
    assert_eq!(c.binding(&m.cn, &m.hoa).unwrap().seq.get(), 0);
}

#[test]
fn replay_after_deletion_is_refused_while_the_nonces_live() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let old = m.bu_bytes(5, ack(), 10);
    m.send(&mut c, &old, t0);
    m.bu(&mut c, 6, 0, t0 + secs(1));
    assert!(c.is_empty());
    let (st, seq, ..) = only_ba(&m.send(&mut c, &old, t0 + secs(2)));
    assert_eq!((st, seq), (status::SEQUENCE_OUT_OF_WINDOW, 6));
    assert!(c.is_empty());
    // After the nonces expire the tombstone goes, and the replay meets 138 instead.
    let later = t0 + MAX_NONCE_LIFETIME + secs(1);
    assert_eq!(c.poll_timeout(), Some(t0 + MAX_NONCE_LIFETIME));
    c.handle_timeout(later);
    assert_eq!(c.poll_timeout(), None);
    let (st, ..) = only_ba(&m.send(&mut c, &old, later));
    assert_eq!(st, status::EXPIRED_NONCES);
}

#[test]
fn lifetime_is_capped_at_max_rr_binding_lifetime() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let (st, _, units, _) = only_ba(&m.bu(&mut c, 1, 65535, t0));
    assert_eq!((st, units), (status::ACCEPTED, 105));
    assert_eq!(
        c.binding(&m.cn, &m.hoa).unwrap().expires,
        t0 + MAX_RR_BINDING_LIFETIME
    );
    let (_, _, units, _) = only_ba(&m.bu(&mut c, 2, 25, t0));
    assert_eq!(units, 25);
}

#[test]
fn no_ba_without_the_a_flag_on_success() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    let raw = m.bu_bytes(1, BuFlags::default(), 10);
    let actions = m.send(&mut c, &raw, t0);
    assert!(sends(&actions).is_empty());
    assert!(c.binding(&m.cn, &m.hoa).is_some());
    // Errors are sent regardless of A (§9.5.4).
    let (st, ..) = only_ba(&m.send(&mut c, &raw, t0));
    assert_eq!(st, status::SEQUENCE_OUT_OF_WINDOW);
}

#[test]
fn alternate_care_of_address_is_what_gets_bound_and_authenticated() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    let alt = a("2001:db8:9::9");
    m.coa = alt;
    m.care_of_test(&mut c, t0);
    m.home_test(&mut c, t0);
    m.coa = a("2001:db8:2::abcd");
    let opts = vec![
        MobilityOption::AlternateCareOf(alt),
        MobilityOption::NonceIndices {
            home: m.home.unwrap().0,
            care_of: m.care_of.unwrap().0,
        },
        MobilityOption::BindingAuthData([0; 12]),
    ];
    let raw = m.bu_with_options(1, ack(), 10, opts, alt);
    let (st, _, _, ba) = only_ba(&m.send(&mut c, &raw, t0));
    assert_eq!(st, status::ACCEPTED);
    assert_eq!(c.binding(&m.cn, &m.hoa).unwrap().coa, alt);
    assert!(m.ba_authentic(&ba, false, alt));
}

#[test]
fn brr_only_for_bindings_in_use_two_seconds_before_expiry() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut used = mn();
    let mut idle = MnStub::new("2001:db8:1::5", "2001:db8:2::5", "2001:db8:3::1");
    used.rr(&mut c, t0);
    idle.rr(&mut c, t0);
    used.bu(&mut c, 1, 25, t0); // 100 s
    idle.bu(&mut c, 1, 25, t0);
    c.handle(
        Event::BindingUsed {
            local: used.cn,
            hoa: used.hoa,
        },
        t0 + secs(50),
    );
    let brr_at = t0 + secs(98);
    assert_eq!(c.poll_timeout(), Some(brr_at));
    c.handle_timeout(brr_at - Duration::from_millis(1));
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(brr_at);
    let actions = drain(&mut c);
    let s = sends(&actions);
    assert_eq!(s.len(), 1, "{actions:#?}");
    assert_eq!(s[0].repr.message, Message::BindingRefreshRequest);
    // To the home address, no routing header (§6.1).
    assert_eq!((s[0].src, s[0].dst, s[0].rh2), (used.cn, used.hoa, None));
    // Expiry exactly at the granted lifetime, with the remove actions.
    assert_eq!(c.poll_timeout(), Some(t0 + secs(100)));
    c.handle_timeout(t0 + secs(100) - Duration::from_nanos(1));
    assert_eq!(c.len(), 2);
    c.handle_timeout(t0 + secs(100));
    let actions = drain(&mut c);
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::BindingRemoved { .. }))
            .count(),
        2
    );
    assert!(sends(&actions).is_empty());
    assert!(c.is_empty());
}

#[test]
fn brr_not_sent_when_use_is_older_than_the_window() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    m.rr(&mut c, t0);
    m.bu(&mut c, 1, 100, t0); // 400 s
    c.handle(
        Event::BindingUsed {
            local: m.cn,
            hoa: m.hoa,
        },
        t0 + secs(300),
    );
    c.handle_timeout(t0 + secs(398));
    assert!(
        sends(&drain(&mut c)).is_empty(),
        "used 98 s ago: > 60 s window"
    );
    // A refresh reschedules the decision point.
    m.rr(&mut c, t0 + secs(399));
    m.bu(&mut c, 2, 100, t0 + secs(399));
    c.handle(
        Event::BindingUsed {
            local: m.cn,
            hoa: m.hoa,
        },
        t0 + secs(750),
    );
    assert_eq!(c.poll_timeout(), Some(t0 + secs(797)));
    c.handle_timeout(t0 + secs(797));
    assert_eq!(sends(&drain(&mut c)).len(), 1);
}

#[test]
fn hoti_flood_is_cut_off_by_the_rate_limiter() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let m = mn();
    let raw = MhRepr {
        message: Message::HomeTestInit { cookie: [3; 8] },
        options: vec![],
    }
    .to_bytes(&m.hoa, &m.cn);
    let mut answered = 0;
    for _ in 0..1000 {
        deliver(&mut c, m.hoa, m.cn, None, &raw, t0);
        answered += sends(&drain(&mut c)).len();
    }
    let per_source = CnConfig::default().rr_per_source;
    assert_eq!(answered, per_source.burst as usize);
    assert_eq!(
        c.stats().rr_rate_limited,
        1000 - u64::from(per_source.burst)
    );
    // Spoofed sources: the global bucket caps the total.
    let global = CnConfig::default().rr_global;
    let mut total = 0;
    for i in 0..5000u32 {
        let src = a(&format!("2001:db8:77::{:x}", i + 1));
        let raw = MhRepr {
            message: Message::HomeTestInit { cookie: [3; 8] },
            options: vec![],
        }
        .to_bytes(&src, &m.cn);
        deliver(&mut c, src, m.cn, None, &raw, t0);
        total += sends(&drain(&mut c)).len();
    }
    assert_eq!(total + answered, global.burst as usize);
    // A second later the per-source budget is back a little.
    deliver(&mut c, m.hoa, m.cn, None, &raw, t0 + secs(1));
    assert_eq!(sends(&drain(&mut c)).len(), 1);
}

#[test]
fn binding_errors_for_unknown_binding_and_unknown_type() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    c.handle(
        Event::HaoWithoutBinding {
            local: m.cn,
            src_coa: m.coa,
            hoa: m.hoa,
        },
        t0,
    );
    let s = sends(&drain(&mut c));
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].repr.message,
        Message::BindingError {
            status: 1,
            home_address: m.hoa
        }
    );
    assert_eq!((s[0].dst, s[0].rh2), (m.coa, None));
    // With a binding to that CoA the report is stale: nothing.
    m.rr(&mut c, t0);
    m.bu(&mut c, 1, 10, t0);
    c.handle(
        Event::HaoWithoutBinding {
            local: m.cn,
            src_coa: m.coa,
            hoa: m.hoa,
        },
        t0,
    );
    assert!(sends(&drain(&mut c)).is_empty());
    // Unknown MH type 42 → status 2 to the source.
    let raw = MhRepr {
        message: Message::Unknown {
            mh_type: 42,
            data: vec![0; 10],
        },
        options: vec![],
    }
    .to_bytes(&m.hoa, &m.cn);
    deliver(&mut c, m.coa, m.cn, Some(m.hoa), &raw, t0);
    let s = sends(&drain(&mut c));
    assert_eq!(
        s[0].repr.message,
        Message::BindingError {
            status: 2,
            home_address: m.hoa
        }
    );
    assert_eq!(s[0].dst, m.coa);
}

#[test]
fn binding_errors_are_rate_limited() {
    let t0 = Instant::now();
    let mut c = cn_with(
        CnConfig {
            error_limit: RateLimit::new(1, 3),
            ..CnConfig::default()
        },
        t0,
    );
    let m = mn();
    let mut n = 0;
    for _ in 0..100 {
        c.handle(
            Event::HaoWithoutBinding {
                local: m.cn,
                src_coa: m.coa,
                hoa: m.hoa,
            },
            t0,
        );
        n += sends(&drain(&mut c)).len();
    }
    assert_eq!(n, 3);
}

#[test]
fn policy_refusal_gets_129_and_full_cache_gets_130() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let mut m = mn();
    let refused = m.hoa;
    c.set_policy(Box::new(move |_: &_, hoa: &std::net::Ipv6Addr, _: &_| {
        *hoa != refused
    }));
    m.rr(&mut c, t0);
    let (st, _, _, ba) = only_ba(&m.bu(&mut c, 1, 10, t0));
    assert_eq!(st, status::ADMINISTRATIVELY_PROHIBITED);
    assert!(m.ba_authentic(&ba, false, m.coa));
    assert!(c.is_empty());

    let mut c = cn_with(
        CnConfig {
            max_bindings: 1,
            ..CnConfig::default()
        },
        t0,
    );
    let mut first = mn();
    let mut second = MnStub::new("2001:db8:1::99", "2001:db8:2::99", "2001:db8:3::1");
    first.rr(&mut c, t0);
    second.rr(&mut c, t0);
    assert_eq!(only_ba(&first.bu(&mut c, 1, 10, t0)).0, status::ACCEPTED);
    assert_eq!(
        only_ba(&second.bu(&mut c, 1, 10, t0)).0,
        status::INSUFFICIENT_RESOURCES
    );
    // Refreshing the existing binding still works.
    assert_eq!(only_ba(&first.bu(&mut c, 2, 10, t0)).0, status::ACCEPTED);
}

/// Arbitrary bytes that parse as a Mobility Header never panic the CN.
#[test]
fn random_input_never_panics() {
    let t0 = Instant::now();
    let mut c = cn(t0);
    let m = mn();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut parsed = 0;
    for i in 0..200_000u32 {
        let len = 8 * (1 + (next() % 6) as usize);
        let mut raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        raw[0] = 59;
        raw[1] = (len / 8 - 1) as u8;
        raw[2] = (next() % 9) as u8;
        if i % 3 == 0 {
            raw[2] = 5;
        }
        let Ok(repr) = MhRepr::parse(&raw) else {
            continue;
        };
        parsed += 1;
        let hao = (next() % 2 == 0).then_some(m.hoa);
        c.handle(
            Event::Mh(mip6d::proto::event::Inbound {
                src: m.coa,
                dst: m.cn,
                hao,
                repr: &repr,
                raw: &raw,
            }),
            t0 + Duration::from_millis(u64::from(i)),
        );
        drain(&mut c);
    }
    assert!(parsed > 10_000, "{parsed}");
    assert!(c.is_empty());
}
