//! Mobile node (RFC 6275 §11) under simulated time, against the real home agent and
//! correspondent machines, messages handed over directly (no network: see
//! `sim_mip6.rs` for that).

use mip6d::proto::cn::{status, Cn, CnConfig};
use mip6d::proto::event::{Action, Event, Inbound, MnEvent, MnInbound, Movement, Transmit};
use mip6d::proto::ha::{Ha, HaConfig, HomePrefix};
use mip6d::proto::mn::{Location, Mn, MnConfig};
use mip6d::wire::mh::{BaFlags, BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use ring::rand::SystemRandom;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn hoa() -> Ipv6Addr {
    a("2001:db8:1::100")
}
fn ha1() -> Ipv6Addr {
    a("2001:db8:1::1")
}
fn ha2() -> Ipv6Addr {
    a("2001:db8:1::2")
}
fn coa() -> Ipv6Addr {
    a("2001:db8:f1::100")
}
fn coa2() -> Ipv6Addr {
    a("2001:db8:f2::100")
}
fn cn_a() -> Ipv6Addr {
    a("2001:db8:3::1")
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn rng() -> Arc<SystemRandom> {
    Arc::new(SystemRandom::new())
}

fn mn_with(f: impl FnOnce(&mut MnConfig)) -> Mn {
    let mut c = MnConfig {
        home_address: hoa(),
        home_agents: vec![ha1()],
        max_ha_binding_life: secs(400),
        initial_sequence: 100,
        ..MnConfig::default()
    };
    f(&mut c);
    Mn::new(c, rng())
}

fn ha(t0: Instant, advice: Option<Duration>) -> Ha {
    Ha::new(
        HaConfig {
            home_prefixes: vec![HomePrefix {
                prefix: a("2001:db8:1::"),
                len: 64,
                valid_until: None,
            }],
            refresh_advice: advice,
            ..HaConfig::default()
        },
        rng(),
        t0,
    )
    .unwrap()
}

fn drain_mn(m: &mut Mn) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn sends(actions: &[Action]) -> Vec<Transmit> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Send(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn bu_fields(t: &Transmit) -> (u16, BuFlags, u16) {
    match t.repr.message {
        Message::BindingUpdate {
            sequence,
            flags,
            lifetime_units,
        } => (sequence, flags, lifetime_units),
        ref m => panic!("not a BU: {m}"),
    }
}

fn move_to(m: &mut Mn, coa: Ipv6Addr, now: Instant) -> Vec<Action> {
    m.handle(
        MnEvent::Movement(Movement::CoaUp {
            iface: 1,
            coa,
            preference: 5,
        }),
        now,
    );
    drain_mn(m)
}

/// A BA from `from` as a home agent would send it to the mobile node away from home.
fn ba(from: Ipv6Addr, st: u8, seq: u16, units: u16, options: Vec<MobilityOption>) -> Vec<u8> {
    MhRepr {
        message: Message::BindingAck {
            status: st,
            flags: BaFlags::default(),
            sequence: seq,
            lifetime_units: units,
        },
        options,
    }
    .to_bytes(&from, &hoa())
}

fn give(m: &mut Mn, src: Ipv6Addr, dst: Ipv6Addr, rh2: Option<Ipv6Addr>, raw: &[u8], now: Instant) {
    give_tunnelled(m, src, dst, rh2, None, raw, now)
}

fn give_tunnelled(
    m: &mut Mn,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    rh2: Option<Ipv6Addr>,
    tunnel_src: Option<Ipv6Addr>,
    raw: &[u8],
    now: Instant,
) {
    let repr = MhRepr::parse_checked(raw, &src, &rh2.unwrap_or(dst)).expect("parses");
    m.handle(
        MnEvent::Mh(MnInbound {
            packet: Inbound {
                src,
                dst,
                hao: None,
                repr: &repr,
                raw,
            },
            rh2,
            tunnel_src,
        }),
        now,
    );
}

/// Hands a mobile node's transmission to a home agent or correspondent, as the network
/// would (the checksum and authenticator name the home address when a HAO is present).
fn to_peer(t: &Transmit, now: Instant, handle: &mut dyn FnMut(Event<'_>, Instant)) {
    let final_src = t.hao.unwrap_or(t.src);
    let repr = MhRepr::parse_checked(&t.bytes, &final_src, &t.dst).expect("MN output parses");
    // The repr keeps a placeholder authenticator (as the CN's and HA's do).
    assert_eq!(repr.message, t.repr.message, "bytes say what repr says");
    handle(
        Event::Mh(Inbound {
            src: t.src,
            dst: t.dst,
            hao: t.hao,
            repr: &repr,
            raw: &t.bytes,
        }),
        now,
    );
}

/// Back from a home agent or correspondent to the mobile node: through the home agent's
/// tunnel when addressed to the home address while away.
fn to_mn(m: &mut Mn, t: &Transmit, ha: Ipv6Addr, now: Instant) {
    let tunnel = (t.dst == hoa() && m.location() != Location::Home).then_some(ha);
    give_tunnelled(m, t.src, t.dst, t.rh2, tunnel, &t.bytes, now);
}

/// Registers the MN with a real HA at `coa`; returns the time the BA came back.
fn register(m: &mut Mn, h: &mut Ha, coa: Ipv6Addr, now: Instant) -> Vec<Action> {
    let out = move_to(m, coa, now);
    let bu = sends(&out).pop().expect("a home BU");
    to_peer(&bu, now, &mut |e, t| h.handle(e, t));
    let mut acts: Vec<Action> = std::iter::from_fn(|| h.poll_action()).collect();
    if let Some(Action::StartDad { hoa, .. }) = acts
        .iter()
        .find(|x| matches!(x, Action::StartDad { .. }))
        .cloned()
    {
        h.handle(Event::DadResult { hoa, ok: true }, now);
        acts = std::iter::from_fn(|| h.poll_action()).collect();
    }
    let ba = sends(&acts).pop().expect("a BA");
    to_mn(m, &ba, h_addr(&ba), now);
    drain_mn(m)
}

fn h_addr(t: &Transmit) -> Ipv6Addr {
    t.src
}

#[test]
fn first_home_bu_and_its_retransmissions() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    assert_eq!(m.location(), Location::Detached);
    let out = move_to(&mut m, coa(), t0);
    assert!(out.contains(&Action::BlockHoa { hoa: hoa() }));
    let bu = sends(&out).pop().unwrap();
    // §11.7.1: from the CoA, HoA in a HAO, A and H, the Alternate CoA option.
    assert_eq!(
        (bu.src, bu.dst, bu.hao, bu.tunnel),
        (coa(), ha1(), Some(hoa()), None)
    );
    let (seq, flags, units) = bu_fields(&bu);
    assert!(flags.a && flags.h);
    assert_eq!((seq, units), (101, 100));
    assert_eq!(
        bu.repr.options,
        vec![MobilityOption::AlternateCareOf(coa())]
    );
    // §11.8 / §13: 1.5 s first, doubling, capped at 32 s; each copy a new number.
    let mut now = t0;
    let mut gaps = vec![];
    for i in 0..8 {
        let next = m.poll_timeout().unwrap();
        gaps.push(next - now);
        now = next;
        m.handle_timeout(now);
        let s = sends(&drain_mn(&mut m));
        assert_eq!(s.len(), 1);
        assert_eq!(bu_fields(&s[0]).0, 102 + i);
    }
    let want: Vec<_> = [1500, 3000, 6000, 12000, 24000, 32000, 32000, 32000]
        .iter()
        .map(|x| ms(*x))
        .collect();
    assert_eq!(gaps, want);
}

#[test]
fn accepted_registration_refreshes_at_95_percent_with_the_rereg_timer() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, None);
    let out = register(&mut m, &mut h, coa(), t0);
    assert!(out.contains(&Action::HomeTunnelSet {
        hoa: hoa(),
        ha: ha1(),
        coa: coa()
    }));
    assert!(out.contains(&Action::UnblockHoa { hoa: hoa() }));
    let r = m.home_binding().unwrap().clone();
    assert_eq!(
        (r.coa, r.lifetime, r.expires),
        (coa(), secs(400), t0 + secs(400))
    );
    assert_eq!(m.poll_timeout(), Some(t0 + secs(380)));
    m.handle_timeout(t0 + secs(380));
    let bu = sends(&drain_mn(&mut m)).pop().expect("refresh");
    assert_eq!(bu_fields(&bu).2, 100);
    // Re-registration: 1 s to the first retransmission.
    assert_eq!(m.poll_timeout(), Some(t0 + secs(381)));
    // The HA agrees.
    let b = h.binding(&ha1(), &hoa()).unwrap();
    assert_eq!((b.coa, b.seq), (coa(), r.seq));
}

#[test]
fn refresh_advice_comes_first_when_shorter() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, Some(secs(60)));
    register(&mut m, &mut h, coa(), t0);
    assert_eq!(m.poll_timeout(), Some(t0 + secs(60)));
}

