//! The membership messages in bytes: the payload of a `crypto::auth` frame.
//!
//! Big-endian, fixed layouts, one type byte first. Decoding is strict — an unknown type,
//! a short or over-long message, members out of rank order, a duplicate node or a count
//! above the limits is an error — and never panics or allocates more than the limits
//! allow, whatever the bytes.

use super::view::{Member, NodeId, View, MAX_MEMBERS};
use std::fmt;

/// The `kind` byte of the auth frames that carry membership messages.
pub const FRAME_KIND: u8 = 0x4d;

/// A contact node's snode list is capped so a list always fits one UDP datagram.
pub const MAX_SNODES: usize = 1024;

/// One membership message. The sender is the frame's authenticated sender id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Every backup, to every other backup of its view, each heartbeat interval.
    Heartbeat {
        epoch: u64,
    },
    /// Two-phase commit, phase one: "promise to ignore ballots below `ballot` for the view
    /// that follows `base`". Carries `base` so a lagging acceptor catches up.
    Prepare {
        ballot: u64,
        base: View,
    },
    /// The answer to a Prepare, with what the acceptor already accepted after `base`.
    Promise {
        ballot: u64,
        base_epoch: u64,
        accepted: Option<View>,
    },
    /// "I promised a higher ballot."
    Nack {
        ballot: u64,
        promised: u64,
    },
    /// Phase two: "accept `view` (its epoch is the ballot) as the successor of `base`".
    Accept {
        base: View,
        view: View,
    },
    Accepted {
        ballot: u64,
    },
    /// A view a majority accepted.
    Commit {
        view: View,
    },
    /// "Send me your committed view; mine is `epoch`."
    SyncRequest {
        epoch: u64,
    },
    /// A backup asks to join (sent to the DSA, i.e. to whoever is the contact).
    Join,
    /// A backup that is not the contact redirects joins and registrations.
    ContactIs {
        epoch: u64,
        contact: NodeId,
    },
    /// The seed's "we consider you to have failed, please join again".
    NotMember {
        epoch: u64,
    },
    /// An snode registers with the contact.
    Register,
    /// The contact's answer to a registration, also sent to every known snode when a node
    /// becomes contact.
    Registered {
        epoch: u64,
    },
    /// The contact's snode list, sent to its backups when it changes (no two-phase
    /// commit: the seed's lightweight snode protocol).
    Snodes {
        epoch: u64,
        snodes: Vec<NodeId>,
    },
}

mod ty {
    pub const HEARTBEAT: u8 = 1;
    pub const PREPARE: u8 = 2;
    pub const PROMISE: u8 = 3;
    pub const NACK: u8 = 4;
    pub const ACCEPT: u8 = 5;
    pub const ACCEPTED: u8 = 6;
    pub const COMMIT: u8 = 7;
    pub const SYNC_REQUEST: u8 = 8;
    pub const JOIN: u8 = 9;
    pub const CONTACT_IS: u8 = 10;
    pub const NOT_MEMBER: u8 = 11;
    pub const REGISTER: u8 = 12;
    pub const REGISTERED: u8 = 13;
    pub const SNODES: u8 = 14;
}

/// Why bytes are not a membership message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    UnknownType(u8),
    TrailingBytes,
    TooMany,
    /// Members not in strictly increasing rank order, a rank not below `next_rank`, or a
    /// node listed twice.
    BadView,
    BadFlag(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes"),
            DecodeError::TooMany => f.write_str("list longer than allowed"),
            DecodeError::BadView => f.write_str("inconsistent view"),
            DecodeError::BadFlag(b) => write!(f, "bad flag byte {b}"),
        }
    }
}

