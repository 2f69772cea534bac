//! The Internet checksum (RFC 1071) over the IPv6 pseudo-header (RFC 8200 §8.1), as used
//! by the Mobility Header (RFC 6275 §6.1.1) and ICMPv6.
//!
//! The pseudo-header addresses are the ones the *final* receiver sees: when a Home Address
//! option is present the source is the home address, and when a Type 2 Routing Header is
//! present the destination is the home address in it. Callers pass those addresses.

use std::net::Ipv6Addr;

/// One's-complement sum of `data` folded into 16 bits, continuing from `acc`.
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    let len = len as u32;
    acc = acc.wrapping_add(len >> 16).wrapping_add(len & 0xffff);
    acc.wrapping_add(u32::from(next_header))
}

/// The checksum to store in a header whose checksum field is currently zero.
pub fn compute(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let acc = pseudo_header_sum(src, dst, next_header, data.len());
    !fold(sum(acc, data))
}

/// True when `data`, with its checksum field in place, verifies.
pub fn verify(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> bool {
    let acc = pseudo_header_sum(src, dst, next_header, data.len());
    fold(sum(acc, data)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_words() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 folds to ddf2.
        assert_eq!(
            fold(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
    }

    #[test]
    fn compute_then_verify_and_detect_a_flip() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut data = vec![59, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let c = compute(&src, &dst, 135, &data);
        data[4..6].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&src, &dst, 135, &data));
        data[16] ^= 1;
        assert!(!verify(&src, &dst, 135, &data));
        // The pseudo-header matters: the same bytes do not verify for another source.
        data[16] ^= 1;
        assert!(!verify(&dst, &src, 58, &data));
    }
}
