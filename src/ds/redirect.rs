//! Redirecting a handed-off connection's client with Mobile IPv6, sans-IO: the client's
//! mip6d (correspondent node role) binds the DSA to the acceptor's address.
//!
//! The DSA is a home address the contact node registered with the home agent (its
//! mip6d runs the mobile node role for it, `proto::mn`); only the contact node receives
//! what the home agent tunnels for it. So the return routability test is split
//! (RFC 6275 §5.2.5 needs the home test to go through the home address):
//!
//! ```text
//! contact (holds the HA binding)    client (CN)                 acceptor
//!  HoTI (DSA→client, in the tunnel) ─▶
//!                                   ◀─ HoT (to DSA, via the HA tunnel)
//!  home keygen token + nonce index travel in the ConnState (`home_keygen`) ─────────▶
//!                                   ◀───────────────────────────────── CoTI (from CoA)
//!                                   ──────────────────────────────────▶ CoT
//!                                   ◀───── BU (src CoA, HAO = DSA, seq > the donor's, BAD)
//!                                   ──────────────────────────────────▶ BA (RH2 = DSA)
//! ```
//!
//! [`HomeTest`] is the contact's half (it can run before the donor freezes: a home token
//! stays usable for `MAX_TOKEN_LIFETIME`), [`Binder`] the acceptor's. The Binder's
//! timings are the seed's phases 4–6: return routability (the care-of test), BU
//! construction, binding management (BU → accepted BA).
//!
//! **A plain RFC 6275 client rebinds every connection to the DSA** (the seed's §3.1.2
//! limitation): its binding cache is keyed by home address, so after the handoff all of
//! the client's traffic to the DSA — other connections, new ones — goes to the acceptor,
//! which serves only the handed-off 5-tuple (`datapath::conn_binding`). Per-flow bindings
//! (RFC 6089) would lift this.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::conn_state::HomeKeygen;
use super::handoff::RedirectTimes;
use super::phases::PhaseTime;
use crate::crypto::rr::{self, Cookie, Kbm};
use crate::proto::cn::status;
use crate::proto::event::Transmit;
use crate::proto::mn::mn_transmit;
use crate::wire::mh::{self, BuFlags, Message, MhRepr};
use crate::wire::mh_option::MobilityOption;
use crate::wire::packet::{self, Header};

/// Retransmission interval of a test init or a BU (RFC 6275 §12
/// INITIAL_BINDACK_TIMEOUT is 1 s; a handoff cannot wait that long on a LAN, and the
/// donor's Done timeout bounds the whole anyway).
pub const RETRANSMIT: Duration = Duration::from_millis(200);
/// Sends before giving up.
pub const MAX_SENDS: u32 = 5;
/// Requested binding lifetime: the longest a return-routability binding may have
/// (RFC 6275 §12 MAX_RR_BINDING_LIFETIME, 420 s).
pub const LIFETIME: Duration = Duration::from_secs(420);

/// Whether `payload` (a whole IPv6 packet) carries a Mobility Header with a good
/// checksum; returns it with the IPv6 source.
fn mobility(payload: &[u8]) -> Option<(Ipv6Addr, MhRepr, Vec<u8>, Option<Ipv6Addr>)> {
    let pkt = packet::parse(payload).ok()?;
    let rh2 = pkt.headers.iter().find_map(|h| match h {
        Header::Type2Routing(r) => Some(r.home_address),
        _ => None,
    });
    pkt.headers.iter().find_map(|h| match h {
        Header::Mobility {
            repr,
            checksum_ok: true,
            offset,
        } => {
            let end = offset.saturating_add(repr.buffer_len()).min(payload.len());
            let raw = payload.get(*offset..end)?.to_vec();
            Some((pkt.ip.src, repr.clone(), raw, rh2))
        }
        _ => None,
    })
}

/// The contact node's home test for the DSA with one client.
#[derive(Debug)]
pub struct HomeTest {
    dsa: Ipv6Addr,
    cn: Ipv6Addr,
    /// (contact's care-of address, home agent): the tunnel the HoTI goes through.
    tunnel: (Ipv6Addr, Ipv6Addr),
    cookie: Cookie,
    sends: u32,
    next: Instant,
    started: Instant,
}