#[test]
fn status_135_resynchronises_and_resends_at_once() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    move_to(&mut m, coa(), t0);
    give(
        &mut m,
        ha1(),
        coa(),
        Some(hoa()),
        &ba(ha1(), 135, 5000, 0, vec![]),
        t0 + ms(50),
    );
    let bu = sends(&drain_mn(&mut m)).pop().expect("resent");
    assert_eq!(bu_fields(&bu).0, 5001);
    // Now an acceptance of that copy registers.
    give(
        &mut m,
        ha1(),
        coa(),
        Some(hoa()),
        &ba(ha1(), 0, 5001, 10, vec![]),
        t0 + ms(90),
    );
    assert_eq!(m.home_binding().unwrap().seq.get(), 5001);
}

#[test]
fn ba_checks_peer_and_sequence() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    move_to(&mut m, coa(), t0);
    // Wrong sender, unknown sequence number: ignored.
    give(
        &mut m,
        ha2(),
        coa(),
        Some(hoa()),
        &ba(ha2(), 0, 101, 10, vec![]),
        t0,
    );
    give(
        &mut m,
        ha1(),
        coa(),
        Some(hoa()),
        &ba(ha1(), 0, 99, 10, vec![]),
        t0,
    );
    assert!(m.home_binding().is_none());
    assert_eq!(m.stats().ignored, 2);
}

