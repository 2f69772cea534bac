//! The two halves against the real correspondent node machine (`proto::cn::Cn`), with
//! packets built and parsed as the data paths do.

use super::*;
use crate::datapath::{mn_user, rewrite, user};
use crate::proto::cn::{Cn, CnConfig};
use crate::proto::event::Action;
use ring::rand::SystemRandom;
use std::sync::Arc;

const DSA: &str = "2001:db8:1::200";
const HA: &str = "2001:db8:1::1";
const CONTACT: &str = "2001:db8:31::2";
const ACCEPTOR: &str = "2001:db8:32::2";
const CLIENT: &str = "2001:db8:10::2";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn cn(now: Instant) -> Cn {
    Cn::new(CnConfig::default(), Arc::new(SystemRandom::new()), now).unwrap()
}

/// Feeds a packet to the client's machine; returns the packets it sends.
fn client_receives(cn: &mut Cn, pkt: &[u8], now: Instant) -> Vec<Vec<u8>> {
    user::receive(cn, pkt, now, &mut |_| {});
    let mut out = vec![];
    while let Some(a) = cn.poll_action() {
        if let Action::Send(t) = a {
            out.push(user::build_packet(&t).expect("a packet the client can send"));
        }
    }
    out
}

fn send(t: &Transmit) -> Vec<u8> {
    mn_user::build_packet(t).expect("buildable").0
}

/// The home test through the tunnel; returns the token.
fn home_test(cn: &mut Cn, now: Instant) -> HomeKeygen {
    let (mut ht, hoti) = HomeTest::start(a(DSA), a(CLIENT), (a(CONTACT), a(HA)), [3; 8], now);
    let mut pkt = send(&hoti);
    // The home agent's decapsulation: the client sees a HoTI from the DSA.
    let t = rewrite::decapsulate(&mut pkt).unwrap();
    assert_eq!((t.outer_src, t.inner_dst), (a(CONTACT), a(CLIENT)));
    let hot = client_receives(cn, &pkt, now);
    assert_eq!(hot.len(), 1, "the client answers the HoTI");
    let p = packet::parse(&hot[0]).unwrap();
    assert_eq!(p.ip.dst, a(DSA));
    let mh_at = hot[0].len() - p.ip.payload_len as usize;
    // Someone else's HoT (wrong source) is no token.
    assert!(ht.handle_mh(a(ACCEPTOR), &hot[0][mh_at..]).is_none());
    ht.handle_mh(p.ip.src, &hot[0][mh_at..])
        .expect("the HoT answers our HoTI")
}

#[test]
fn split_return_routability_binds_the_dsa_to_the_acceptor() {
    let now = Instant::now();
    let mut client = cn(now);
    let home = home_test(&mut client, now);
    let (mut b, acts) = Binder::start(
        a(DSA),
        a(ACCEPTOR),
        a(CLIENT),
        home,
        Some(41),
        7,
        [5; 8],
        now,
    );
    assert_eq!(b.sequence(), 42, "newer than the donor's");
    let [BinderAction::Send(coti)] = &acts[..] else {
        panic!("{acts:?}")
    };
    let cot = client_receives(&mut client, &send(coti), now);
    assert_eq!(cot.len(), 1);
    let acts = b.handle_packet(&cot[0], now);
    let [BinderAction::Send(bu)] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(bu.hao, Some(a(DSA)));
    let ba = client_receives(&mut client, &send(bu), now);
    assert_eq!(ba.len(), 1);
    let entry = client
        .binding(&a(CLIENT), &a(DSA))
        .expect("the client has a binding for the DSA");
    assert_eq!(entry.coa, a(ACCEPTOR));
    let acts = b.handle_packet(&ba[0], now);
    assert!(
        matches!(acts[..], [BinderAction::Bound { sequence: 42, .. }]),
        "{acts:?}"
    );
    assert!(b.is_bound());
    assert_eq!(b.poll_timeout(), None);

    // The connection is over: the binding goes, and the client remembers the number.
    let del = b.release().expect("a deletion");
    assert_eq!((del.src, del.hao), (a(DSA), None));
    assert!(
        client_receives(&mut client, &send(&del), now).is_empty(),
        "no BA asked"
    );
    assert!(
        client.binding(&a(CLIENT), &a(DSA)).is_none(),
        "binding deleted"
    );
    assert!(b.release().is_none());
}