impl HomeTest {
    /// Starts the test; send the returned HoTI (through the tunnel).
    pub fn start(
        dsa: Ipv6Addr,
        cn: Ipv6Addr,
        tunnel: (Ipv6Addr, Ipv6Addr),
        cookie: Cookie,
        now: Instant,
    ) -> (HomeTest, Transmit) {
        let mut t = HomeTest {
            dsa,
            cn,
            tunnel,
            cookie,
            sends: 0,
            next: now,
            started: now,
        };
        let hoti = t.hoti(now);
        (t, hoti)
    }

    fn hoti(&mut self, now: Instant) -> Transmit {
        self.sends += 1;
        self.next = now + RETRANSMIT;
        let repr = MhRepr {
            message: Message::HomeTestInit {
                cookie: self.cookie,
            },
            options: vec![],
        };
        mn_transmit(self.dsa, self.cn, None, Some(self.tunnel), repr, None)
    }

    pub fn client(&self) -> Ipv6Addr {
        self.cn
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// A Mobility Header that arrived for the DSA, as `(source, header bytes)`: the
    /// token when it is the Home Test answering our HoTI (§11.6.2: the cookie matches).
    pub fn handle_mh(&mut self, src: Ipv6Addr, bytes: &[u8]) -> Option<HomeKeygen> {
        if src != self.cn {
            return None;
        }
        let repr = MhRepr::parse_checked(bytes, &src, &self.dsa).ok()?;
        match repr.message {
            Message::HomeTest {
                nonce_index,
                cookie,
                keygen_token,
            } if cookie == self.cookie => Some(HomeKeygen {
                nonce_index,
                token: keygen_token,
            }),
            _ => None,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.sends < MAX_SENDS).then_some(self.next)
    }

    /// The retransmission due at `now`, if any; `Err` once the test gave up.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<Transmit>, String> {
        if now < self.next {
            return Ok(None);
        }
        if self.sends >= MAX_SENDS {
            return Err(format!(
                "home test with {}: no Home Test after {MAX_SENDS} tries",
                self.cn
            ));
        }
        Ok(Some(self.hoti(now)))
    }
}

/// The Binding Update that deletes `cn`'s binding for the DSA (RFC 6275 §5.2.6): from the
/// DSA itself, lifetime zero, no acknowledgement asked, authorised by the home keygen
/// token alone. What the contact node sends when a connection comes back to it (its
/// traffic then flows through the home agent's tunnel again), and what
/// [`Binder::release`] sends when the connection ends.
pub fn unbind(dsa: Ipv6Addr, cn: Ipv6Addr, home: &HomeKeygen, sequence: u16) -> Transmit {
    let kbm = rr::kbm(&home.token, None);
    let repr = MhRepr {
        message: Message::BindingUpdate {
            sequence,
            flags: BuFlags::default(),
            lifetime_units: 0,
        },
        options: vec![
            MobilityOption::NonceIndices {
                home: home.nonce_index,
                care_of: 0,
            },
            MobilityOption::BindingAuthData([0; 12]),
        ],
    };
    mn_transmit(dsa, cn, None, None, repr, Some((&kbm, dsa)))
}

#[derive(Debug)]
enum Stage {
    CareOfTest,
    Ack {
        kbm: Kbm,
        sequence: u16,
        care_index: u16,
    },
    Bound,
    Released,
    Failed,
}

/// What the acceptor's binder asks for.
#[derive(Debug)]
pub enum BinderAction {
    /// Send this (from the care-of address: no tunnel).
    Send(Transmit),
    /// The client accepted the binding; the three redirect phases.
    Bound { sequence: u16, times: RedirectTimes },
    /// The client refused, or never answered.
    Failed(String),
}

/// The acceptor's half: care-of test, Binding Update, Binding Acknowledgement.
#[derive(Debug)]
pub struct Binder {
    dsa: Ipv6Addr,
    coa: Ipv6Addr,
    cn: Ipv6Addr,
    home: HomeKeygen,
    /// The sequence number the BU carries.
    sequence: u16,
    cookie: Cookie,
    stage: Stage,
    sends: u32,
    next: Instant,
    started: Instant,
    rr: Option<Duration>,
    construction: Option<Duration>,
    bu_sent: Option<Instant>,
    /// Whether a status 135 already moved the sequence number.
    resynced: bool,
}