#[test]
fn refusal_moves_to_the_next_home_agent_then_gives_up() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| c.home_agents = vec![ha1(), ha2()]);
    move_to(&mut m, coa(), t0);
    give(
        &mut m,
        ha1(),
        coa(),
        Some(hoa()),
        &ba(ha1(), 129, 101, 0, vec![]),
        t0,
    );
    let out = drain_mn(&mut m);
    assert!(out.contains(&Action::HomeRegistrationFailed {
        hoa: hoa(),
        ha: ha1(),
        status: Some(129),
        exhausted: false
    }));
    let bu = sends(&out).pop().expect("BU to the next candidate");
    assert_eq!(bu.dst, ha2());
    assert_eq!(m.home_pending().unwrap().initial_timeout, ms(1500));
    give(
        &mut m,
        ha2(),
        coa(),
        Some(hoa()),
        &ba(ha2(), 132, 102, 0, vec![]),
        t0,
    );
    let out = drain_mn(&mut m);
    assert!(out.contains(&Action::HomeRegistrationFailed {
        hoa: hoa(),
        ha: ha2(),
        status: Some(132),
        exhausted: true
    }));
    assert!(m.home_failed() && sends(&out).is_empty());
    // Moving is a new chance, from the first candidate.
    let bu = sends(&move_to(&mut m, coa2(), t0 + secs(5))).pop().unwrap();
    assert_eq!(bu.dst, ha1());
}

#[test]
fn unanswered_home_agent_is_replaced_after_max_resends() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| {
        c.home_agents = vec![ha1(), ha2()];
        c.max_ha_consecutive_resends = 2;
    });
    move_to(&mut m, coa(), t0);
    let mut dsts = vec![];
    for _ in 0..4 {
        let t = m.poll_timeout().unwrap();
        m.handle_timeout(t);
        dsts.extend(sends(&drain_mn(&mut m)).iter().map(|s| s.dst));
    }
    assert_eq!(dsts, vec![ha1(), ha1(), ha2(), ha2()]);
}

