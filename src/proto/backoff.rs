//! Retransmission back-off for Binding Updates and HoTI/CoTI (RFC 6275 §11.8).
//!
//! §11.8: when no matching response arrives within the initial interval the mobile node
//! SHOULD retransmit, doubling the timeout on each retransmission until it reaches
//! `MAX_BINDACK_TIMEOUT`, and MAY go on retransmitting at that rate indefinitely. The first
//! registration with the home agent waits `InitialBindackTimeoutFirstReg` (§11.8, §13)
//! because the home agent may run Duplicate Address Detection before answering; everything
//! else starts at `INITIAL_BINDACK_TIMEOUT` (§12).
//!
//! Sans-IO: [`Backoff::on_send`] takes the caller's `now` and returns the deadline to arm.

use std::time::{Duration, Instant};

/// RFC 6275 §12 INITIAL_BINDACK_TIMEOUT.
pub const INITIAL_BINDACK_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6275 §13 InitialBindackTimeoutFirstReg default; longer than the usual first
/// timeout so the home agent's DAD (§10.3.1) can finish before the first retransmission.
pub const INITIAL_BINDACK_TIMEOUT_FIRST_REG: Duration = Duration::from_millis(1500);
/// RFC 6275 §12 MAX_BINDACK_TIMEOUT.
pub const MAX_BINDACK_TIMEOUT: Duration = Duration::from_secs(32);

/// Exponential retransmission timer for one outstanding message (§11.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The timeout the next `on_send` arms.
    next: Duration,
    attempts: u32,
    deadline: Option<Instant>,
}

impl Backoff {
    /// A back-off starting at `initial` and doubling up to `max`.
    ///
    /// An `initial` above `max` is clamped to `max`. Panics on a zero `initial`, which
    /// would retransmit in a busy loop.
    pub fn new(initial: Duration, max: Duration) -> Self {
        assert!(!initial.is_zero(), "a zero retransmission timeout");
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            next: initial,
            attempts: 0,
            deadline: None,
        }
    }

    /// For the first Binding Update to a home agent (§11.8, §13).
    pub fn first_home_registration() -> Self {
        Self::new(INITIAL_BINDACK_TIMEOUT_FIRST_REG, MAX_BINDACK_TIMEOUT)
    }

    /// For every other Binding Update, and for HoTI/CoTI (§11.8).
    pub fn standard() -> Self {
        Self::new(INITIAL_BINDACK_TIMEOUT, MAX_BINDACK_TIMEOUT)
    }

    /// Records a (re)transmission at `now` and returns when to retransmit if no response
    /// has arrived by then.
    pub fn on_send(&mut self, now: Instant) -> Instant {
        let deadline = now + self.next;
        self.deadline = Some(deadline);
        self.attempts = self.attempts.saturating_add(1);
        self.next = self.next.saturating_mul(2).min(self.max);
        deadline
    }

    /// Back to the initial timeout, no deadline: the response arrived, or a new message
    /// (a new sequence number) replaces the outstanding one.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
        self.deadline = None;
    }

    /// Transmissions since the last reset, the first one included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The timeout the next [`on_send`](Self::on_send) will arm.
    pub fn next_timeout(&self) -> Duration {
        self.next
    }

    /// The armed deadline, if a message is outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

/// Offsets from the first transmission at which the messages go out:
/// 0, initial, initial + 2·initial, … with the gap capped at `max`. Endless (§11.8 allows
/// retransmitting indefinitely at the capped rate).
pub fn send_offsets(initial: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    let mut backoff = Backoff::new(initial, max);
    let mut at = Duration::ZERO;
    std::iter::from_fn(move || {
        let this = at;
        at = at.saturating_add(backoff.next_timeout());
        backoff.next = backoff.next.saturating_mul(2).min(backoff.max);
        Some(this)
    })
}

