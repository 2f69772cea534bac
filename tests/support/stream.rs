//! The reproducible byte streams the connection-handoff tests send, and their digests.
//!
//! Included with `#[path = "support/stream.rs"] mod stream;`.
#![allow(dead_code)]

/// Byte `i` of the stream: a multiplicative hash, so that any shifted or repeated
/// range shows in the digest.
pub fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 11) as u8
}

/// Bytes `range` of the stream selected by `salt`.
pub fn stream(range: std::ops::Range<usize>, salt: usize) -> Vec<u8> {
    range.map(|i| byte(i ^ salt)).collect()
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}