#[test]
fn return_home_deregisters_from_the_home_address() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, None);
    register(&mut m, &mut h, coa(), t0);
    m.handle(
        MnEvent::Movement(Movement::AtHome {
            iface: 1,
            preference: 5,
        }),
        t0 + secs(10),
    );
    let out = drain_mn(&mut m);
    assert!(out.contains(&Action::HomeTunnelClear { hoa: hoa() }));
    let bu = sends(&out).pop().unwrap();
    // §11.5.4: lifetime 0, from the home address, no HAO, CoA = HoA.
    assert_eq!((bu.src, bu.dst, bu.hao), (hoa(), ha1(), None));
    assert_eq!(bu_fields(&bu).2, 0);
    assert_eq!(
        bu.repr.options,
        vec![MobilityOption::AlternateCareOf(hoa())]
    );
    to_peer(&bu, t0 + secs(10), &mut |e, t| h.handle(e, t));
    let acts: Vec<Action> = std::iter::from_fn(|| h.poll_action()).collect();
    assert!(h.binding(&ha1(), &hoa()).is_none());
    let reply = sends(&acts).pop().unwrap();
    to_mn(&mut m, &reply, ha1(), t0 + secs(10));
    let out = drain_mn(&mut m);
    assert!(out.contains(&Action::UnblockHoa { hoa: hoa() }));
    assert!(m.home_binding().is_none() && m.home_pending().is_none());
}

#[test]
fn link_down_and_up() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    move_to(&mut m, coa(), t0);
    m.handle(MnEvent::Movement(Movement::LinkDown { iface: 1 }), t0);
    assert_eq!(m.location(), Location::Detached);
    assert!(m.home_pending().is_none());
    m.handle(
        MnEvent::Movement(Movement::LinkUp { iface: 1 }),
        t0 + secs(1),
    );
    assert_eq!(m.location(), Location::Away(coa()));
    assert!(sends(&drain_mn(&mut m)).iter().any(|t| t.dst == ha1()));
}

/// Runs HoTI/CoTI/BU between the MN and a real CN; returns what the MN did on the way.
fn route_optimise(m: &mut Mn, c: &mut Cn, now: Instant) -> Vec<Action> {
    m.handle(MnEvent::StartRo { cn: cn_a() }, now);
    let pending = sends(&drain_mn(m));
    exchange(m, c, pending, now)
}

/// Delivers `pending` to the CN and the answers back, until nothing is left.
fn exchange(m: &mut Mn, c: &mut Cn, mut pending: Vec<Transmit>, now: Instant) -> Vec<Action> {
    let mut last = vec![];
    for _ in 0..6 {
        let mut replies = vec![];
        for t in pending.drain(..) {
            assert_eq!(t.dst, cn_a());
            to_peer(&t, now, &mut |e, at| c.handle(e, at));
            replies.extend(sends(
                &std::iter::from_fn(|| c.poll_action()).collect::<Vec<_>>(),
            ));
        }
        for r in replies {
            to_mn(m, &r, ha1(), now);
            let acts = drain_mn(m);
            pending.extend(sends(&acts));
            last.extend(acts);
        }
        if pending.is_empty() {
            break;
        }
    }
    last
}

#[test]
fn return_routability_and_binding_with_a_real_correspondent() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| c.use_cn_bu_ack = true);
    let mut h = ha(t0, None);
    let mut c = Cn::new(CnConfig::default(), rng(), t0).unwrap();
    register(&mut m, &mut h, coa(), t0);
    m.handle(MnEvent::StartRo { cn: cn_a() }, t0);
    let tests = sends(&drain_mn(&mut m));
    assert_eq!(tests.len(), 2);
    let last = exchange(&mut m, &mut c, tests.clone(), t0);
    let hoti = tests
        .iter()
        .find(|t| matches!(t.repr.message, Message::HomeTestInit { .. }))
        .unwrap();
    let coti = tests
        .iter()
        .find(|t| matches!(t.repr.message, Message::CareOfTestInit { .. }))
        .unwrap();
    // §11.6.1: HoTI from the HoA through the tunnel, CoTI directly from the CoA.
    assert_eq!((hoti.src, hoti.tunnel), (hoa(), Some((coa(), ha1()))));
    assert_eq!((coti.src, coti.tunnel), (coa(), None));
    assert!(last.contains(&Action::RoStart {
        hoa: hoa(),
        cn: cn_a(),
        coa: coa()
    }));
    let b = c.binding(&cn_a(), &hoa()).expect("the CN bound us");
    assert_eq!(b.coa, coa());
    let mine = m.cn_binding(&cn_a()).unwrap();
    assert!(mine.acked && mine.coa == coa());
    // §11.7.2: MnMaxCnBindingLife is 420 s, but the home registration has only 400 s.
    assert_eq!(mine.lifetime, secs(400));
}

