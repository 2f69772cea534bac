//! Binding Update sequence numbers (RFC 6275 §9.5.1).
//!
//! The sequence number is a free-running 16-bit counter, so "newer" is only meaningful
//! within half the number space: §9.5.1 counts a received number as less than or equal to
//! the last one when it lies among the last one and the 32768 values before it,
//! inclusive. Everything in the other half, (last, last + 32767], is newer.
//!
//! `Seqno` deliberately has no `PartialOrd`/`Ord`: the relation is not transitive (walk
//! forward by 2^14 four times and you are back where you started), so sorting or `max`
//! over it would be meaningless.

use std::fmt;

/// Half the 16-bit space: numbers this far apart are never "newer" in either direction.
const HALF: u16 = 1 << 15;

/// A Binding Update sequence number, compared modulo 2^16 (RFC 6275 §9.5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seqno(pub u16);

impl Seqno {
    pub const fn new(value: u16) -> Self {
        Seqno(value)
    }

    pub const fn get(self) -> u16 {
        self.0
    }

    /// The number of the next Binding Update; 65535 is followed by 0 (§9.5.1: "a free
    /// running counter represented modulo 65536").
    #[must_use]
    pub const fn next(self) -> Self {
        Seqno(self.0.wrapping_add(1))
    }

    /// Whether a Binding Update numbered `self` is newer than the last accepted one,
    /// `other` — the test a receiver applies before accepting it (§9.5.1); `false` means
    /// "less than or equal", answered with status 135 (Sequence number out of window).
    ///
    /// True exactly when `self` is 1 to 32767 steps ahead of `other` modulo 2^16. At
    /// exactly 32768 steps neither number is newer than the other: §9.5.1's "preceding
    /// 32768 values, inclusive" puts that point on the "less than or equal" side.
    pub const fn is_newer_than(self, other: Seqno) -> bool {
        let ahead = self.0.wrapping_sub(other.0);
        ahead != 0 && ahead < HALF
    }
}

impl From<u16> for Seqno {
    fn from(value: u16) -> Self {
        Seqno(value)
    }
}

impl From<Seqno> for u16 {
    fn from(s: Seqno) -> Self {
        s.0
    }
}

impl fmt::Display for Seqno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent statement of §9.5.1 in wide integer arithmetic.
    fn reference_newer(received: u16, last: u16) -> bool {
        let ahead = (i64::from(received) - i64::from(last)).rem_euclid(65536);
        (1..32768).contains(&ahead)
    }

    #[test]
    fn rfc_example() {
        // §9.5.1: "if the last received sequence number was 15, then messages with sequence
        // numbers 0 through 15, as well as 32783 through 65535, would be considered less
        // than or equal."
        let last = Seqno(15);
        for s in (0..=15).chain(32783..=65535) {
            assert!(!Seqno(s).is_newer_than(last), "{s}");
        }
        for s in 16..=32782 {
            assert!(Seqno(s).is_newer_than(last), "{s}");
        }
    }

    #[test]
    fn matches_the_reference_for_every_candidate_against_many_lasts() {
        let mut lasts = vec![0, 1, 15, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff];
        // Plus a spread of values from a fixed linear congruential sequence.
        let mut x: u32 = 12345;
        for _ in 0..40 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            lasts.push((x >> 16) as u16);
        }
        for &last in &lasts {
            for s in 0..=u16::MAX {
                assert_eq!(
                    Seqno(s).is_newer_than(Seqno(last)),
                    reference_newer(s, last),
                    "s={s} last={last}"
                );
            }
        }
    }

    #[test]
    fn never_newer_both_ways_and_exactly_one_way_unless_equal_or_half_apart() {
        for a in (0..=u16::MAX).step_by(251) {
            for d in 0..=u16::MAX {
                let b = a.wrapping_add(d);
                let (ab, ba) = (
                    Seqno(a).is_newer_than(Seqno(b)),
                    Seqno(b).is_newer_than(Seqno(a)),
                );
                assert!(!(ab && ba), "a={a} b={b}");
                assert_eq!(ab || ba, d != 0 && d != HALF, "a={a} b={b}");
            }
        }
    }

    #[test]
    fn wrap_at_65535() {
        let max = Seqno(u16::MAX);
        assert_eq!(max.next(), Seqno(0));
        assert!(Seqno(0).is_newer_than(max));
        assert!(!max.is_newer_than(Seqno(0)));
        assert!(Seqno(5).is_newer_than(Seqno(65530)));
        // Walking forward one step at a time through the wrap is always newer.
        let mut s = Seqno(65000);
        for _ in 0..2000 {
            let n = s.next();
            assert!(n.is_newer_than(s) && !s.is_newer_than(n));
            s = n;
        }
        assert_eq!(s, Seqno(1464));
    }

    #[test]
    fn half_space_boundary() {
        for last in [0u16, 1, 15, 0x7fff, 0x8000, 0xffff] {
            let l = Seqno(last);
            assert!(Seqno(last.wrapping_add(HALF - 1)).is_newer_than(l));
            assert!(!Seqno(last.wrapping_add(HALF)).is_newer_than(l));
            assert!(!l.is_newer_than(Seqno(last.wrapping_add(HALF))));
            assert!(!Seqno(last.wrapping_add(HALF + 1)).is_newer_than(l));
            assert!(l.is_newer_than(Seqno(last.wrapping_add(HALF + 1))));
            assert!(!l.is_newer_than(l));
        }
    }

    #[test]
    fn conversions_and_display() {
        assert_eq!(Seqno::from(7).get(), 7);
        assert_eq!(u16::from(Seqno::new(9)), 9);
        assert_eq!(Seqno(4660).to_string(), "4660");
    }
}
