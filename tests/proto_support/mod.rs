//! Shared test scaffolding for the protocol state machines: a mobile-node stub that
//! runs return routability and builds authenticated Binding Updates, and helpers to
//! feed packets in and pick actions apart.
#![allow(dead_code)]

use mip6d::crypto::rr::{self, KeygenToken};
use mip6d::proto::event::{Action, Event, Inbound, Transmit};
use mip6d::wire::mh::{self, BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use std::net::Ipv6Addr;
use std::time::Instant;

pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Anything with the sans-IO shape.
pub trait Machine {
    fn handle_event(&mut self, e: Event<'_>, now: Instant);
    fn next_action(&mut self) -> Option<Action>;
}

impl Machine for mip6d::proto::cn::Cn {
    fn handle_event(&mut self, e: Event<'_>, now: Instant) {
        self.handle(e, now)
    }
    fn next_action(&mut self) -> Option<Action> {
        self.poll_action()
    }
}

impl Machine for mip6d::proto::ha::Ha {
    fn handle_event(&mut self, e: Event<'_>, now: Instant) {
        self.handle(e, now)
    }
    fn next_action(&mut self) -> Option<Action> {
        self.poll_action()
    }
}

/// Parses `raw` as the receiver would and hands it over.
pub fn deliver<M: Machine>(
    m: &mut M,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hao: Option<Ipv6Addr>,
    raw: &[u8],
    now: Instant,
) {
    // The checksum was computed over the home address when a HAO is present.
    let repr = MhRepr::parse_checked(raw, &hao.unwrap_or(src), &dst).expect("test packet parses");
    m.handle_event(
        Event::Mh(Inbound {
            src,
            dst,
            hao,
            repr: &repr,
            raw,
        }),
        now,
    );
}

pub fn drain<M: Machine>(m: &mut M) -> Vec<Action> {
    std::iter::from_fn(|| m.next_action()).collect()
}

pub fn sends(actions: &[Action]) -> Vec<Transmit> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// (status, sequence, lifetime units) of the only BA among `actions`.
pub fn only_ba(actions: &[Action]) -> (u8, u16, u16, Transmit) {
    let bas: Vec<_> = sends(actions)
        .into_iter()
        .filter(|t| matches!(t.repr.message, Message::BindingAck { .. }))
        .collect();
    assert_eq!(bas.len(), 1, "expected exactly one BA in {actions:#?}");
    let t = bas.into_iter().next().unwrap();
    // What we send must parse back as what we say we sent, checksum included.
    let final_dst = t.rh2.unwrap_or(t.dst);
    assert_eq!(
        MhRepr::parse_checked(&t.bytes, &t.src, &final_dst)
            .unwrap()
            .message,
        t.repr.message
    );
    match t.repr.message {
        Message::BindingAck {
            status,
            sequence,
            lifetime_units,
            ..
        } => (status, sequence, lifetime_units, t),
        _ => unreachable!(),
    }
}

pub fn has_auth(t: &Transmit) -> bool {
    t.repr
        .options
        .iter()
        .any(|o| matches!(o, MobilityOption::BindingAuthData(_)))
}

/// A mobile node, as far as route optimisation with one correspondent goes.
pub struct MnStub {
    pub hoa: Ipv6Addr,
    pub coa: Ipv6Addr,
    pub cn: Ipv6Addr,
    pub home: Option<(u16, KeygenToken)>,
    pub care_of: Option<(u16, KeygenToken)>,
}

impl MnStub {
    pub fn new(hoa: &str, coa: &str, cn: &str) -> Self {
        MnStub {
            hoa: a(hoa),
            coa: a(coa),
            cn: a(cn),
            home: None,
            care_of: None,
        }
    }

    fn test_init(message: Message, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        MhRepr {
            message,
            options: vec![],
        }
        .to_bytes(src, dst)
    }

    /// HoTI (through the tunnel, so from the home address) → HoT; keeps the token.
    pub fn home_test<M: Machine>(&mut self, m: &mut M, now: Instant) -> Vec<Action> {
        let cookie = [0x11; 8];
        let raw = Self::test_init(Message::HomeTestInit { cookie }, &self.hoa, &self.cn);
        deliver(m, self.hoa, self.cn, None, &raw, now);
        let actions = drain(m);
        for t in sends(&actions) {
            if let Message::HomeTest {
                nonce_index,
                cookie: c,
                keygen_token,
            } = t.repr.message
            {
                assert_eq!(c, cookie, "HoT echoes the cookie");
                assert_eq!(
                    (t.src, t.dst, t.rh2),
                    (self.cn, self.hoa, None),
                    "HoT goes to the HoA"
                );
                self.home = Some((nonce_index, keygen_token));
            }
        }
        actions
    }

    /// CoTI (directly, from the care-of address) → CoT; keeps the token.
    pub fn care_of_test<M: Machine>(&mut self, m: &mut M, now: Instant) -> Vec<Action> {
        let cookie = [0x22; 8];
        let raw = Self::test_init(Message::CareOfTestInit { cookie }, &self.coa, &self.cn);
        deliver(m, self.coa, self.cn, None, &raw, now);
        let actions = drain(m);
        for t in sends(&actions) {
            if let Message::CareOfTest {
                nonce_index,
                cookie: c,
                keygen_token,
            } = t.repr.message
            {
                assert_eq!(c, cookie, "CoT echoes the cookie");
                assert_eq!(
                    (t.src, t.dst, t.rh2),
                    (self.cn, self.coa, None),
                    "CoT goes to the CoA"
                );
                self.care_of = Some((nonce_index, keygen_token));
            }
        }
        actions
    }

    pub fn rr<M: Machine>(&mut self, m: &mut M, now: Instant) {
        self.home_test(m, now);
        self.care_of_test(m, now);
        assert!(
            self.home.is_some() && self.care_of.is_some(),
            "RR completed"
        );
    }

    pub fn kbm(&self, delete: bool) -> rr::Kbm {
        let home = self.home.expect("home token").1;
        if delete {
            rr::kbm(&home, None)
        } else {
            rr::kbm(&home, Some(&self.care_of.expect("care-of token").1))
        }
    }

    /// A BU as RFC 6275 §11.7.2 builds it: Nonce Indices, then Binding Authorization
    /// Data, authenticator over (CoA | CN | MH data).
    pub fn bu_bytes(&self, seq: u16, flags: BuFlags, lifetime_units: u16) -> Vec<u8> {
        let delete = lifetime_units == 0 || self.coa == self.hoa;
        let options = vec![
            MobilityOption::NonceIndices {
                home: self.home.map_or(0, |h| h.0),
                care_of: if delete {
                    0
                } else {
                    self.care_of.map_or(0, |c| c.0)
                },
            },
            MobilityOption::BindingAuthData([0; 12]),
        ];
        self.bu_with_options(seq, flags, lifetime_units, options, self.coa)
    }

    pub fn bu_with_options(
        &self,
        seq: u16,
        flags: BuFlags,
        lifetime_units: u16,
        options: Vec<MobilityOption>,
        auth_coa: Ipv6Addr,
    ) -> Vec<u8> {
        let delete = lifetime_units == 0 || auth_coa == self.hoa;
        let repr = MhRepr {
            message: Message::BindingUpdate {
                sequence: seq,
                flags,
                lifetime_units,
            },
            options,
        };
        let mut buf = vec![0; repr.buffer_len()];
        let kbm = if self.home.is_some() {
            Some(self.kbm(delete))
        } else {
            None
        };
        // The checksum pseudo-header uses the home address (HAO present, §6.1.1).
        repr.emit_with_authenticator(&mut buf, &self.hoa, &self.cn, |covered| {
            rr::authenticator(&kbm.expect("tokens"), &auth_coa, &self.cn, covered)
        });
        buf
    }

    /// Sends a BU from the care-of address with a Home Address option (or from the home
    /// address without one when at home).
    pub fn send<M: Machine>(&self, m: &mut M, raw: &[u8], now: Instant) -> Vec<Action> {
        let hao = (self.coa != self.hoa).then_some(self.hoa);
        deliver(m, self.coa, self.cn, hao, raw, now);
        drain(m)
    }

    pub fn bu<M: Machine>(
        &self,
        m: &mut M,
        seq: u16,
        lifetime_units: u16,
        now: Instant,
    ) -> Vec<Action> {
        let raw = self.bu_bytes(seq, ack(), lifetime_units);
        self.send(m, &raw, now)
    }

    /// Whether a BA carries a valid authenticator for this MN's current Kbm.
    pub fn ba_authentic(&self, t: &Transmit, delete: bool, coa: Ipv6Addr) -> bool {
        let Some((covered, auth)) = mh::auth_data_region(&t.bytes) else {
            return false;
        };
        rr::verify_authenticator(&self.kbm(delete), &coa, &self.cn, &covered, &auth)
    }
}

pub fn ack() -> BuFlags {
    BuFlags {
        a: true,
        ..BuFlags::default()
    }
}
