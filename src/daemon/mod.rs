//! The daemon: the event loop and everything that makes `mip6d` something a system can
//! run — signals, systemd readiness and watchdog, logging, the pid file, the control
//! socket, and one registry of what the daemon installed so that it can remove it all.
//!
//! The protocol roles plug in through [`machine::Machine`]: sans-IO state machines that
//! the loop drives with the clock and (later) with packets.

pub mod control;
mod event_loop;
pub mod leftovers;
pub mod logging;
pub mod machine;
pub mod notify;
pub mod pidfile;
pub mod registry;
pub mod reload;
pub mod timers;

pub use event_loop::{Daemon, Settings};