impl std::error::Error for DecodeError {}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn view(&mut self) -> Result<View, DecodeError> {
        let epoch = self.u64()?;
        let next_rank = self.u32()?;
        let dsa_seq = self.u16()?;
        let n = usize::from(self.u8()?);
        if n > MAX_MEMBERS {
            return Err(DecodeError::TooMany);
        }
        let mut members: Vec<Member> = Vec::with_capacity(n);
        for _ in 0..n {
            let node = self.u32()?;
            let rank = self.u32()?;
            let ordered = members.last().map_or(true, |l| l.rank < rank);
            if !ordered || rank >= next_rank || members.iter().any(|m| m.node == node) {
                return Err(DecodeError::BadView);
            }
            members.push(Member { node, rank });
        }
        Ok(View {
            epoch,
            members,
            next_rank,
            dsa_seq,
        })
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

fn put_view(out: &mut Vec<u8>, v: &View) {
    out.extend_from_slice(&v.epoch.to_be_bytes());
    out.extend_from_slice(&v.next_rank.to_be_bytes());
    out.extend_from_slice(&v.dsa_seq.to_be_bytes());
    // A view is built by `Node`, which never lets it exceed MAX_MEMBERS.
    let n = v.members.len().min(MAX_MEMBERS);
    out.push(n as u8);
    for m in &v.members[..n] {
        out.extend_from_slice(&m.node.to_be_bytes());
        out.extend_from_slice(&m.rank.to_be_bytes());
    }
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            Message::Heartbeat { epoch } => {
                out.push(ty::HEARTBEAT);
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Message::Prepare { ballot, base } => {
                out.push(ty::PREPARE);
                out.extend_from_slice(&ballot.to_be_bytes());
                put_view(&mut out, base);
            }
            Message::Promise {
                ballot,
                base_epoch,
                accepted,
            } => {
                out.push(ty::PROMISE);
                out.extend_from_slice(&ballot.to_be_bytes());
                out.extend_from_slice(&base_epoch.to_be_bytes());
                match accepted {
                    None => out.push(0),
                    Some(v) => {
                        out.push(1);
                        put_view(&mut out, v);
                    }
                }
            }
            Message::Nack { ballot, promised } => {
                out.push(ty::NACK);
                out.extend_from_slice(&ballot.to_be_bytes());
                out.extend_from_slice(&promised.to_be_bytes());
            }
            Message::Accept { base, view } => {
                out.push(ty::ACCEPT);
                put_view(&mut out, base);
                put_view(&mut out, view);
            }
            Message::Accepted { ballot } => {
                out.push(ty::ACCEPTED);
                out.extend_from_slice(&ballot.to_be_bytes());
            }
            Message::Commit { view } => {
                out.push(ty::COMMIT);
                put_view(&mut out, view);
            }
            Message::SyncRequest { epoch } => {
                out.push(ty::SYNC_REQUEST);
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Message::Join => out.push(ty::JOIN),
            Message::ContactIs { epoch, contact } => {
                out.push(ty::CONTACT_IS);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&contact.to_be_bytes());
            }
            Message::NotMember { epoch } => {
                out.push(ty::NOT_MEMBER);
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Message::Register => out.push(ty::REGISTER),
            Message::Registered { epoch } => {
                out.push(ty::REGISTERED);
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Message::Snodes { epoch, snodes } => {
                out.push(ty::SNODES);
                out.extend_from_slice(&epoch.to_be_bytes());
                let n = snodes.len().min(MAX_SNODES);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for s in &snodes[..n] {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader(bytes);
        let m = match r.u8()? {
            ty::HEARTBEAT => Message::Heartbeat { epoch: r.u64()? },
            ty::PREPARE => Message::Prepare {
                ballot: r.u64()?,
                base: r.view()?,
            },
            ty::PROMISE => {
                let ballot = r.u64()?;
                let base_epoch = r.u64()?;
                let accepted = match r.u8()? {
                    0 => None,
                    1 => Some(r.view()?),
                    b => return Err(DecodeError::BadFlag(b)),
                };
                Message::Promise {
                    ballot,
                    base_epoch,
                    accepted,
                }
            }
            ty::NACK => Message::Nack {
                ballot: r.u64()?,
                promised: r.u64()?,
            },
            ty::ACCEPT => Message::Accept {
                base: r.view()?,
                view: r.view()?,
            },
            ty::ACCEPTED => Message::Accepted { ballot: r.u64()? },
            ty::COMMIT => Message::Commit { view: r.view()? },
            ty::SYNC_REQUEST => Message::SyncRequest { epoch: r.u64()? },
            ty::JOIN => Message::Join,
            ty::CONTACT_IS => Message::ContactIs {
                epoch: r.u64()?,
                contact: r.u32()?,
            },
            ty::NOT_MEMBER => Message::NotMember { epoch: r.u64()? },
            ty::REGISTER => Message::Register,
            ty::REGISTERED => Message::Registered { epoch: r.u64()? },
            ty::SNODES => {
                let epoch = r.u64()?;
                let n = usize::from(r.u16()?);
                if n > MAX_SNODES {
                    return Err(DecodeError::TooMany);
                }
                let mut snodes = Vec::with_capacity(n);
                for _ in 0..n {
                    snodes.push(r.u32()?);
                }
                Message::Snodes { epoch, snodes }
            }
            t => return Err(DecodeError::UnknownType(t)),
        };
        r.end()?;
        Ok(m)
    }

    /// The highest *committed* epoch this message tells its receiver about (ballots of
    /// proposals in flight are not committed epochs and do not count).
    pub fn committed_epoch(&self) -> Option<u64> {
        match self {
            Message::Heartbeat { epoch }
            | Message::SyncRequest { epoch }
            | Message::ContactIs { epoch, .. }
            | Message::NotMember { epoch }
            | Message::Registered { epoch }
            | Message::Snodes { epoch, .. } => Some(*epoch),
            Message::Prepare { base, .. } | Message::Accept { base, .. } => Some(base.epoch),
            Message::Promise { base_epoch, .. } => Some(*base_epoch),
            Message::Commit { view } => Some(view.epoch),
            Message::Nack { .. } | Message::Accepted { .. } | Message::Join | Message::Register => {
                None
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Message::Heartbeat { .. } => "heartbeat",
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Nack { .. } => "nack",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Commit { .. } => "commit",
            Message::SyncRequest { .. } => "sync-request",
            Message::Join => "join",
            Message::ContactIs { .. } => "contact-is",
            Message::NotMember { .. } => "not-member",
            Message::Register => "register",
            Message::Registered { .. } => "registered",
            Message::Snodes { .. } => "snodes",
        }
    }
}

/// What a node keeps across restarts (the acceptor's promise and vote, as in Paxos): the
/// daemon writes these bytes to its state file before it sends anything that depends on
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    pub committed: View,
    pub promised: u64,
    pub accepted: Option<View>,
    /// The last DSA sequence number this node registered at the home agent: a contact that
    /// restarts must not register the same number again (the HA would refuse it).
    pub registered_seq: Option<u16>,
}

const DURABLE_MAGIC: &[u8; 4] = b"DSM1";

impl Durable {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = DURABLE_MAGIC.to_vec();
        put_view(&mut out, &self.committed);
        out.extend_from_slice(&self.promised.to_be_bytes());
        match &self.accepted {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                put_view(&mut out, v);
            }
        }
        match self.registered_seq {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&s.to_be_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Durable, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(4)? != DURABLE_MAGIC {
            return Err(DecodeError::UnknownType(bytes[0]));
        }
        let committed = r.view()?;
        let promised = r.u64()?;
        let accepted = match r.u8()? {
            0 => None,
            1 => Some(r.view()?),
            b => return Err(DecodeError::BadFlag(b)),
        };
        let registered_seq = match r.u8()? {
            0 => None,
            1 => Some(r.u16()?),
            b => return Err(DecodeError::BadFlag(b)),
        };
        r.end()?;
        Ok(Durable {
            committed,
            promised,
            accepted,
            registered_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    fn view(epoch: u64, nodes: &[u32]) -> View {
        let mut v = View::genesis(nodes);
        v.epoch = epoch;
        v.dsa_seq = 0xfffe;
        v
    }

    fn all() -> Vec<Message> {
        vec![
            Message::Heartbeat { epoch: 7 },
            Message::Prepare {
                ballot: (3 << 32) | 2,
                base: view(1, &[1, 2, 3]),
            },
            Message::Promise {
                ballot: 9,
                base_epoch: 1,
                accepted: None,
            },
            Message::Promise {
                ballot: 9,
                base_epoch: 1,
                accepted: Some(view(8, &[2, 3])),
            },
            Message::Nack {
                ballot: 4,
                promised: 5,
            },
            Message::Accept {
                base: view(1, &[1, 2]),
                view: view(2, &[2]),
            },
            Message::Accepted { ballot: u64::MAX },
            Message::Commit {
                view: view(2, &[4, 1, 2, 3, 5, 6, 7]),
            },
            Message::SyncRequest { epoch: 0 },
            Message::Join,
            Message::ContactIs {
                epoch: 3,
                contact: 9,
            },
            Message::NotMember { epoch: 3 },
            Message::Register,
            Message::Registered { epoch: 3 },
            Message::Snodes {
                epoch: 3,
                snodes: vec![10, 11, 12],
            },
            Message::Snodes {
                epoch: 3,
                snodes: vec![],
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all() {
            let b = m.encode();
            assert_eq!(Message::decode(&b), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        for m in all() {
            let b = m.encode();
            for n in 0..b.len() {
                assert!(Message::decode(&b[..n]).is_err(), "{m:?} cut to {n}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(
                Message::decode(&longer),
                Err(DecodeError::TrailingBytes),
                "{m:?}"
            );
        }
    }

    #[test]
    fn inconsistent_views_are_rejected() {
        let mut b = Message::Commit {
            view: view(2, &[1, 2]),
        }
        .encode();
        // Second member's rank (last 4 bytes) = first member's: not increasing.
        let n = b.len();
        b[n - 4..].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(Message::decode(&b), Err(DecodeError::BadView));
        // Same node twice.
        let mut b = Message::Commit {
            view: view(2, &[1, 2]),
        }
        .encode();
        let n = b.len();
        b[n - 8..n - 4].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(Message::decode(&b), Err(DecodeError::BadView));
        // A member count above the limit.
        let mut b = Message::Commit { view: view(2, &[]) }.encode();
        let n = b.len();
        b[n - 1] = MAX_MEMBERS as u8 + 1;
        assert_eq!(Message::decode(&b), Err(DecodeError::TooMany));
        assert_eq!(Message::decode(&[99]), Err(DecodeError::UnknownType(99)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x6d656d62);
        let seeds = all();
        for i in 0..20_000 {
            let mut b = seeds[i % seeds.len()].encode();
            let flips = 1 + rng.next() % 4;
            for _ in 0..flips {
                let at = (rng.next() as usize) % b.len();
                b[at] = rng.next() as u8;
            }
            if rng.next() % 4 == 0 {
                b.truncate((rng.next() as usize) % (b.len() + 1));
            }
            if let Ok(m) = Message::decode(&b) {
                assert_eq!(Message::decode(&m.encode()), Ok(m));
            }
        }
    }

    #[test]
    fn durable_state_round_trips() {
        let d = Durable {
            committed: view(5, &[1, 2, 3]),
            promised: 77,
            accepted: Some(view(77, &[2, 3])),
            registered_seq: Some(9),
        };
        assert_eq!(Durable::decode(&d.encode()), Ok(d.clone()));
        let d2 = Durable {
            accepted: None,
            registered_seq: None,
            ..d
        };
        assert_eq!(Durable::decode(&d2.encode()), Ok(d2.clone()));
        assert!(Durable::decode(b"DSM").is_err());
        assert!(Durable::decode(b"XXXX").is_err());
    }
}
