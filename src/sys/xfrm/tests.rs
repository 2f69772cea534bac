use super::codec::*;
use super::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(b[at..at + 2].try_into().unwrap())
}

/// The sizes `offsetof`/`sizeof` give for the 6.x uapi header on x86-64; a layout change
/// here would be silently wrong on the wire.
#[test]
fn structure_sizes_match_the_kernel() {
    assert_eq!(SELECTOR_LEN, 56);
    assert_eq!(USERSA_INFO_LEN, 224);
    assert_eq!(USERSA_ID_LEN, 24);
    assert_eq!(USERPOLICY_INFO_LEN, 168);
    assert_eq!(USERPOLICY_ID_LEN, 64);
    assert_eq!(USER_TMPL_LEN, 64);
    assert_eq!(USER_ACQUIRE_LEN, 280);
    assert_eq!(USER_REPORT_LEN, 60);
}

#[test]
fn selector_fields_sit_at_their_offsets() {
    let s = Selector::hosts(a("2001:db8::1"), a("2001:db8::3")).mh_type(5);
    let b = selector_bytes(&s);
    assert_eq!(&b[0..16], &a("2001:db8::3").octets(), "daddr first");
    assert_eq!(&b[16..32], &a("2001:db8::1").octets());
    assert_eq!(&b[32..36], &[0, 0, 0, 0], "dport, dport_mask");
    assert_eq!(
        &b[36..40],
        &[0, 5, 0xff, 0xff],
        "MH type as sport, big-endian"
    );
    assert_eq!(ne16(&b, 40), 10, "AF_INET6");
    assert_eq!((b[42], b[43], b[44]), (128, 128, 135));
    assert_eq!(&b[45..56], &[0; 11]);
}

#[test]
fn port_selectors_are_big_endian_with_full_masks_and_round_trip() {
    let s = Selector::hosts(a("2001:db8::1"), a("2001:db8::3")).ports(IPPROTO_TCP, 8000, 40001);
    let b = selector_bytes(&s);
    assert_eq!(&b[32..36], &[0x9c, 0x41, 0xff, 0xff], "dport 40001, mask");
    assert_eq!(&b[36..40], &[0x1f, 0x40, 0xff, 0xff], "sport 8000, mask");
    assert_eq!(b[44], 6, "TCP");
    let p = Policy::sub(s, Dir::Out, 15, vec![Template::ro(IPPROTO_DSTOPTS, false)]);
    let m = encode_new_policy(9, &p, false);
    let parsed = parse_datagram(&m).unwrap();
    let Some(Message::Policy { policy, .. }) = parsed.first() else {
        panic!("{parsed:?}")
    };
    assert_eq!(policy.sel, s);
    assert_eq!((policy.sel.sport, policy.sel.dport), (8000, 40001));
    // The key names the ports too: two connections of one client are two policies.
    let other = Selector::hosts(a("2001:db8::1"), a("2001:db8::3")).ports(IPPROTO_TCP, 8000, 40002);
    assert_ne!(Policy::sub(other, Dir::Out, 15, vec![]).id(), p.id());
}

#[test]
fn new_policy_layout() {
    let p = Policy::sub(
        Selector::hosts(a("2001:db8::1"), a("2001:db8::3")).mh_type(5),
        Dir::Out,
        2,
        vec![Template::ro(IPPROTO_DSTOPTS, true)],
    );
    let m = encode_new_policy(0x1234, &p, false);
    assert_eq!(m.len(), 16 + 168 + 12 + 68);
    assert_eq!(ne32(&m, 0) as usize, m.len());
    assert_eq!(ne16(&m, 4), XFRM_MSG_NEWPOLICY);
    assert_eq!(ne16(&m, 6), NLM_F_REQUEST | NLM_F_ACK);
    assert_eq!(ne32(&m, 8), 0x1234);
    let info = &m[16..16 + 168];
    assert_eq!(ne32(info, 152), 2, "priority");
    assert_eq!(info[160], 1, "dir out");
    let at = 16 + 168;
    assert_eq!(
        (ne16(&m, at), ne16(&m, at + 2)),
        (10, 16),
        "XFRMA_POLICY_TYPE"
    );
    assert_eq!(m[at + 4], 1, "sub");
    let at = at + 12;
    assert_eq!((ne16(&m, at), ne16(&m, at + 2)), (68, 5), "XFRMA_TMPL");
    let t = &m[at + 4..at + 68];
    assert_eq!(t[20], IPPROTO_DSTOPTS);
    assert_eq!(ne16(t, 24), 10);
    assert_eq!((t[48], t[50]), (XFRM_MODE_ROUTEOPTIMIZATION, 1));
    assert_eq!(&t[52..64], &[0xff; 12]);
    let m = encode_new_policy(1, &p, true);
    assert_eq!(ne16(&m, 4), XFRM_MSG_UPDPOLICY);
}

