//! One direction of an emulated link, as a pure function of frames and time:
//!
//! ```text
//!  enqueue ─▶ loss ─▶ queue (≤ `queue` frames, tail drop) ─▶ token bucket ─▶ delay line ─▶ poll_release
//! ```
//!
//! Times are nanoseconds on any monotonic clock the caller picks. Every departure and
//! release time is computed from the arrival times alone, not from when the caller polls,
//! so a late wakeup delays the frame by the wakeup's lateness and the next frames not at all.

use std::collections::VecDeque;
use std::fmt;

use super::loss::{LossState, SplitMix64};
use super::params::Params;

const NANO: i128 = 1_000_000_000;

/// Frames the delay line holds at most. The line holds frames that already left the token
/// bucket; bounding it keeps a huge delay at a high packet rate from eating memory
/// (25 ms at 1 Gbit/s is about 2000 full frames).
pub const LINE_CAP: usize = 1 << 16;

/// What became of an enqueued frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On its way; `poll_release` hands it back when its time comes.
    Queued,
    /// Dropped by the loss process.
    Lost,
    /// Dropped because the queue in front of the rate limit was full.
    QueueFull,
    /// Dropped because the delay line was full ([`LINE_CAP`]).
    LineFull,
}

/// Counters since the link was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub lost: u64,
    pub queue_drops: u64,
    pub line_drops: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx={} rx_bytes={} lost={} queue_drops={} line_drops={} tx={} tx_bytes={}",
            self.rx_frames,
            self.rx_bytes,
            self.lost,
            self.queue_drops,
            self.line_drops,
            self.tx_frames,
            self.tx_bytes
        )
    }
}

/// One direction of a link. `F` is whatever carries a frame (`Vec<u8>` in the emulator);
/// its length is what the token bucket charges.
pub struct Link<F> {
    params: Params,
    rng: SplitMix64,
    loss: LossState,
    /// (arrival time, frame), waiting for tokens.
    queue: VecDeque<(u64, F)>,
    /// (release time, frame); release times never decrease, so frames stay in order.
    line: VecDeque<(u64, F)>,
    /// Bucket content in bit·nanoseconds (bits × 10⁹): refilling `rate_bit` per
    /// nanosecond keeps every step an exact integer. Negative after a frame larger than
    /// the bucket left (it pays the debt before the next one goes).
    tokens: i128,
    tokens_at: u64,
    last_release: u64,
    stats: Stats,
}

