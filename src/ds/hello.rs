//! The authentication check a donor runs with the acceptor before it freezes anything,
//! sans-IO. An acceptor whose shared key differs cannot open the donor's handoff
//! messages, and the donor cannot open its answers: without this check the donor would
//! freeze the connection, offer it, hear nothing it can believe and roll back only when
//! its accept timeout runs out. The check costs one round trip on its own connection to
//! the acceptor's `ControlPort`, while the connection still serves.
//!
//! ```text
//! donor → acceptor:  "M6HI" | length (u32) | frame(kind 1: nonce (16) | acceptor id (u32))
//! acceptor → donor:  "M6HI" | 0 | length (u32) | frame(kind 2: nonce | donor id (u32))
//!               or:  "M6HI" | 1 | 0 (u32)          the hello did not verify here
//! ```
//!
//! Frames are `crypto::auth` frames under the `hello` subkey of the group's key. The
//! magic, read as a handoff frame's length, is far above any frame's limit, so an
//! acceptor tells a hello from an Offer by its first four bytes. The refusal cannot be
//! authenticated (the acceptor has no key the donor trusts): it only makes the donor give
//! up sooner on a handoff that could not have worked, which anyone able to reset the TCP
//! connection could make it do anyway.

use std::fmt;

use crate::crypto::auth::{self, SharedKey};

/// The first bytes of a hello and of its answer.
pub const MAGIC: [u8; 4] = *b"M6HI";
pub const NONCE_LEN: usize = 16;
const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const STATUS_WELCOME: u8 = 0;
const STATUS_REFUSED: u8 = 1;
/// Longest frame either side accepts.
pub const MAX_FRAME: usize = auth::OVERHEAD + NONCE_LEN + 4;
/// Bytes of an answer before its frame.
pub const ANSWER_HEAD: usize = MAGIC.len() + 1 + 4;
/// Bytes of a hello before its frame.
pub const HELLO_HEAD: usize = MAGIC.len() + 4;

/// Why a node is not trusted with a handoff. Every message says "authentication".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// The acceptor could not verify our hello: its shared key differs.
    Refused { node: u32 },
    /// The answer's tag did not verify with our key.
    NotAuthentic { node: u32 },
    /// Authentic, but for another exchange or from another node.
    Mismatch { node: u32, why: &'static str },
    /// Not a hello answer at all.
    Malformed { node: u32, why: &'static str },
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::Refused { node } => write!(
                f,
                "authentication failed: node {node} could not verify our hello \
                 (its SharedKeyFile differs from ours)"
            ),
            HelloError::NotAuthentic { node } => write!(
                f,
                "authentication failed: node {node}'s answer is not authentic \
                 (its SharedKeyFile differs from ours)"
            ),
            HelloError::Mismatch { node, why } => {
                write!(f, "authentication failed: node {node}'s answer {why}")
            }
            HelloError::Malformed { node, why } => {
                write!(
                    f,
                    "authentication failed: node {node} answered no hello ({why})"
                )
            }
        }
    }
}

impl std::error::Error for HelloError {}

/// Whether the first bytes of a connection to `ControlPort` are a hello.
pub fn is_hello(first: &[u8]) -> bool {
    first.starts_with(&MAGIC)
}

/// The donor's hello to node `to`.
pub fn hello(
    group: &SharedKey,
    me: u32,
    to: u32,
    counter: u64,
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let mut payload = nonce.to_vec();
    payload.extend(to.to_be_bytes());
    let frame = auth::seal(&group.derive("hello"), KIND_HELLO, me, counter, &payload);
    let mut b = MAGIC.to_vec();
    b.extend((frame.len() as u32).to_be_bytes());
    b.extend(frame);
    b
}

/// The length of the frame that follows a hello's or an answer's head, if acceptable.
pub fn frame_len(len: [u8; 4]) -> Option<usize> {
    let n = u32::from_be_bytes(len) as usize;
    (n <= MAX_FRAME).then_some(n)
}

/// The acceptor's answer to a hello's frame (what follows [`HELLO_HEAD`]): the bytes to
/// send back, and the donor's node id if the hello was authentic and meant for us.
pub fn answer(group: &SharedKey, me: u32, counter: u64, frame: &[u8]) -> (Vec<u8>, Option<u32>) {
    let key = group.derive("hello");
    let ok = auth::open(&key, frame).ok().and_then(|o| {
        if o.kind != KIND_HELLO || o.payload.len() != NONCE_LEN + 4 {
            return None;
        }
        let (nonce, to) = o.payload.split_at(NONCE_LEN);
        (to == me.to_be_bytes()).then(|| (o.sender, nonce.to_vec()))
    });
    let mut b = MAGIC.to_vec();
    match ok {
        Some((from, nonce)) => {
            let mut payload = nonce;
            payload.extend(from.to_be_bytes());
            let frame = auth::seal(&key, KIND_WELCOME, me, counter, &payload);
            b.push(STATUS_WELCOME);
            b.extend((frame.len() as u32).to_be_bytes());
            b.extend(frame);
            (b, Some(from))
        }
        None => {
            b.push(STATUS_REFUSED);
            b.extend(0u32.to_be_bytes());
            (b, None)
        }
    }
}

