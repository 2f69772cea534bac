//! Drain-before-freeze (the seed's Figure 2): before freezing a connection the donor may
//! wait, bounded, until the client has acknowledged everything in the send queue. A drained
//! connection's state is about 100 bytes instead of up to the whole send buffer, so the
//! state transfer takes one one-way latency. The client keeps receiving while the donor
//! waits, so waiting lengthens the handoff but not the pause the client sees.
//!
//! Sans-IO: [`Drain::sample`] takes the unacknowledged byte count (SIOCOUTQ) and the time
//! since the drain began and says wait or freeze; `sys::tcp_repair::drain` is the poll loop.
//!
//! - `off`: freeze at once.
//! - `on`: wait until the queue is empty or the bound has passed.
//! - `auto`: as `on`, but give up as soon as the observed drain rate says the queue will
//!   not be empty within the bound, or nothing was acknowledged for a tenth of the bound
//!   (a client that stopped reading): waiting longer would only delay the handoff.

use std::time::Duration;

use crate::config::model::HandoffDrain;

/// Why the donor freezes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeReason {
    /// Drain is off.
    Off,
    /// The send queue is empty.
    Drained,
    /// The bound passed with data still unacknowledged.
    BoundReached,
    /// `auto`: at the observed rate the queue would still hold data at the bound.
    WillNotFinish,
    /// `auto`: nothing acknowledged for a tenth of the bound.
    NoProgress,
}

/// What the donor does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Wait,
    Freeze(FreezeReason),
}

/// One drain in progress.
#[derive(Debug, Clone)]
pub struct Drain {
    mode: HandoffDrain,
    bound: Duration,
    /// The first sample: where the rate is measured from.
    first: Option<(Duration, u32)>,
    /// The last time the queue shrank, and its size then.
    last_progress: Option<(Duration, u32)>,
    /// An immediate acknowledgement was asked for ([`Drain::solicit`]).
    solicited: bool,
}

impl Drain {
    /// How long a donor waits at most by default: a handoff that waits longer is better
    /// served by shipping the queue (the seed's slowest link drained in about 2 s).
    pub const DEFAULT_BOUND: Duration = Duration::from_millis(500);

    pub fn new(mode: HandoffDrain, bound: Duration) -> Drain {
        Drain {
            mode,
            bound,
            first: None,
            last_progress: None,
            solicited: false,
        }
    }

    /// Whether to make the client acknowledge at once (`sys::tcp_repair::solicit_ack`)
    /// while waiting: when everything was transmitted (`unsent` = 0) and only
    /// acknowledgements are missing. A client acknowledges every second full segment at
    /// once but holds back the ACK of a last odd one for its delayed-ACK time (40 ms on
    /// Linux) — with nothing more coming, every drain would wait that long while the
    /// client already has every byte. Once per drain: the client answers such a probe
    /// only once per `tcp_invalid_ratelimit` (500 ms), and the probe trails the data on
    /// the path, so its answer covers all of it.
    pub fn solicit(&mut self, outq: u32, unsent: u32) -> bool {
        if self.mode == HandoffDrain::Off || self.solicited || outq == 0 || unsent > 0 {
            return false;
        }
        self.solicited = true;
        true
    }