#[test]
fn new_sa_layout() {
    let s = State::ro(
        a("2001:db8::1"),
        a("2001:db8::3"),
        IPPROTO_ROUTING,
        a("2001:db8::2"),
    );
    let m = encode_new_sa(7, &s, false);
    assert_eq!(m.len(), 16 + 224 + 20);
    let info = &m[16..240];
    assert_eq!(&info[56..72], &a("2001:db8::3").octets(), "id.daddr");
    assert_eq!(info[76], IPPROTO_ROUTING);
    assert_eq!(&info[80..96], &a("2001:db8::1").octets(), "saddr");
    assert_eq!(
        &info[96..128],
        &[0xff; 32],
        "byte and packet limits infinite"
    );
    assert_eq!(&info[128..160], &[0; 32], "no time limits");
    assert_eq!(ne16(info, 212), 10);
    assert_eq!(info[214], XFRM_MODE_ROUTEOPTIMIZATION);
    assert_eq!((ne16(&m, 240), ne16(&m, 242)), (20, 14), "XFRMA_COADDR");
    assert_eq!(&m[244..260], &a("2001:db8::2").octets());
    assert_eq!(ne16(&encode_new_sa(7, &s, true), 4), XFRM_MSG_UPDSA);
}

#[test]
fn del_sa_names_the_source_in_srcaddr() {
    let id = StateId {
        dst: a("2001:db8::3"),
        src: a("2001:db8::1"),
        spi: 0,
        proto: IPPROTO_DSTOPTS,
    };
    let m = encode_del_sa(3, &id);
    assert_eq!(m.len(), 16 + 24 + 20);
    assert_eq!(ne16(&m, 4), XFRM_MSG_DELSA);
    assert_eq!(&m[16..32], &id.dst.octets());
    assert_eq!(ne16(&m, 36), 10);
    assert_eq!(m[38], IPPROTO_DSTOPTS);
    assert_eq!((ne16(&m, 40), ne16(&m, 42)), (20, 13), "XFRMA_SRCADDR");
    assert_eq!(&m[44..60], &id.src.octets());
    let g = encode_get_sa(4, &id);
    assert_eq!(ne16(&g, 4), XFRM_MSG_GETSA);
    assert_eq!(
        ne16(&g, 6),
        NLM_F_REQUEST,
        "a get wants the state, not an ack"
    );
}

#[test]
fn policy_round_trips_through_the_parser() {
    let mut p = Policy::sub(
        Selector::hosts(a("2001:db8::1"), Ipv6Addr::UNSPECIFIED).icmp6_type(136),
        Dir::Fwd,
        19,
        vec![
            Template::ro(IPPROTO_ROUTING, false),
            Template::trigger(IPPROTO_DSTOPTS),
        ],
    );
    p.action = PolicyAction::Block;
    // The kernel answers a dump with NEWPOLICY messages of the same layout.
    let m = encode_new_policy(9, &p, false);
    let got = parse_datagram(&m).unwrap();
    let Message::Policy { seq, policy } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(*seq, 9);
    let mut expect = p.clone();
    expect.current = Some(LifetimeCur::default());
    assert_eq!(policy, &expect);
}

#[test]
fn state_round_trips_with_coaddr_and_lastused() {
    let s = State::wildcard_receive(IPPROTO_DSTOPTS);
    let mut m = encode_new_sa(5, &s, false);
    // Append XFRMA_LASTUSED as the kernel does on GETSA.
    m.extend_from_slice(&12u16.to_ne_bytes());
    m.extend_from_slice(&15u16.to_ne_bytes());
    m.extend_from_slice(&1_700_000_000u64.to_ne_bytes());
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    let got = parse_datagram(&m).unwrap();
    let Message::State { state, .. } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(state.flags, XFRM_STATE_WILDRECV);
    assert_eq!(state.coaddr, Some(Ipv6Addr::UNSPECIFIED));
    assert_eq!(state.last_used, Some(1_700_000_000));
    assert_eq!(state.id, s.id);
    assert_eq!(state.sel, s.sel);
}

fn error_msg(seq: u32, errno: i32, reason: Option<&str>) -> Vec<u8> {
    // nlmsgerr with a capped echo of a request header, then extended-ack TLVs.
    let mut body = Vec::new();
    body.extend_from_slice(&(-errno).to_ne_bytes());
    let mut echoed = [0u8; 16];
    echoed[0..4].copy_from_slice(&276u32.to_ne_bytes());
    echoed[8..12].copy_from_slice(&seq.to_ne_bytes());
    body.extend_from_slice(&echoed);
    let mut flags = 0x100u16;
    if let Some(r) = reason {
        flags |= 0x200;
        let mut v = r.as_bytes().to_vec();
        v.push(0);
        body.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(&v);
        body.resize((body.len() + 3) & !3, 0);
    }
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&2u16.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&body);
    m
}