#[test]
fn cn_bu_has_hao_nonce_indices_and_authenticator_and_no_ack_by_default() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, None);
    let mut c = Cn::new(CnConfig::default(), rng(), t0).unwrap();
    register(&mut m, &mut h, coa(), t0);
    m.handle(MnEvent::StartRo { cn: cn_a() }, t0);
    let mut bu = None;
    for t in sends(&drain_mn(&mut m)) {
        to_peer(&t, t0, &mut |e, at| c.handle(e, at));
        for r in sends(&std::iter::from_fn(|| c.poll_action()).collect::<Vec<_>>()) {
            to_mn(&mut m, &r, ha1(), t0);
            for s in sends(&drain_mn(&mut m)) {
                bu = Some(s);
            }
        }
    }
    let bu = bu.expect("BU once both tokens are in");
    assert_eq!((bu.src, bu.dst, bu.hao), (coa(), cn_a(), Some(hoa())));
    let (_, flags, _) = bu_fields(&bu);
    assert!(!flags.a && !flags.h);
    assert!(matches!(
        bu.repr.options[0],
        MobilityOption::NonceIndices { .. }
    ));
    assert!(matches!(
        bu.repr.options[1],
        MobilityOption::BindingAuthData(_)
    ));
    to_peer(&bu, t0, &mut |e, at| c.handle(e, at));
    assert!(
        c.binding(&cn_a(), &hoa()).is_some(),
        "the authenticator verified"
    );
    // Without A the MN believes it at once.
    assert!(m.cn_binding(&cn_a()).is_some_and(|b| !b.acked));
}

#[test]
fn no_route_optimisation_before_home_registration() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    move_to(&mut m, coa(), t0);
    m.handle(MnEvent::StartRo { cn: cn_a() }, t0);
    assert!(sends(&drain_mn(&mut m)).iter().all(|t| t.dst == ha1()));
}

#[test]
fn parameter_problem_and_binding_error_2_stop_route_optimisation() {
    let t0 = Instant::now();
    for code in [1u8, 2] {
        let mut m = mn_with(|_| {});
        let mut h = ha(t0, None);
        register(&mut m, &mut h, coa(), t0);
        m.handle(MnEvent::StartRo { cn: cn_a() }, t0);
        drain_mn(&mut m);
        // code 1 → pointer at Next Header = 135; code 2 → pointer at the HAO type.
        let mut invoking = vec![0u8; 48];
        invoking[6] = 135;
        invoking[46] = 0xc9;
        let pointer = if code == 1 { 6 } else { 46 };
        // A pointer at something else means nothing.
        m.handle(
            MnEvent::ParameterProblem {
                from: cn_a(),
                code,
                pointer: 7,
                invoking: &invoking,
            },
            t0,
        );
        assert!(!m.ro_disabled(&cn_a()));
        m.handle(
            MnEvent::ParameterProblem {
                from: cn_a(),
                code,
                pointer,
                invoking: &invoking,
            },
            t0,
        );
        assert!(m.ro_disabled(&cn_a()), "code {code}");
        assert!(
            m.poll_timeout().is_none_or(|t| t > t0 + secs(300)),
            "no more tests"
        );
    }
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, None);
    register(&mut m, &mut h, coa(), t0);
    m.handle(MnEvent::StartRo { cn: cn_a() }, t0);
    let be = MhRepr {
        message: Message::BindingError {
            status: 2,
            home_address: hoa(),
        },
        options: vec![],
    }
    .to_bytes(&cn_a(), &coa());
    give(&mut m, cn_a(), coa(), None, &be, t0);
    assert!(m.ro_disabled(&cn_a()));
}