#[test]
fn a_wrong_home_token_gets_no_binding() {
    let now = Instant::now();
    let mut client = cn(now);
    let mut home = home_test(&mut client, now);
    home.token[0] ^= 1;
    let (mut b, acts) = Binder::start(a(DSA), a(ACCEPTOR), a(CLIENT), home, None, 7, [5; 8], now);
    assert_eq!(b.sequence(), 7);
    let [BinderAction::Send(coti)] = &acts[..] else {
        panic!()
    };
    let cot = client_receives(&mut client, &send(coti), now);
    let [BinderAction::Send(bu)] = &b.handle_packet(&cot[0], now)[..] else {
        panic!()
    };
    let answers = client_receives(&mut client, &send(bu), now);
    assert!(client.binding(&a(CLIENT), &a(DSA)).is_none());
    for p in answers {
        assert!(!matches!(
            b.handle_packet(&p, now)[..],
            [BinderAction::Bound { .. }]
        ));
    }
    assert!(!b.is_bound());
}

#[test]
fn retransmits_then_gives_up() {
    let now = Instant::now();
    let home = HomeKeygen {
        nonce_index: 0,
        token: [0; 8],
    };
    let (mut b, _) = Binder::start(a(DSA), a(ACCEPTOR), a(CLIENT), home, None, 1, [5; 8], now);
    assert!(b.handle_timeout(now).is_empty(), "not due yet");
    let mut t = now;
    for _ in 1..MAX_SENDS {
        t += RETRANSMIT;
        assert!(matches!(b.handle_timeout(t)[..], [BinderAction::Send(_)]));
    }
    t += RETRANSMIT;
    assert!(matches!(b.handle_timeout(t)[..], [BinderAction::Failed(_)]));
    assert_eq!(b.poll_timeout(), None);

    let (mut ht, _) = HomeTest::start(a(DSA), a(CLIENT), (a(CONTACT), a(HA)), [1; 8], now);
    let mut t = now;
    for _ in 1..MAX_SENDS {
        t += RETRANSMIT;
        assert!(matches!(ht.handle_timeout(t), Ok(Some(_))));
    }
    t += RETRANSMIT;
    assert!(ht.handle_timeout(t).is_err());
}

#[test]
fn garbage_is_ignored() {
    let now = Instant::now();
    let home = HomeKeygen {
        nonce_index: 0,
        token: [0; 8],
    };
    let (mut b, _) = Binder::start(a(DSA), a(ACCEPTOR), a(CLIENT), home, None, 1, [5; 8], now);
    let (mut ht, _) = HomeTest::start(a(DSA), a(CLIENT), (a(CONTACT), a(HA)), [1; 8], now);
    let mut x = 0x1234_5678u32;
    for len in 0..300 {
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(b.handle_packet(&buf, now).is_empty());
        assert!(ht.handle_mh(a(CLIENT), &buf).is_none());
    }
}

/// Drives one binder through care-of test, BU and the client's answers; returns what
/// the binder finally said.
fn bind_once(client: &mut Cn, b: &mut Binder, coti: &Transmit, now: Instant) -> Vec<BinderAction> {
    let cot = client_receives(client, &send(coti), now);
    let mut acts = b.handle_packet(&cot[0], now);
    // A refused BU is sent again at most once, so two rounds settle it.
    for _ in 0..2 {
        let [BinderAction::Send(bu)] = &acts[..] else {
            return acts;
        };
        let answers = client_receives(client, &send(bu), now);
        assert_eq!(answers.len(), 1, "one BA per BU");
        acts = b.handle_packet(&answers[0], now);
    }
    acts
}

#[test]
fn a_sequence_number_the_client_rejects_is_resynchronised_once() {
    let now = Instant::now();
    let mut client = cn(now);
    let home = home_test(&mut client, now);
    let start = |seq| Binder::start(a(DSA), a(ACCEPTOR), a(CLIENT), home, None, seq, [5; 8], now);

    // A first acceptor binds with 1000 and deletes: the client keeps 1001 (§5.2.8).
    let (mut first, acts) = start(1000);
    let [BinderAction::Send(coti)] = &acts[..] else {
        panic!("{acts:?}")
    };
    let acts = bind_once(&mut client, &mut first, coti, now);
    assert!(
        matches!(acts[..], [BinderAction::Bound { sequence: 1000, .. }]),
        "{acts:?}"
    );
    client_receives(&mut client, &send(&first.release().unwrap()), now);

    // A second acceptor that knows nothing of it starts below: 135, then 1002.
    let (mut second, acts) = start(900);
    let [BinderAction::Send(coti)] = &acts[..] else {
        panic!("{acts:?}")
    };
    let acts = bind_once(&mut client, &mut second, coti, now);
    assert!(
        matches!(acts[..], [BinderAction::Bound { sequence: 1002, .. }]),
        "{acts:?}"
    );
    assert_eq!(
        client.binding(&a(CLIENT), &a(DSA)).unwrap().coa,
        a(ACCEPTOR)
    );
}