impl<F: AsRef<[u8]>> Link<F> {
    /// A link with these parameters; `seed` fixes its loss and jitter draws.
    pub fn new(params: Params, seed: u64) -> Link<F> {
        Link {
            params,
            rng: SplitMix64::new(seed),
            loss: LossState::default(),
            queue: VecDeque::new(),
            line: VecDeque::new(),
            tokens: bucket(&params),
            tokens_at: 0,
            last_release: 0,
            stats: Stats::default(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Frames waiting for tokens and frames in the delay line.
    pub fn backlog(&self) -> (usize, usize) {
        (self.queue.len(), self.line.len())
    }

    /// Changes what the link emulates from `now` on. Frames already in the delay line keep
    /// their release times; queued frames wait for tokens at the new rate.
    pub fn set_params(&mut self, params: Params, now: u64) {
        self.drain(now);
        let was_unlimited = self.params.rate_bit == 0;
        self.tokens = self.tokens_when(now.max(self.tokens_at));
        self.tokens_at = now.max(self.tokens_at);
        self.params = params;
        self.tokens = if was_unlimited {
            bucket(&params)
        } else {
            self.tokens.min(bucket(&params))
        };
    }

    /// Offers a frame that arrived at `now`.
    pub fn enqueue(&mut self, frame: F, now: u64) -> Verdict {
        self.drain(now);
        let len = frame.as_ref().len() as u64;
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += len;
        if self.loss.lose(&self.params.loss, &mut self.rng) {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        if self.params.rate_bit == 0 && self.queue.is_empty() {
            return self.put_on_line(now, frame);
        }
        if self.queue.len() >= self.params.queue {
            self.stats.queue_drops += 1;
            return Verdict::QueueFull;
        }
        self.queue.push_back((now, frame));
        let before = self.stats.line_drops;
        self.drain(now);
        if self.stats.line_drops > before {
            Verdict::LineFull
        } else {
            Verdict::Queued
        }
    }

    /// The next frame whose release time is at or before `now`, if any.
    pub fn poll_release(&mut self, now: u64) -> Option<F> {
        self.drain(now);
        match self.line.front() {
            Some(&(t, _)) if t <= now => {
                let (_, f) = self.line.pop_front()?;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += f.as_ref().len() as u64;
                Some(f)
            }
            _ => None,
        }
    }

    /// When to call `poll_release` next: never later than the next release. It can be
    /// earlier only while a queued frame's jittered delay is unknown; that wakeup then
    /// fixes it, so waking at each returned time never spins.
    pub fn poll_timeout(&self) -> Option<u64> {
        let line = self.line.front().map(|&(t, _)| t);
        let queue = self.queue.front().map(|(arr, f)| {
            let depart = self.departure(*arr, f.as_ref().len() as u64);
            depart
                .saturating_add(self.params.delay_ns.saturating_sub(self.params.jitter_ns))
                .max(self.last_release)
        });
        match (line, queue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bucket content at `t` (≥ `tokens_at`), with no frame leaving in between.
    fn tokens_when(&self, t: u64) -> i128 {
        let refill =
            i128::from(t.saturating_sub(self.tokens_at)) * i128::from(self.params.rate_bit);
        (self.tokens + refill).min(bucket(&self.params))
    }

    /// When the queued frame of `len` bytes that arrived at `arrival` leaves the bucket:
    /// once the bucket covers it (or, for a frame larger than the bucket, once the bucket
    /// is full).
    fn departure(&self, arrival: u64, len: u64) -> u64 {
        if self.params.rate_bit == 0 {
            return arrival.max(self.tokens_at);
        }
        let t0 = arrival.max(self.tokens_at);
        let need = i128::from(len.min(self.params.burst)) * 8 * NANO;
        let have = self.tokens_when(t0);
        if have >= need {
            return t0;
        }
        // need ≤ bucket, so the refill reaches it before the cap can bind.
        let rate = i128::from(self.params.rate_bit);
        let wait = (need - have + rate - 1) / rate;
        t0.saturating_add(u64::try_from(wait).unwrap_or(u64::MAX))
    }

    /// Moves every queued frame whose departure time is at or before `now` into the delay
    /// line, at its exact departure time.
    fn drain(&mut self, now: u64) {
        while let Some((arrival, f)) = self.queue.front() {
            let len = f.as_ref().len() as u64;
            let t = self.departure(*arrival, len);
            if t > now {
                break;
            }
            if self.params.rate_bit != 0 {
                self.tokens = self.tokens_when(t) - i128::from(len) * 8 * NANO;
            }
            self.tokens_at = t;
            if let Some((_, f)) = self.queue.pop_front() {
                self.put_on_line(t, f);
            }
        }
    }

    /// Puts a frame that left the bucket at `t` on the delay line.
    fn put_on_line(&mut self, t: u64, frame: F) -> Verdict {
        if self.line.len() >= LINE_CAP {
            self.stats.line_drops += 1;
            return Verdict::LineFull;
        }
        let (d, j) = (self.params.delay_ns, self.params.jitter_ns);
        let delay = if j == 0 {
            d
        } else {
            let offset = i128::from(self.rng.below_incl(j.saturating_mul(2))) - i128::from(j);
            u64::try_from((i128::from(d) + offset).max(0)).unwrap_or(u64::MAX)
        };
        let release = t.saturating_add(delay).max(self.last_release);
        self.last_release = release;
        self.line.push_back((release, frame));
        Verdict::Queued
    }
}

/// The bucket's capacity in bit·nanoseconds.
fn bucket(p: &Params) -> i128 {
    i128::from(p.burst) * 8 * NANO
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linkemu::Loss;

    const MS: u64 = 1_000_000;

    fn params(words: &str) -> Params {
        let mut p = Params::default();
        p.apply(words.split_whitespace()).unwrap();
        p
    }

    /// Drives a link the way the emulator does, waking exactly at each `poll_timeout`,
    /// and returns (frame id, release time) in release order plus the number of wakeups.
    fn run(link: &mut Link<Vec<u8>>, mut arrivals: Vec<(u64, Vec<u8>)>) -> (Vec<(u8, u64)>, usize) {
        arrivals.reverse();
        let (mut out, mut wakeups) = (Vec::new(), 0);
        loop {
            let next_arrival = arrivals.last().map(|a| a.0);
            let next = match (next_arrival, link.poll_timeout()) {
                (Some(a), Some(t)) => a.min(t),
                (a, t) => match a.or(t) {
                    Some(n) => n,
                    None => return (out, wakeups),
                },
            };
            wakeups += 1;
            while arrivals.last().is_some_and(|a| a.0 <= next) {
                let (t, f) = arrivals.pop().unwrap();
                link.enqueue(f, t);
            }
            while let Some(f) = link.poll_release(next) {
                out.push((f[0], next));
            }
        }
    }

    fn frames(n: u8, len: usize, every: u64) -> Vec<(u64, Vec<u8>)> {
        (0..n)
            .map(|i| (u64::from(i) * every, vec![i; len]))
            .collect()
    }

    #[test]
    fn transparent_link_releases_at_once() {
        let mut l = Link::new(Params::default(), 1);
        assert_eq!(l.enqueue(vec![1; 100], 5), Verdict::Queued);
        assert_eq!(l.poll_timeout(), Some(5));
        assert_eq!(l.poll_release(5), Some(vec![1; 100]));
        assert_eq!(l.poll_release(5), None);
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn delay_is_exact() {
        let mut l = Link::new(params("delay=25ms"), 1);
        assert_eq!(l.enqueue(vec![7; 60], 1_000), Verdict::Queued);
        assert_eq!(l.enqueue(vec![8; 60], 3_000), Verdict::Queued);
        assert_eq!(l.poll_timeout(), Some(1_000 + 25 * MS));
        assert_eq!(l.poll_release(1_000 + 25 * MS - 1), None);
        assert_eq!(l.poll_release(1_000 + 25 * MS), Some(vec![7; 60]));
        assert_eq!(l.poll_timeout(), Some(3_000 + 25 * MS));
        // A late poll gets the frame then, but the schedule of later ones does not move.
        assert_eq!(l.poll_release(40 * MS), Some(vec![8; 60]));
        assert_eq!(l.stats().tx_frames, 2);
    }

    #[test]
    fn rate_spaces_frames_by_transmission_time() {
        // 1514-byte frames at 2 Mbit/s: 1514 * 8 / 2e6 s = 6.056 ms apart, exactly.
        let mut l = Link::new(params("rate=2mbit"), 1);
        let (out, _) = run(&mut l, frames(10, 1514, 0));
        let times: Vec<u64> = out.iter().map(|o| o.1).collect();
        let want: Vec<u64> = (0..10).map(|i| i * 6_056_000).collect();
        assert_eq!(times, want);
        assert_eq!(
            out.iter().map(|o| o.0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn burst_lets_a_bucketful_through_then_the_rate_holds() {
        // 1000-byte frames at 8 Mbit/s (1 ms each); a 3000-byte bucket passes three at
        // once, then one per millisecond.
        let mut l = Link::new(params("rate=8mbit burst=3000"), 1);
        let (out, _) = run(&mut l, frames(6, 1000, 0));
        let times: Vec<u64> = out.iter().map(|o| o.1).collect();
        assert_eq!(times, vec![0, 0, 0, MS, 2 * MS, 3 * MS]);
        // Idle time refills the bucket, but never beyond its size.
        let (out, _) = run(&mut l, vec![(100 * MS, vec![9; 1000]); 5]);
        let times: Vec<u64> = out.iter().map(|o| o.1).collect();
        assert_eq!(
            times,
            vec![100 * MS, 100 * MS, 100 * MS, 101 * MS, 102 * MS]
        );
    }

    #[test]
    fn long_run_rate_matches_and_delay_adds_on_top() {
        // 1500 frames of mixed sizes at 1.5 Mbit/s plus 10 ms: the last leaves when the
        // total bits have been sent at the rate.
        let mut l = Link::new(params("rate=1.5mbit delay=10ms queue=5000"), 1);
        let arrivals: Vec<(u64, Vec<u8>)> = (0..1500u32)
            .map(|i| (0, vec![(i % 256) as u8; 64 + (i as usize * 37) % 1450]))
            .collect();
        let bits: u64 = arrivals.iter().map(|a| a.1.len() as u64 * 8).sum();
        let last_len = arrivals.last().unwrap().1.len() as u64 * 8;
        let (out, wakeups) = run(&mut l, arrivals);
        let last = out.last().unwrap().1;
        // The last frame starts once all bits before it are paid. Departures are rounded
        // up to whole nanoseconds and a full bucket keeps no fraction: at most 1 ns late
        // per frame.
        let want = (bits - last_len) * 1_000_000_000 / 1_500_000 + 10 * MS;
        assert!(
            (want..=want + 1500).contains(&last),
            "last release {last}, want {want}"
        );
        assert!(wakeups <= 1501, "{wakeups} wakeups for 1500 frames");
    }

    #[test]
    fn queue_is_bounded_with_tail_drop() {
        // At 8 kbit/s nothing more leaves during the test: the first frame goes at once
        // (empty bucket, no debt), five wait, the rest are dropped.
        let mut l = Link::new(params("rate=8kbit queue=5"), 1);
        let verdicts: Vec<Verdict> = (0..10).map(|i| l.enqueue(vec![i; 100], 0)).collect();
        let queued = verdicts.iter().filter(|v| **v == Verdict::Queued).count();
        assert_eq!(queued, 6);
        assert_eq!(&verdicts[6..], &[Verdict::QueueFull; 4]);
        assert_eq!(l.stats().queue_drops, 4);
        assert_eq!(l.backlog(), (5, 1));
        // Frames that wait are delivered in order, 100 ms apart (100 bytes at 8 kbit/s).
        let (out, _) = run(&mut l, vec![]);
        assert_eq!(
            out.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(out[5].1, 500 * MS);
    }

    #[test]
    fn loss_rate_is_seeded_and_within_binomial_bounds() {
        let lose = |seed| {
            let mut l = Link::new(params("loss=1%"), seed);
            let lost: Vec<bool> = (0..50_000u32)
                .map(|i| l.enqueue(vec![0; 64], u64::from(i)) == Verdict::Lost)
                .collect();
            assert_eq!(l.stats().lost, lost.iter().filter(|x| **x).count() as u64);
            lost
        };
        let a = lose(3);
        assert_eq!(a, lose(3), "same seed, same losses");
        assert_ne!(a, lose(4));
        // n = 50 000, p = 1 %: sd = 22.2 frames; 4 sd either side of 500.
        let n = a.iter().filter(|x| **x).count();
        assert!((411..=589).contains(&n), "{n} lost");
    }

    #[test]
    fn jitter_stays_in_bounds_and_keeps_order() {
        let mut l = Link::new(params("delay=10ms jitter=2ms"), 5);
        let arrivals = frames(200, 100, 3 * MS);
        let sent: Vec<u64> = arrivals.iter().map(|a| a.0).collect();
        let (out, _) = run(&mut l, arrivals);
        assert_eq!(out.len(), 200);
        let mut prev = 0;
        let mut delays = Vec::new();
        for (id, t) in &out {
            assert!(*t >= prev, "frames leave in order");
            prev = *t;
            let d = t - sent[usize::from(*id)];
            assert!((8 * MS..=12 * MS).contains(&d), "delay {d}");
            delays.push(d);
        }
        let spread = delays.iter().max().unwrap() - delays.iter().min().unwrap();
        assert!(
            spread > 3 * MS,
            "jitter varies the delay (spread {spread} ns)"
        );
    }

    #[test]
    fn parameter_changes_apply_to_later_frames() {
        let mut l = Link::new(params("delay=50ms"), 1);
        l.enqueue(vec![1; 10], 0);
        l.set_params(params("delay=5ms"), MS);
        l.enqueue(vec![2; 10], MS);
        // The second frame would be due at 6 ms but does not overtake the first.
        assert_eq!(l.poll_timeout(), Some(50 * MS));
        assert_eq!(l.poll_release(50 * MS), Some(vec![1; 10]));
        assert_eq!(l.poll_release(50 * MS), Some(vec![2; 10]));
        // From unlimited to a rate: the bucket starts full, then the rate holds.
        l.set_params(params("rate=8mbit burst=1000"), 100 * MS);
        let (out, _) = run(
            &mut l,
            vec![(100 * MS, vec![3; 1000]), (100 * MS, vec![4; 1000])],
        );
        assert_eq!(out, vec![(3, 100 * MS), (4, 101 * MS)]);
        assert_eq!(*l.params(), params("rate=8mbit burst=1000"));
        assert_eq!(l.params().loss, Loss::None);
    }

    #[test]
    fn delay_line_is_bounded() {
        let mut l = Link::new(params("delay=1s"), 1);
        for i in 0..LINE_CAP {
            assert_eq!(l.enqueue(vec![0; 1], i as u64), Verdict::Queued);
        }
        assert_eq!(l.enqueue(vec![0; 1], LINE_CAP as u64), Verdict::LineFull);
        assert_eq!(l.stats().line_drops, 1);
    }
}