/// The frame length an answer's head announces, or why the answer is refused already.
pub fn answer_head(node: u32, head: &[u8; ANSWER_HEAD]) -> Result<usize, HelloError> {
    if !is_hello(head) {
        return Err(HelloError::Malformed {
            node,
            why: "wrong magic",
        });
    }
    match head[4] {
        STATUS_WELCOME => {}
        STATUS_REFUSED => return Err(HelloError::Refused { node }),
        _ => {
            return Err(HelloError::Malformed {
                node,
                why: "unknown status",
            })
        }
    }
    frame_len([head[5], head[6], head[7], head[8]]).ok_or(HelloError::Malformed {
        node,
        why: "frame too long",
    })
}

/// Checks the answer's frame from node `node` to our hello with `nonce`.
pub fn check_welcome(
    group: &SharedKey,
    me: u32,
    node: u32,
    nonce: &[u8; NONCE_LEN],
    frame: &[u8],
) -> Result<(), HelloError> {
    let o =
        auth::open(&group.derive("hello"), frame).map_err(|_| HelloError::NotAuthentic { node })?;
    if o.kind != KIND_WELCOME || o.payload.len() != NONCE_LEN + 4 {
        return Err(HelloError::Malformed {
            node,
            why: "not a welcome",
        });
    }
    if o.sender != node {
        return Err(HelloError::Mismatch {
            node,
            why: "comes from another node id",
        });
    }
    let (n, to) = o.payload.split_at(NONCE_LEN);
    if n != nonce || to != me.to_be_bytes() {
        return Err(HelloError::Mismatch {
            node,
            why: "belongs to another hello",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SharedKey {
        SharedKey::from_bytes(&[b; 32]).unwrap()
    }

    fn exchange(
        donor: &SharedKey,
        acceptor: &SharedKey,
        to: u32,
    ) -> Result<Option<u32>, HelloError> {
        let nonce = [9; NONCE_LEN];
        let h = hello(donor, 1, to, 100, &nonce);
        assert!(is_hello(&h));
        let len = frame_len(h[4..8].try_into().unwrap()).unwrap();
        assert_eq!(h.len(), HELLO_HEAD + len);
        let (a, from) = answer(acceptor, 2, 200, &h[HELLO_HEAD..]);
        let head: [u8; ANSWER_HEAD] = a[..ANSWER_HEAD].try_into().unwrap();
        let n = answer_head(2, &head)?;
        assert_eq!(a.len(), ANSWER_HEAD + n);
        check_welcome(donor, 1, 2, &nonce, &a[ANSWER_HEAD..]).map(|()| from)
    }

    #[test]
    fn nodes_with_the_same_key_welcome_each_other() {
        assert_eq!(exchange(&key(1), &key(1), 2), Ok(Some(1)));
    }

    #[test]
    fn a_node_with_another_key_refuses_and_the_error_says_authentication() {
        let e = exchange(&key(1), &key(2), 2).unwrap_err();
        assert_eq!(e, HelloError::Refused { node: 2 });
        assert!(e.to_string().contains("authentication"), "{e}");
    }

    #[test]
    fn a_hello_meant_for_another_node_is_refused() {
        assert_eq!(
            exchange(&key(1), &key(1), 3),
            Err(HelloError::Refused { node: 2 })
        );
    }

    #[test]
    fn a_welcome_under_another_key_or_for_another_nonce_is_not_trusted() {
        let nonce = [9; NONCE_LEN];
        // An acceptor that fakes a welcome without our key.
        let h = hello(&key(2), 1, 2, 100, &nonce);
        let (a, _) = answer(&key(2), 2, 200, &h[HELLO_HEAD..]);
        let e = check_welcome(&key(1), 1, 2, &nonce, &a[ANSWER_HEAD..]).unwrap_err();
        assert_eq!(e, HelloError::NotAuthentic { node: 2 });
        assert!(e.to_string().contains("authentication"));
        // A replayed welcome from an earlier exchange.
        let h = hello(&key(1), 1, 2, 100, &nonce);
        let (a, _) = answer(&key(1), 2, 200, &h[HELLO_HEAD..]);
        assert!(matches!(
            check_welcome(&key(1), 1, 2, &[8; NONCE_LEN], &a[ANSWER_HEAD..]),
            Err(HelloError::Mismatch { .. })
        ));
        // From a node other than the one asked.
        assert!(matches!(
            check_welcome(&key(1), 1, 3, &nonce, &a[ANSWER_HEAD..]),
            Err(HelloError::Mismatch { .. })
        ));
    }

    #[test]
    fn the_magic_is_no_handoff_frame_length() {
        // Read as a handoff frame's length, the magic exceeds every frame's limit.
        let as_len = u32::from_be_bytes(MAGIC) as usize;
        let l = crate::ds::conn_state::Limits::default();
        assert!(
            as_len
                > (l.max_send_queue + l.max_recv_queue) as usize
                    + crate::ds::handoff::MAX_APP_LEN
                    + 4096
        );
        assert!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).is_none());
        let mut bad = [0u8; ANSWER_HEAD];
        bad[..4].copy_from_slice(&MAGIC);
        bad[4] = 7;
        assert!(matches!(
            answer_head(2, &bad),
            Err(HelloError::Malformed { .. })
        ));
    }
}