#[test]
fn expired_nonce_reruns_the_home_test() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| {
        c.use_cn_bu_ack = true;
        c.max_cn_binding_life = secs(40);
    });
    let mut h = ha(t0, None);
    let mut c = Cn::new(CnConfig::default(), rng(), t0).unwrap();
    register(&mut m, &mut h, coa(), t0);
    route_optimise(&mut m, &mut c, t0);
    let seq = m.cn_binding(&cn_a()).unwrap().seq.get();
    // Force a refresh BU, then answer it with 136 (unauthenticated).
    let refresh = m.cn_binding(&cn_a()).unwrap().refresh_at;
    m.handle_timeout(refresh);
    let out = sends(&drain_mn(&mut m));
    let bu = out
        .iter()
        .find(|t| t.dst == cn_a() && matches!(t.repr.message, Message::BindingUpdate { .. }))
        .expect("tokens are fresh: a refresh BU");
    let bu_seq = bu_fields(bu).0;
    assert_ne!(bu_seq, seq);
    let nack = ba(cn_a(), status::EXPIRED_HOME_NONCE, bu_seq, 0, vec![]);
    give(&mut m, cn_a(), coa(), Some(hoa()), &nack, refresh);
    let out = sends(&drain_mn(&mut m));
    assert!(out
        .iter()
        .any(|t| matches!(t.repr.message, Message::HomeTestInit { .. })));
    assert!(!out
        .iter()
        .any(|t| matches!(t.repr.message, Message::CareOfTestInit { .. })));
}

#[test]
fn forged_cn_ba_and_test_messages_are_ignored() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| c.use_cn_bu_ack = true);
    let mut h = ha(t0, None);
    register(&mut m, &mut h, coa(), t0);
    m.handle(MnEvent::StartRo { cn: cn_a() }, t0);
    drain_mn(&mut m);
    let cot = MhRepr {
        message: Message::CareOfTest {
            nonce_index: 1,
            cookie: [7; 8],
            keygen_token: [1; 8],
        },
        options: vec![],
    }
    .to_bytes(&cn_a(), &coa());
    give(&mut m, cn_a(), coa(), None, &cot, t0);
    let forged = ba(
        cn_a(),
        0,
        101,
        10,
        vec![MobilityOption::BindingAuthData([3; 12])],
    );
    give(&mut m, cn_a(), coa(), Some(hoa()), &forged, t0);
    assert!(m.cn_binding(&cn_a()).is_none());
    assert_eq!(m.stats().ignored, 2);
    assert!(sends(&drain_mn(&mut m))
        .iter()
        .all(|t| !matches!(t.repr.message, Message::BindingUpdate { .. })));
}

#[test]
fn binding_error_1_rebinds() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, None);
    let mut c = Cn::new(CnConfig::default(), rng(), t0).unwrap();
    register(&mut m, &mut h, coa(), t0);
    route_optimise(&mut m, &mut c, t0);
    assert!(m.cn_binding(&cn_a()).is_some());
    let be = MhRepr {
        message: Message::BindingError {
            status: 1,
            home_address: hoa(),
        },
        options: vec![],
    }
    .to_bytes(&cn_a(), &coa());
    give(&mut m, cn_a(), coa(), None, &be, t0 + secs(1));
    // Tokens are fresh: a new BU goes out straight away.
    let out = sends(&drain_mn(&mut m));
    assert!(out
        .iter()
        .any(|t| t.dst == cn_a() && matches!(t.repr.message, Message::BindingUpdate { .. })));
}

