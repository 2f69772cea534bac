//! Rate limits for messages a node sends in answer to unauthenticated packets
//! (HoT/CoT, Binding Errors, error Binding Acknowledgements).
//!
//! Why: RFC 6275 §15.4 (and §5.2.8) warns that a correspondent node must not become a
//! reflector, and §9.3.3 asks that Binding Errors be rate limited like ICMPv6 errors
//! (RFC 4443 §2.4 f). Answers are never bigger than a handful of bytes beyond the
//! request and never more than one per request, so the only amplification left is in
//! packet *rate*; the buckets cap that.
//!
//! The bucket is a GCRA ("virtual scheduling" token bucket): one `Instant` of state per
//! bucket, integer arithmetic on `Duration`, and driven by the caller's `now` only.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A rate: `per_sec` messages per second on average, at most `burst` back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_sec: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const fn new(per_sec: u32, burst: u32) -> Self {
        RateLimit { per_sec, burst }
    }

    /// No limit at all (benchmarks, or an operator who really wants it).
    pub const UNLIMITED: RateLimit = RateLimit {
        per_sec: u32::MAX,
        burst: u32::MAX,
    };

    fn interval(self) -> Duration {
        // A zero rate allows nothing: an interval longer than any test or uptime.
        if self.per_sec == 0 {
            return Duration::MAX;
        }
        Duration::from_secs(1) / self.per_sec
    }
}

/// One token bucket.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Theoretical arrival time of the next conforming message.
    tat: Option<Instant>,
}

impl TokenBucket {
    pub fn new(limit: RateLimit) -> Self {
        TokenBucket { limit, tat: None }
    }

    /// Whether one more message may go at `now`; if so it is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.limit == RateLimit::UNLIMITED {
            return true;
        }
        if self.limit.burst == 0 || self.limit.per_sec == 0 {
            return false;
        }
        let t = self.limit.interval();
        // Tolerance: burst - 1 intervals ahead of `now` are still allowed.
        let tolerance = t.saturating_mul(self.limit.burst - 1);
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        if tat.saturating_duration_since(now) > tolerance {
            return false;
        }
        self.tat = Some(tat + t);
        true
    }

    /// Whether the bucket has refilled completely at `now` (its state can be forgotten).
    pub fn is_idle(&self, now: Instant) -> bool {
        self.tat.map_or(true, |tat| tat <= now)
    }
}

/// A global bucket plus one bucket per source, with a bounded number of sources.
///
/// A flood of spoofed sources cannot grow the table without bound: when it holds
/// `max_sources` entries, idle ones are forgotten (at most once per second, so the
/// O(n) sweep is amortised), and if none are idle a new source is limited by the global
/// bucket alone.
#[derive(Clone, Debug)]
pub struct Limiter<K> {
    global: TokenBucket,
    per_source_limit: RateLimit,
    sources: HashMap<K, TokenBucket>,
    max_sources: usize,
    last_sweep: Option<Instant>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(global: RateLimit, per_source: RateLimit, max_sources: usize) -> Self {
        Limiter {
            global: TokenBucket::new(global),
            per_source_limit: per_source,
            sources: HashMap::new(),
            max_sources,
            last_sweep: None,
        }
    }

    /// Whether a message for `source` may go at `now`; counted against both buckets if so.
    pub fn allow(&mut self, source: &K, now: Instant) -> bool {
        if self.per_source_limit != RateLimit::UNLIMITED {
            if !self.sources.contains_key(source) && self.sources.len() >= self.max_sources {
                self.sweep(now);
            }
            if let Some(b) = self.sources.get_mut(source) {
                if !b.allow(now) {
                    return false;
                }
            } else if self.sources.len() < self.max_sources {
                let mut b = TokenBucket::new(self.per_source_limit);
                if !b.allow(now) {
                    return false;
                }
                self.sources.insert(source.clone(), b);
            }
        }
        // Per-source passed (or was not tracked); the global bucket has the last word.
        // A message refused here still used up a per-source token, which only makes a
        // flooding source slower.
        self.global.allow(now)
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.sources.retain(|_, b| !b.is_idle(now));
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(10, 5));
        let allowed = (0..20).filter(|_| b.allow(t0)).count();
        assert_eq!(allowed, 5);
        // One more every 100 ms.
        assert!(!b.allow(t0 + ms(99)));
        assert!(b.allow(t0 + ms(100)));
        assert!(!b.allow(t0 + ms(150)));
        assert!(b.allow(t0 + ms(200)));
        // After a long pause the whole burst is back, and no more.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..20).filter(|_| b.allow(later)).count(), 5);
    }

    #[test]
    fn zero_and_unlimited() {
        let t0 = Instant::now();
        let mut none = TokenBucket::new(RateLimit::new(0, 10));
        assert!(!none.allow(t0));
        let mut none = TokenBucket::new(RateLimit::new(10, 0));
        assert!(!none.allow(t0));
        let mut all = TokenBucket::new(RateLimit::UNLIMITED);
        assert!((0..100_000).all(|_| all.allow(t0)));
    }

    #[test]
    fn sustained_rate_over_a_minute() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(50, 10));
        // Offer 1000/s for 60 s.
        let allowed = (0..60_000u64).filter(|i| b.allow(t0 + ms(*i))).count();
        assert!((3000..=3011).contains(&allowed), "{allowed}");
    }

    #[test]
    fn per_source_and_global() {
        let t0 = Instant::now();
        let mut l = Limiter::new(RateLimit::new(100, 6), RateLimit::new(1, 2), 3);
        assert!(l.allow(&1, t0));
        assert!(l.allow(&1, t0));
        assert!(!l.allow(&1, t0), "per-source burst is 2");
        assert!(l.allow(&2, t0));
        assert!(l.allow(&2, t0));
        assert!(l.allow(&3, t0));
        assert!(l.allow(&3, t0));
        // Global burst of 6 used up.
        assert!(!l.allow(&4, t0));
        assert_eq!(l.tracked_sources(), 3);
    }

    #[test]
    fn source_table_is_bounded_and_idle_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut l = Limiter::new(RateLimit::UNLIMITED, RateLimit::new(1, 1), 100);
        for i in 0..10_000u32 {
            l.allow(&i, t0);
        }
        assert_eq!(l.tracked_sources(), 100);
        // Untracked sources fall back to the global bucket.
        assert!(l.allow(&20_000, t0));
        // Two seconds later everyone has refilled: the sweep frees the table.
        let later = t0 + Duration::from_secs(2);
        assert!(l.allow(&30_000, later));
        assert_eq!(l.tracked_sources(), 1);
    }
}
