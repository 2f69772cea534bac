//! Loss processes and the seeded generator behind them (and behind jitter), so a run with
//! the same seed and the same packets loses the same packets.

/// splitmix64: tiny, fast, and statistically good enough for loss and jitter draws; the
/// seed alone reproduces a run.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits (all an f64 mantissa holds).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n] (inclusive), for jitter in nanoseconds.
    pub fn below_incl(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            return self.next_u64();
        }
        // The modulo bias is at most n / 2^64: invisible at nanosecond jitter scales.
        self.next_u64() % (n + 1)
    }
}

/// Which packets a direction loses (before they reach its queue, as netem does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    None,
    /// Each packet independently, with this probability.
    Random(f64),
    /// The Gilbert–Elliott two-state channel, in netem's terms (`loss gemodel p r 1-h 1-k`):
    /// `p` good→bad and `r` bad→good per packet, `loss_bad` = 1-h and `loss_good` = 1-k
    /// the loss probabilities in each state. Losses come in bursts of mean length 1/r when
    /// `loss_bad` is 1.
    GilbertElliott {
        p: f64,
        r: f64,
        loss_bad: f64,
        loss_good: f64,
    },
}

impl Loss {
    /// The long-run fraction of packets this process loses.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random(p) => p,
            Loss::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            } => {
                if p + r == 0.0 {
                    // Never leaves the good state it starts in.
                    return loss_good;
                }
                let bad = p / (p + r);
                bad * loss_bad + (1.0 - bad) * loss_good
            }
        }
    }
}

/// The state a loss process carries between packets (the Gilbert–Elliott channel state).
#[derive(Clone, Debug, Default)]
pub struct LossState {
    bad: bool,
}

impl LossState {
    /// Whether the next packet is lost. The packet sees the current state; the channel
    /// then moves, so a burst starts with the packet after a good→bad transition.
    pub fn lose(&mut self, loss: &Loss, rng: &mut SplitMix64) -> bool {
        match *loss {
            Loss::None => false,
            Loss::Random(p) => p > 0.0 && rng.next_f64() < p,
            Loss::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            } => {
                let prob = if self.bad { loss_bad } else { loss_good };
                let lost = prob > 0.0 && rng.next_f64() < prob;
                let flip = if self.bad { r } else { p };
                if flip > 0.0 && rng.next_f64() < flip {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_reproducible_and_uniform() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let mut r = SplitMix64::new(7);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(a, {
            let mut r = SplitMix64::new(8);
            (0..5).map(|_| r.next_u64()).collect::<Vec<_>>()
        });
        let mut r = SplitMix64::new(1);
        let n = 100_000;
        let mean = (0..n).map(|_| r.next_f64()).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((0..1000).all(|_| r.below_incl(3) <= 3));
    }

    fn loss_rate(loss: Loss, n: u32, seed: u64) -> (f64, f64) {
        let mut rng = SplitMix64::new(seed);
        let mut st = LossState::default();
        let (mut lost, mut bursts, mut prev) = (0u32, 0u32, false);
        for _ in 0..n {
            let l = st.lose(&loss, &mut rng);
            lost += u32::from(l);
            bursts += u32::from(l && !prev);
            prev = l;
        }
        let mean_burst = if bursts == 0 {
            0.0
        } else {
            f64::from(lost) / f64::from(bursts)
        };
        (f64::from(lost) / f64::from(n), mean_burst)
    }

    #[test]
    fn random_loss_rate_within_binomial_bounds() {
        // 1 % over 200 000 packets: sd = sqrt(n p (1-p)) = 44.5 packets; 4 sd is 0.089 %.
        let (rate, _) = loss_rate(Loss::Random(0.01), 200_000, 42);
        assert!((rate - 0.01).abs() < 0.00089, "rate {rate}");
        assert_eq!(loss_rate(Loss::Random(0.0), 10_000, 1).0, 0.0);
        assert_eq!(loss_rate(Loss::Random(1.0), 10_000, 1).0, 1.0);
        assert_eq!(loss_rate(Loss::None, 10_000, 1).0, 0.0);
    }

    #[test]
    fn gilbert_elliott_rate_and_burst_length() {
        // p = 1 %, r = 25 %, every bad-state packet lost: mean loss p/(p+r) = 3.85 %,
        // bursts of mean length 1/r = 4 packets (independent loss would give ~1.04).
        let ge = Loss::GilbertElliott {
            p: 0.01,
            r: 0.25,
            loss_bad: 1.0,
            loss_good: 0.0,
        };
        assert!((ge.mean() - 0.01 / 0.26).abs() < 1e-12);
        let (rate, burst) = loss_rate(ge, 400_000, 9);
        assert!((rate - ge.mean()).abs() < 0.004, "rate {rate}");
        assert!((burst - 4.0).abs() < 0.3, "mean burst {burst}");
        let (_, random_burst) = loss_rate(Loss::Random(ge.mean()), 400_000, 9);
        assert!(
            random_burst < 1.2,
            "independent losses burst {random_burst}"
        );
    }
}