#[test]
fn movement_reregisters_home_first_then_correspondents() {
    let t0 = Instant::now();
    let mut m = mn_with(|_| {});
    let mut h = ha(t0, None);
    let mut c = Cn::new(CnConfig::default(), rng(), t0).unwrap();
    register(&mut m, &mut h, coa(), t0);
    route_optimise(&mut m, &mut c, t0);
    let out = move_to(&mut m, coa2(), t0 + secs(30));
    // RO to the old CoA stops; only the home BU leaves until the HA accepts.
    assert!(out.contains(&Action::RoStop {
        hoa: hoa(),
        cn: cn_a()
    }));
    assert!(sends(&out).iter().all(|t| t.dst == ha1()));
    let bu = sends(&out).pop().unwrap();
    to_peer(&bu, t0 + secs(30), &mut |e, t| h.handle(e, t));
    let reply = sends(&std::iter::from_fn(|| h.poll_action()).collect::<Vec<_>>())
        .pop()
        .unwrap();
    to_mn(&mut m, &reply, ha1(), t0 + secs(30));
    // Now the correspondent: the home token is still good, only a CoTI is needed.
    let out = sends(&drain_mn(&mut m));
    assert_eq!(out.len(), 1);
    assert!(matches!(
        out[0].repr.message,
        Message::CareOfTestInit { .. }
    ));
    assert_eq!(out[0].src, coa2());
}

#[test]
fn sequence_numbers_wrap() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| c.initial_sequence = 65534);
    let mut h = ha(t0, None);
    let mut now = t0;
    for (i, c) in [coa(), coa2(), coa(), coa2()].into_iter().enumerate() {
        now += secs(10);
        register(&mut m, &mut h, c, now);
        assert_eq!(
            m.home_binding().unwrap().seq.get(),
            65535u16.wrapping_add(i as u16)
        );
    }
    assert_eq!(h.binding(&ha1(), &hoa()).unwrap().seq.get(), 2);
}

/// Distributed Servers: a member that may become contact holds the DSA's home
/// registration until the membership says it is the contact, registers with the committed
/// sequence number, and on losing the role stops without deregistering (the home agent's
/// binding belongs to the next contact by then).
#[test]
fn a_held_home_registration_waits_registers_with_the_given_sequence_and_stops_silently() {
    let t0 = Instant::now();
    let mut m = mn_with(|c| c.hold_home_registration = true);
    let mut h = ha(t0, None);
    let out = move_to(&mut m, coa(), t0);
    assert!(sends(&out).is_empty(), "held: no BU: {out:?}");
    assert!(
        !out.contains(&Action::BlockHoa { hoa: hoa() }),
        "a held home address is not ours to block"
    );
    assert!(m.home_held());
    assert_eq!(m.poll_timeout(), None, "nothing to retransmit");
    m.set_home_registration(Some(7), t0);
    let out = drain_mn(&mut m);
    let bu = sends(&out).pop().expect("a home BU once released");
    assert_eq!(bu_fields(&bu).0, 7, "the membership's sequence number");
    to_peer(&bu, t0, &mut |e, t| h.handle(e, t));
    let mut acts: Vec<Action> = std::iter::from_fn(|| h.poll_action()).collect();
    if let Some(Action::StartDad { hoa, .. }) = acts
        .iter()
        .find(|x| matches!(x, Action::StartDad { .. }))
        .cloned()
    {
        h.handle(Event::DadResult { hoa, ok: true }, t0);
        acts = std::iter::from_fn(|| h.poll_action()).collect();
    }
    let ba = sends(&acts).pop().expect("a BA");
    to_mn(&mut m, &ba, ha1(), t0);
    let out = drain_mn(&mut m);
    assert!(out.contains(&Action::HomeTunnelSet {
        hoa: hoa(),
        ha: ha1(),
        coa: coa()
    }));
    assert_eq!(m.home_binding().map(|b| b.seq.get()), Some(7));
    // Deposed: the tunnel goes, and nothing is sent — no deregistration, ever.
    let t1 = t0 + secs(1);
    m.set_home_registration(None, t1);
    let out = drain_mn(&mut m);
    assert!(out.contains(&Action::HomeTunnelClear { hoa: hoa() }));
    assert!(sends(&out).is_empty(), "{out:?}");
    assert!(m.home_binding().is_none());
    let mut now = t1;
    for _ in 0..5 {
        match m.poll_timeout() {
            Some(t) => now = t.max(now),
            None => break,
        }
        m.handle_timeout(now);
        assert!(sends(&drain_mn(&mut m)).is_empty());
    }
    // Contact again later with a newer committed number: a fresh registration with it.
    m.set_home_registration(Some(9), now + secs(5));
    let bu = sends(&drain_mn(&mut m)).pop().expect("a home BU");
    assert_eq!(bu_fields(&bu).0, 9);
}
