//! The seven timed phases of one handoff (the seed's Table 1), so every handoff can be
//! compared with the seed's measurements phase by phase.
//!
//! Durations, not wall-clock timestamps: the donor and the acceptor do not share a clock,
//! so each node measures the phases it runs with its own monotonic clock and the numbers
//! travel in the messages (phase 1 inside the connection state, 3 in the Accept, 4–7 in
//! the Done).

use std::fmt;
use std::time::Duration;

/// One phase of a handoff, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Donor: network lock, freeze, dump (`TCP_REPAIR`), close in repair mode.
    SocketExtraction = 0,
    /// Donor → acceptor over the authenticated control channel.
    StateTransfer = 1,
    /// Acceptor: the socket rebuilt in repair mode.
    SocketRecreation = 2,
    /// Acceptor ⇄ client return routability (the mobility side's hook).
    ReturnRoutability = 3,
    /// Acceptor: building the Binding Update (the mobility side's hook).
    BuConstruction = 4,
    /// Acceptor ⇄ client BU/BA: from here the client's packets reach the acceptor.
    BindingManagement = 5,
    /// Acceptor: repair mode off, the connection lives again.
    SocketActivation = 6,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::SocketExtraction,
        Phase::StateTransfer,
        Phase::SocketRecreation,
        Phase::ReturnRoutability,
        Phase::BuConstruction,
        Phase::BindingManagement,
        Phase::SocketActivation,
    ];

    /// As in the seed's Table 1.
    pub fn name(self) -> &'static str {
        match self {
            Phase::SocketExtraction => "socket extraction",
            Phase::StateTransfer => "state transfer",
            Phase::SocketRecreation => "socket re-creation",
            Phase::ReturnRoutability => "return routability",
            Phase::BuConstruction => "BU construction",
            Phase::BindingManagement => "binding management",
            Phase::SocketActivation => "socket activation",
        }
    }
}

/// What is known about one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhaseTime {
    /// Not reached (yet), or measured on the other node and not reported.
    #[default]
    Pending,
    /// Did not apply to this handoff (e.g. the route was switched by other means than
    /// MIPv6, so there was no return routability).
    Skipped,
    /// Took this many microseconds (saturating at `u32::MAX`, about 71 minutes).
    Took(u32),
}

impl PhaseTime {
    pub fn took(d: Duration) -> PhaseTime {
        PhaseTime::Took(u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
    }

    pub fn micros(self) -> Option<u32> {
        match self {
            PhaseTime::Took(us) => Some(us),
            _ => None,
        }
    }
}

/// The seven phases of one handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(pub [PhaseTime; 7]);

impl Phases {
    pub fn get(&self, p: Phase) -> PhaseTime {
        self.0[p as usize]
    }

    pub fn set(&mut self, p: Phase, t: PhaseTime) {
        self.0[p as usize] = t;
    }

    /// Takes every phase `other` knows and this one does not.
    pub fn merge(&mut self, other: &Phases) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            if *mine == PhaseTime::Pending {
                *mine = *theirs;
            }
        }
    }

    /// The sum of the measured phases.
    pub fn total(&self) -> Duration {
        Duration::from_micros(
            self.0
                .iter()
                .filter_map(|t| t.micros())
                .map(u64::from)
                .sum(),
        )
    }
}

impl fmt::Display for Phases {
    /// One line per phase, as the seed's Table 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in Phase::ALL.iter().enumerate() {
            let v = match self.get(*p) {
                PhaseTime::Pending => "-".to_string(),
                PhaseTime::Skipped => "skipped".to_string(),
                PhaseTime::Took(us) => format!("{:.3} ms", f64::from(us) / 1000.0),
            };
            writeln!(f, "{} {:<20} {v}", i + 1, p.name())?;
        }
        write!(
            f,
            "  {:<20} {:.3} ms",
            "total",
            self.total().as_secs_f64() * 1000.0
        )
    }
}

/// Finer timings inside and around the seven phases (the network lock, the channel's
/// write and read, the per-connection data path's start, leaving repair mode, ...),
/// named, in the order they were taken: what a phase is made of, and what runs on the
/// handoff's critical path without belonging to any phase. Local to the node that
/// measured them; they do not travel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans(pub Vec<(&'static str, Duration)>);

impl Spans {
    pub fn add(&mut self, name: &'static str, d: Duration) {
        self.0.push((name, d));
    }

    /// Runs `f` and records how long it took under `name`.
    pub fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        self.add(name, t.elapsed());
        r
    }

    pub fn get(&self, name: &str) -> Option<Duration> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_is_known_and_total_sums_measured_phases() {
        let mut donor = Phases::default();
        donor.set(Phase::SocketExtraction, PhaseTime::Took(800));
        let mut acceptor = Phases::default();
        acceptor.set(Phase::SocketExtraction, PhaseTime::Took(1));
        acceptor.set(Phase::SocketRecreation, PhaseTime::Took(200));
        acceptor.set(Phase::ReturnRoutability, PhaseTime::Skipped);
        donor.merge(&acceptor);
        assert_eq!(donor.get(Phase::SocketExtraction), PhaseTime::Took(800));
        assert_eq!(donor.get(Phase::SocketRecreation), PhaseTime::Took(200));
        assert_eq!(donor.get(Phase::ReturnRoutability), PhaseTime::Skipped);
        assert_eq!(donor.total(), Duration::from_micros(1000));
        assert!(donor.to_string().contains("3 socket re-creation"));
    }

    #[test]
    fn spans_keep_their_order_and_names() {
        let mut s = Spans::default();
        s.add("lock", Duration::from_micros(40));
        let v = s.time("work", || 7);
        assert_eq!(v, 7);
        assert_eq!(s.0[0], ("lock", Duration::from_micros(40)));
        assert_eq!(s.0[1].0, "work");
        assert_eq!(s.get("lock"), Some(Duration::from_micros(40)));
        assert_eq!(s.get("nothing"), None);
    }

    #[test]
    fn took_saturates() {
        assert_eq!(
            PhaseTime::took(Duration::from_secs(1 << 40)),
            PhaseTime::Took(u32::MAX)
        );
    }
}