#[test]
fn errors_carry_errno_and_the_extended_ack_reason() {
    let got = parse_datagram(&error_msg(
        42,
        libc::ENOPROTOOPT,
        Some("Requested type not found"),
    ))
    .unwrap();
    assert_eq!(
        got,
        vec![Message::Error {
            seq: 42,
            errno: libc::ENOPROTOOPT,
            reason: Some("Requested type not found".into())
        }]
    );
    let got = parse_datagram(&error_msg(43, 0, None)).unwrap();
    assert_eq!(got, vec![Message::Ack { seq: 43 }]);
    let e: io::Error = XfrmError {
        op: "XFRM_MSG_NEWSA",
        errno: libc::ENOPROTOOPT,
        reason: Some("Requested type not found".into()),
    }
    .into();
    assert_eq!(errno(&e), Some(libc::ENOPROTOOPT));
    assert!(e.to_string().contains("Requested type not found"), "{e}");
}

#[test]
fn report_and_acquire_parse() {
    let sel = Selector::hosts(a("2001:db8::10"), a("2001:db8::20"));
    let mut body = vec![IPPROTO_DSTOPTS, 0, 0, 0];
    body.extend_from_slice(&selector_bytes(&sel));
    body.extend_from_slice(&20u16.to_ne_bytes());
    body.extend_from_slice(&14u16.to_ne_bytes());
    body.extend_from_slice(&a("2001:db8::99").octets());
    let mut m = MsgBuilder::new(XFRM_MSG_REPORT, 0, 0).body(&body).finish();
    let got = parse_datagram(&m).unwrap();
    assert_eq!(
        got,
        vec![Message::Report(Report {
            proto: IPPROTO_DSTOPTS,
            sel,
            coaddr: Some(a("2001:db8::99")),
        })]
    );
    // A report cut short is an error, not a panic.
    m.truncate(40);
    let l = m.len() as u32;
    m[..4].copy_from_slice(&l.to_ne_bytes());
    assert!(parse_datagram(&m).is_err());

    let pol = Policy::sub(sel, Dir::In, 18, vec![Template::trigger(IPPROTO_ROUTING)]);
    let mut acq = vec![0u8; USER_ACQUIRE_LEN];
    acq[0..16].copy_from_slice(&a("2001:db8::20").octets());
    acq[20] = IPPROTO_ROUTING;
    acq[24..40].copy_from_slice(&a("2001:db8::10").octets());
    acq[40..96].copy_from_slice(&selector_bytes(&sel));
    let mut pm = encode_new_policy(0, &pol, false);
    acq[96..264].copy_from_slice(&pm[16..184]);
    acq[276..280].copy_from_slice(&77u32.to_ne_bytes());
    let attrs = pm.split_off(184);
    let m = MsgBuilder::new(XFRM_MSG_ACQUIRE, 0, 0)
        .body(&acq)
        .body(&attrs)
        .finish();
    let got = parse_datagram(&m).unwrap();
    let Message::Acquire(acq) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(acq.dst, a("2001:db8::20"));
    assert_eq!(acq.src, a("2001:db8::10"));
    assert_eq!(acq.seq, 77);
    assert_eq!(acq.policy.priority, 18);
    assert_eq!(acq.policy.templates, pol.templates);
    assert_eq!(acq.policy.ptype, PolicyType::Sub);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    // Lengths that lie, in the message header and in an attribute.
    let mut m = encode_new_policy(1, &Policy::sub(Selector::any(), Dir::In, 1, vec![]), false);
    let bad_len = (m.len() as u32 + 4).to_ne_bytes();
    let mut lying = m.clone();
    lying[..4].copy_from_slice(&bad_len);
    assert!(parse_datagram(&lying).is_err());
    m[184..186].copy_from_slice(&200u16.to_ne_bytes());
    assert!(parse_datagram(&m).is_err());
    // An errno of i32::MIN has no positive counterpart.
    let mut e = error_msg(1, 0, None);
    e[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
    assert!(parse_datagram(&e).is_err());
    // Templates that are not a whole number of structures.
    let p = Policy::sub(Selector::any(), Dir::In, 1, vec![Template::ro(43, true)]);
    let mut m = encode_new_policy(1, &p, false);
    let at = 16 + 168 + 12;
    m[at..at + 2].copy_from_slice(&60u16.to_ne_bytes());
    assert!(parse_datagram(&m).is_err());
    for n in 0..64 {
        let _ = parse_datagram(&vec![0xffu8; n]);
        let _ = parse_datagram(&vec![0u8; n]);
    }
}

#[test]
fn flush_messages() {
    let m = encode_flush_sa(1, IPSEC_PROTO_ANY);
    assert_eq!(encode_flush_sa(1, 0)[16], 0);
    assert_eq!(m.len(), 17);
    assert_eq!(ne32(&m, 0), 17);
    assert_eq!(ne16(&m, 4), XFRM_MSG_FLUSHSA);
    assert_eq!(m[16], 255);
    let m = encode_flush_policy(1, PolicyType::Sub);
    assert_eq!(ne16(&m, 4), XFRM_MSG_FLUSHPOLICY);
    assert_eq!((ne16(&m, 16), ne16(&m, 18), m[20]), (10, 16, 1));
}