    /// `outq`: unacknowledged bytes now; `elapsed`: since the drain began.
    pub fn sample(&mut self, elapsed: Duration, outq: u32) -> Decision {
        if self.mode == HandoffDrain::Off {
            return Decision::Freeze(FreezeReason::Off);
        }
        if outq == 0 {
            return Decision::Freeze(FreezeReason::Drained);
        }
        if elapsed >= self.bound {
            return Decision::Freeze(FreezeReason::BoundReached);
        }
        let (t0, q0) = *self.first.get_or_insert((elapsed, outq));
        match self.last_progress {
            Some((_, q)) if outq < q => self.last_progress = Some((elapsed, outq)),
            None => self.last_progress = Some((elapsed, outq)),
            _ => {}
        }
        if self.mode == HandoffDrain::On {
            return Decision::Wait;
        }
        let (tp, _) = self.last_progress.unwrap_or((elapsed, outq));
        if elapsed.saturating_sub(tp) >= self.bound / 10 {
            return Decision::Freeze(FreezeReason::NoProgress);
        }
        let span = elapsed.saturating_sub(t0);
        if outq >= q0 || span.is_zero() {
            // No rate yet (first sample, or the application is still writing).
            return Decision::Wait;
        }
        let rate = f64::from(q0 - outq) / span.as_secs_f64();
        let needed = Duration::from_secs_f64(f64::from(outq) / rate);
        if elapsed + needed > self.bound {
            Decision::Freeze(FreezeReason::WillNotFinish)
        } else {
            Decision::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn off_freezes_at_once_whatever_the_queue() {
        let mut d = Drain::new(HandoffDrain::Off, ms(500));
        assert_eq!(
            d.sample(ms(0), 400_000),
            Decision::Freeze(FreezeReason::Off)
        );
    }

    #[test]
    fn on_waits_until_empty_or_the_bound() {
        let mut d = Drain::new(HandoffDrain::On, ms(500));
        assert_eq!(d.sample(ms(0), 100_000), Decision::Wait);
        // No progress at all: `on` still waits, up to the bound.
        assert_eq!(d.sample(ms(400), 100_000), Decision::Wait);
        assert_eq!(d.sample(ms(450), 10), Decision::Wait);
        assert_eq!(
            d.sample(ms(460), 0),
            Decision::Freeze(FreezeReason::Drained)
        );
        let mut d = Drain::new(HandoffDrain::On, ms(500));
        assert_eq!(d.sample(ms(0), 100_000), Decision::Wait);
        assert_eq!(
            d.sample(ms(500), 1),
            Decision::Freeze(FreezeReason::BoundReached)
        );
    }

    #[test]
    fn auto_waits_while_the_rate_says_it_will_finish() {
        let mut d = Drain::new(HandoffDrain::Auto, ms(500));
        assert_eq!(d.sample(ms(0), 100_000), Decision::Wait);
        // 10 kB per ms: 50 kB left needs 5 ms more, well within the bound.
        assert_eq!(d.sample(ms(5), 50_000), Decision::Wait);
        assert_eq!(d.sample(ms(10), 0), Decision::Freeze(FreezeReason::Drained));
    }

    #[test]
    fn auto_gives_up_early_on_a_slow_drain() {
        let mut d = Drain::new(HandoffDrain::Auto, ms(500));
        assert_eq!(d.sample(ms(0), 400_000), Decision::Wait);
        // 100 B per ms: 399.9 kB would take about 4 s, far past the bound — freeze now
        // rather than at 500 ms.
        assert_eq!(
            d.sample(ms(1), 399_900),
            Decision::Freeze(FreezeReason::WillNotFinish)
        );
        // `on` with the same samples keeps waiting.
        let mut d = Drain::new(HandoffDrain::On, ms(500));
        d.sample(ms(0), 400_000);
        assert_eq!(d.sample(ms(1), 399_900), Decision::Wait);
    }

    #[test]
    fn auto_gives_up_when_the_client_stops_acknowledging() {
        let mut d = Drain::new(HandoffDrain::Auto, ms(500));
        assert_eq!(d.sample(ms(0), 1000), Decision::Wait);
        assert_eq!(d.sample(ms(49), 1000), Decision::Wait);
        assert_eq!(
            d.sample(ms(50), 1000),
            Decision::Freeze(FreezeReason::NoProgress)
        );
    }

    #[test]
    fn an_acknowledgement_is_solicited_once_when_only_acks_are_missing() {
        let mut d = Drain::new(HandoffDrain::On, ms(500));
        // Still transmitting: the ACKs will come with the data.
        assert!(!d.solicit(100_000, 60_000));
        // Nothing left to acknowledge.
        assert!(!d.solicit(0, 0));
        // All transmitted, the last segment's ACK missing: ask, once.
        assert!(d.solicit(1448, 0));
        assert!(!d.solicit(1448, 0));
        // `off` never waits, so never asks.
        let mut d = Drain::new(HandoffDrain::Off, ms(500));
        assert!(!d.solicit(1448, 0));
    }

    #[test]
    fn auto_keeps_waiting_while_the_application_still_writes() {
        let mut d = Drain::new(HandoffDrain::Auto, ms(500));
        assert_eq!(d.sample(ms(0), 1000), Decision::Wait);
        // The queue grew: no rate can be computed, and that is not a stall either.
        assert_eq!(d.sample(ms(1), 5000), Decision::Wait);
    }
}
