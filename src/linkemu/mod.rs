//! A userspace link emulator for the namespace testbed (`testbed/run up --emulator user`),
//! for kernels without `tc netem`: per link and direction, a loss process, a bounded queue
//! in front of a token bucket, and a delay line with optional jitter.
//!
//! The scheduling core is sans-IO: [`Link`] takes frames and the time and says when each
//! leaves, so every number it produces is testable without sockets or clocks. The binary
//! `m6-linkemu` (src/bin/m6-linkemu.rs) is the I/O shell: two TAP devices per link, one
//! poll loop, a timerfd, and a control socket that [`ctl`] parses.
//!
//! - [`link`]: one direction of a link (`enqueue`, `poll_release`, `poll_timeout`).
//! - [`params`]: what a direction emulates, parsed from and printed as `key=value` words.
//! - [`loss`]: the random and Gilbert–Elliott loss processes and their seeded generator.
//! - [`ctl`]: the line protocol of the control socket.

pub mod ctl;
pub mod link;
pub mod loss;
pub mod params;

pub use link::{Link, Stats, Verdict};
pub use loss::{Loss, SplitMix64};
pub use params::Params;
