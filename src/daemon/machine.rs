//! The hook between the event loop and the sans-IO protocol machines of `proto/` and `ds/`.
//!
//! A machine owns no socket and reads no clock: the loop tells it the time. After every
//! wake-up the loop asks each machine for its next deadline ([`Machine::poll_timeout`]) and
//! arms one timer per machine; when that timer fires it calls
//! [`Machine::handle_timeout`]. This is quinn-proto's shape, so the loop never needs to
//! know what a machine's timers mean (retransmission, binding expiry, heartbeats), and a
//! machine can be driven by a simulated clock in tests with the same calls.
//!
//! Packets in: a machine that owns sockets (a netfilter queue, a raw socket) lists their
//! descriptors in [`Machine::sources`]; the loop registers them with its `Poll` once, when
//! the machine is added, and calls [`Machine::on_readable`] when one becomes readable.
//! Registration is edge-triggered, so `on_readable` must read until the socket says
//! `WouldBlock`. The sockets stay owned by the machine, which is what keeps the loop
//! ignorant of what a role reads.
//!
//! Actions out: a machine keeps the actions its protocol logic produced and applies them
//! in [`Machine::apply_actions`], which the loop calls after every wake-up (packets or
//! timers), with a [`Ctx`]: the registry, so kernel objects it installs (netfilter rules)
//! are removed on shutdown, and the Mobility Header counters `mip6ctl stats` shows.

use super::control::Command;
use super::registry::Registry;
use serde_json::{json, Value};
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::time::Instant;

/// Mobility Header messages by type (RFC 6275 §6.1: types 0–7 are counted; others only
/// in `unknown`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MhCounters {
    pub received: [u64; 8],
    pub sent: [u64; 8],
    pub received_unknown: u64,
}

impl MhCounters {
    pub fn count_received(&mut self, mh_type: u8) {
        match self.received.get_mut(usize::from(mh_type)) {
            Some(n) => *n += 1,
            None => self.received_unknown += 1,
        }
    }

    pub fn count_sent(&mut self, mh_type: u8) {
        if let Some(n) = self.sent.get_mut(usize::from(mh_type)) {
            *n += 1;
        }
    }
}

/// What the loop lends a machine while it applies actions or reads packets.
pub struct Ctx<'a> {
    /// Record every kernel object installed here, with its undo.
    pub registry: &'a mut Registry,
    pub mh: &'a mut MhCounters,
}

pub trait Machine {
    /// Short name for logs and `mip6ctl status` ("cn", "ha", "ds:contact").
    fn name(&self) -> &str;

    /// The earliest time the machine wants [`Machine::handle_timeout`] called, or `None`.
    /// Must be cheap: it is asked after every event.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Called once the deadline from `poll_timeout` has passed (possibly late, never early).
    fn handle_timeout(&mut self, now: Instant);

    /// Binding cache entries this machine holds (HA and CN roles).
    fn binding_cache(&self, _now: Instant) -> Vec<BindingCacheEntry> {
        Vec::new()
    }

    /// Binding update list entries this machine holds (MN role).
    fn binding_update_list(&self, _now: Instant) -> Vec<BindingUpdateListEntry> {
        Vec::new()
    }

    /// Descriptors the loop should watch for this machine (read readiness,
    /// edge-triggered). Asked once, when the machine is added.
    fn sources(&self) -> Vec<RawFd> {
        Vec::new()
    }

    /// `fd` (one of [`Machine::sources`]) is readable: read until it would block.
    fn on_readable(&mut self, _fd: RawFd, _now: Instant, _ctx: &mut Ctx<'_>) {}

    /// Applies whatever the protocol logic asked for since the last call (sends,
    /// binding installs). Called after every wake-up of the loop.
    fn apply_actions(&mut self, _now: Instant, _ctx: &mut Ctx<'_>) {}

    /// What `mip6ctl status` shows of this machine beyond its name (the mobile node:
    /// where it is, its tunnel); `Null` for nothing.
    fn status(&self) -> Value {
        Value::Null
    }

    /// What `mip6ctl members` shows of this machine (a Distributed Servers membership
    /// view); `Null` for machines that hold none.
    fn members(&self, _now: Instant) -> Value {
        Value::Null
    }

    /// A control request beyond the common ones, for the machine that serves it
    /// (`handoff`, `handoffs`: the Distributed Servers handoff service); `None`: not
    /// this machine's.
    fn request(
        &mut self,
        _cmd: Command,
        _args: &Value,
        _now: Instant,
    ) -> Option<Result<Value, String>> {
        None
    }
}

/// One binding cache row as `mip6ctl bc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingCacheEntry {
    pub home_address: Ipv6Addr,
    pub care_of_address: Ipv6Addr,
    /// Seconds left.
    pub lifetime: u32,
    pub sequence: u16,
    /// BU flags as letters (A H L K R).
    pub flags: String,
    /// "home" for a home registration at an HA, "cache" for a CN binding.
    pub kind: &'static str,
}

impl BindingCacheEntry {
    pub fn to_json(&self) -> Value {
        json!({
            "home_address": self.home_address.to_string(),
            "care_of_address": self.care_of_address.to_string(),
            "lifetime": self.lifetime,
            "sequence": self.sequence,
            "flags": self.flags,
            "kind": self.kind,
        })
    }
}

/// One binding update list row as `mip6ctl bul` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingUpdateListEntry {
    /// The home agent or correspondent the BU went to.
    pub peer: Ipv6Addr,
    pub home_address: Ipv6Addr,
    pub care_of_address: Ipv6Addr,
    pub lifetime: u32,
    pub sequence: u16,
    pub flags: String,
    /// What the entry waits for ("ack", "rr", "bound").
    pub state: String,
}

impl BindingUpdateListEntry {
    pub fn to_json(&self) -> Value {
        json!({
            "peer": self.peer.to_string(),
            "home_address": self.home_address.to_string(),
            "care_of_address": self.care_of_address.to_string(),
            "lifetime": self.lifetime,
            "sequence": self.sequence,
            "flags": self.flags,
            "state": self.state,
        })
    }
}
