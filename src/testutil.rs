//! Helpers for the crate's own tests.

/// A tiny deterministic generator (Marsaglia's xorshift64) for no-panic sweeps over
/// pseudo-random inputs: reproducible from its seed, with no dependency.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