impl Binder {
    /// Starts with the care-of test. `last_sequence` is the newest BU sequence number the
    /// donor side used with this client for the DSA (ConnState's `bu_sequence`); without
    /// one, `fresh_sequence` (random) is used.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        dsa: Ipv6Addr,
        coa: Ipv6Addr,
        cn: Ipv6Addr,
        home: HomeKeygen,
        last_sequence: Option<u16>,
        fresh_sequence: u16,
        cookie: Cookie,
        now: Instant,
    ) -> (Binder, Vec<BinderAction>) {
        let mut b = Binder {
            dsa,
            coa,
            cn,
            home,
            sequence: last_sequence.map_or(fresh_sequence, |s| s.wrapping_add(1)),
            cookie,
            stage: Stage::CareOfTest,
            sends: 0,
            next: now,
            started: now,
            rr: None,
            construction: None,
            bu_sent: None,
            resynced: false,
        };
        let coti = b.coti(now);
        (b, vec![BinderAction::Send(coti)])
    }

    /// The sequence number of the Binding Update.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    pub fn is_bound(&self) -> bool {
        matches!(self.stage, Stage::Bound)
    }

    fn coti(&mut self, now: Instant) -> Transmit {
        self.sends += 1;
        self.next = now + RETRANSMIT;
        let repr = MhRepr {
            message: Message::CareOfTestInit {
                cookie: self.cookie,
            },
            options: vec![],
        };
        mn_transmit(self.coa, self.cn, None, None, repr, None)
    }

    fn bu(&mut self, kbm: &Kbm, care_index: u16, now: Instant) -> Transmit {
        self.sends += 1;
        self.next = now + RETRANSMIT;
        let units = (LIFETIME.as_secs() / u64::from(mh::TIME_UNIT_SECS)) as u16;
        let repr = MhRepr {
            message: Message::BindingUpdate {
                sequence: self.sequence,
                flags: BuFlags {
                    a: true,
                    ..BuFlags::default()
                },
                lifetime_units: units,
            },
            options: vec![
                MobilityOption::NonceIndices {
                    home: self.home.nonce_index,
                    care_of: care_index,
                },
                MobilityOption::BindingAuthData([0; 12]),
            ],
        };
        mn_transmit(
            self.coa,
            self.cn,
            Some(self.dsa),
            None,
            repr,
            Some((kbm, self.coa)),
        )
    }

    /// A whole IPv6 packet from the client (the Care-of Test, or the Binding
    /// Acknowledgement with its Type 2 Routing Header). Anything else is ignored.
    pub fn handle_packet(&mut self, payload: &[u8], now: Instant) -> Vec<BinderAction> {
        let Some((src, repr, raw, rh2)) = mobility(payload) else {
            return vec![];
        };
        if src != self.cn {
            return vec![];
        }
        match (&self.stage, &repr.message) {
            (
                Stage::CareOfTest,
                Message::CareOfTest {
                    nonce_index,
                    cookie,
                    keygen_token,
                },
            ) if *cookie == self.cookie && rh2.is_none() => {
                let t = Instant::now();
                self.rr = Some(now.saturating_duration_since(self.started));
                let kbm = rr::kbm(&self.home.token, Some(keygen_token));
                self.sends = 0;
                let bu = self.bu(&kbm, *nonce_index, now);
                self.construction = Some(t.elapsed());
                self.bu_sent = Some(now);
                self.stage = Stage::Ack {
                    kbm,
                    sequence: self.sequence,
                    care_index: *nonce_index,
                };
                vec![BinderAction::Send(bu)]
            }
            (
                Stage::Ack {
                    kbm,
                    sequence,
                    care_index,
                },
                Message::BindingAck {
                    status: st,
                    sequence: seq,
                    ..
                },
            ) if rh2 == Some(self.dsa) => {
                if *st == status::SEQUENCE_OUT_OF_WINDOW {
                    // Unauthenticated numbers are not believed; the BA is, with our Kbm.
                    let (kbm, care_index, last) = (*kbm, *care_index, *seq);
                    return self.resync(last, care_index, &raw, kbm, now);
                }
                if seq != sequence {
                    return vec![];
                }
                let kbm = *kbm;
                if !self.authentic(&raw, &kbm) {
                    return vec![];
                }
                if *st >= 128 {
                    self.stage = Stage::Failed;
                    return vec![BinderAction::Failed(format!(
                        "{} refused the binding of {} to {}: status {st}",
                        self.cn, self.dsa, self.coa
                    ))];
                }
                self.stage = Stage::Bound;
                let times = RedirectTimes {
                    return_routability: self.rr.map_or(PhaseTime::Skipped, PhaseTime::took),
                    bu_construction: self
                        .construction
                        .map_or(PhaseTime::Skipped, PhaseTime::took),
                    binding_management: PhaseTime::took(
                        now.saturating_duration_since(self.bu_sent.unwrap_or(now)),
                    ),
                };
                vec![BinderAction::Bound {
                    sequence: self.sequence,
                    times,
                }]
            }
            _ => vec![],
        }
    }

    fn authentic(&self, raw: &[u8], kbm: &Kbm) -> bool {
        mh::auth_data_region(raw).is_some_and(|(covered, received)| {
            rr::verify_authenticator(kbm, &self.coa, &self.cn, &covered, &received)
        })
    }

    /// Status 135 carries the last sequence number the client accepted (§9.5.1): the
    /// client still remembers a binding for the DSA this node never heard of (a deletion
    /// by another acceptor, a fresh random start). Once, with the same nonces, the BU
    /// goes again one past it; a second refusal means someone keeps binding concurrently.
    fn resync(
        &mut self,
        last: u16,
        care_index: u16,
        raw: &[u8],
        kbm: Kbm,
        now: Instant,
    ) -> Vec<BinderAction> {
        if !self.authentic(raw, &kbm) {
            return vec![];
        }
        if self.resynced {
            self.stage = Stage::Failed;
            return vec![BinderAction::Failed(format!(
                "{} refused BU sequence {} for {}: status 135 twice (last accepted {last})",
                self.cn, self.sequence, self.dsa
            ))];
        }
        self.resynced = true;
        self.sequence = last.wrapping_add(1);
        self.sends = 0;
        let bu = self.bu(&kbm, care_index, now);
        self.bu_sent = Some(now);
        self.stage = Stage::Ack {
            kbm,
            sequence: self.sequence,
            care_index,
        };
        vec![BinderAction::Send(bu)]
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        matches!(self.stage, Stage::CareOfTest | Stage::Ack { .. }).then_some(self.next)
    }

    /// Once the connection is over: the Binding Update that deletes the client's binding
    /// (§5.2.6: from the DSA itself, lifetime zero, authorised by the home token alone;
    /// no acknowledgement asked), so the client's next connection to the DSA goes to the
    /// contact node again. Its sequence number is one past the binding's; the client
    /// keeps it while the nonces are valid (§5.2.8), so whoever binds next for this
    /// client must go past [`Binder::sequence`] + 1. `None` unless bound. The home
    /// token must still be usable (`MAX_TOKEN_LIFETIME`); otherwise the binding just
    /// expires ([`LIFETIME`]).
    pub fn release(&mut self) -> Option<Transmit> {
        if !self.is_bound() {
            return None;
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.stage = Stage::Released;
        Some(unbind(self.dsa, self.cn, &self.home, self.sequence))
    }

    /// The home keygen token the binding was made with (it travels on if the
    /// connection is handed on).
    pub fn home(&self) -> HomeKeygen {
        self.home
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<BinderAction> {
        if now < self.next || !matches!(self.stage, Stage::CareOfTest | Stage::Ack { .. }) {
            return vec![];
        }
        if self.sends >= MAX_SENDS {
            let what = match self.stage {
                Stage::CareOfTest => "Care-of Test",
                _ => "Binding Acknowledgement",
            };
            self.stage = Stage::Failed;
            return vec![BinderAction::Failed(format!(
                "no {what} from {} after {MAX_SENDS} tries",
                self.cn
            ))];
        }
        match self.stage {
            Stage::CareOfTest => vec![BinderAction::Send(self.coti(now))],
            Stage::Ack {
                kbm, care_index, ..
            } => {
                // The same sequence number: the BA answers whichever copy arrived.
                vec![BinderAction::Send(self.bu(&kbm, care_index, now))]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests;