/// How long after its first transmission a message must have been answered when the
/// network loses everything until `healed_after` (measured from that first transmission)
/// and delivers every exchange within `rtt` from then on.
///
/// The answer is the first transmission at or after the heal, plus `rtt`; since the gap
/// never exceeds `max`, it is at most `healed_after + max + rtt`. Simulations use this as
/// the liveness invariant for a healed partition.
pub fn success_bound(
    initial: Duration,
    max: Duration,
    healed_after: Duration,
    rtt: Duration,
) -> Duration {
    let initial = initial.min(max);
    let mut at = Duration::ZERO;
    let mut gap = initial;
    // Doubling phase: at most ~log2(max/initial) steps.
    while at < healed_after && gap < max {
        at += gap;
        gap = gap.saturating_mul(2).min(max);
    }
    if at < healed_after {
        // Constant phase: jump straight to the first send at or after the heal.
        let behind = (healed_after - at).as_nanos();
        let steps = behind.div_ceil(max.as_nanos());
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        at = at.saturating_add(max.saturating_mul(steps));
    }
    at.saturating_add(rtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn timeouts(mut b: Backoff, n: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut now = t0;
        (0..n)
            .map(|_| {
                let deadline = b.on_send(now);
                let timeout = deadline - now;
                now = deadline;
                timeout
            })
            .collect()
    }

    #[test]
    fn standard_doubles_from_one_second_to_32() {
        let got = timeouts(Backoff::standard(), 9);
        let want: Vec<_> = [1, 2, 4, 8, 16, 32, 32, 32, 32]
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn first_registration_starts_at_one_and_a_half_and_caps_at_32() {
        let got = timeouts(Backoff::first_home_registration(), 8);
        let want: Vec<_> = [1500, 3000, 6000, 12000, 24000, 32000, 32000, 32000]
            .iter()
            .map(|m| ms(*m))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn attempts_deadline_and_reset() {
        let t0 = Instant::now();
        let mut b = Backoff::standard();
        assert_eq!((b.attempts(), b.poll_timeout()), (0, None));
        let d1 = b.on_send(t0);
        assert_eq!(d1, t0 + ms(1000));
        assert_eq!((b.attempts(), b.poll_timeout()), (1, Some(d1)));
        let d2 = b.on_send(d1);
        assert_eq!(d2, d1 + ms(2000));
        assert_eq!(b.attempts(), 2);
        assert_eq!(b.next_timeout(), ms(4000));
        b.reset();
        assert_eq!((b.attempts(), b.poll_timeout()), (0, None));
        assert_eq!(b.next_timeout(), ms(1000));
        // A send that is not at the previous deadline (e.g. a new BU) still uses `now`.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(b.on_send(later), later + ms(1000));
    }

    #[test]
    fn initial_above_max_is_clamped() {
        let got = timeouts(Backoff::new(ms(5000), ms(3000)), 3);
        assert_eq!(got, [ms(3000); 3]);
    }

    #[test]
    #[should_panic(expected = "zero")]
    fn zero_initial_is_refused() {
        Backoff::new(Duration::ZERO, MAX_BINDACK_TIMEOUT);
    }

    #[test]
    fn many_sends_never_overflow() {
        let t0 = Instant::now();
        let mut b = Backoff::standard();
        let mut now = t0;
        for _ in 0..10_000 {
            now = b.on_send(now);
        }
        assert_eq!(b.attempts(), 10_000);
        assert_eq!(b.next_timeout(), MAX_BINDACK_TIMEOUT);
    }

    #[test]
    fn send_offsets_follow_the_timer() {
        let offs: Vec<_> = send_offsets(INITIAL_BINDACK_TIMEOUT, MAX_BINDACK_TIMEOUT)
            .take(9)
            .collect();
        let want: Vec<_> = [0, 1, 3, 7, 15, 31, 63, 95, 127]
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect();
        assert_eq!(offs, want);
    }

    #[test]
    fn success_bound_is_the_first_send_after_the_heal_plus_rtt() {
        let rtt = ms(80);
        let (i, m) = (INITIAL_BINDACK_TIMEOUT, MAX_BINDACK_TIMEOUT);
        assert_eq!(success_bound(i, m, Duration::ZERO, rtt), rtt);
        assert_eq!(success_bound(i, m, ms(1), rtt), ms(1000) + rtt);
        assert_eq!(success_bound(i, m, ms(1000), rtt), ms(1000) + rtt);
        assert_eq!(success_bound(i, m, ms(1001), rtt), ms(3000) + rtt);
        assert_eq!(
            success_bound(i, m, ms(31_500), rtt),
            ms(31_000) + ms(32_000) + rtt
        );
        assert_eq!(success_bound(i, m, ms(95_000), rtt), ms(95_000) + rtt);
        assert_eq!(success_bound(i, m, ms(95_001), rtt), ms(127_000) + rtt);
    }

    #[test]
    fn success_bound_agrees_with_the_schedule_and_the_closed_form() {
        for (i, m) in [
            (INITIAL_BINDACK_TIMEOUT, MAX_BINDACK_TIMEOUT),
            (INITIAL_BINDACK_TIMEOUT_FIRST_REG, MAX_BINDACK_TIMEOUT),
            (ms(700), ms(5000)),
        ] {
            let rtt = ms(123);
            for heal_ms in (0..400_000).step_by(997) {
                let heal = ms(heal_ms);
                let first_after = send_offsets(i, m).find(|&o| o >= heal).unwrap();
                let bound = success_bound(i, m, heal, rtt);
                assert_eq!(bound, first_after + rtt, "heal {heal:?}");
                assert!(bound <= heal + m + rtt, "heal {heal:?}");
            }
        }
    }
}
