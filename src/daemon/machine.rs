//! The hook between the event loop and the sans-IO protocol machines of `proto/` and `ds/`.
//!
//! A machine owns no socket and reads no clock: the loop tells it the time. After every
//! wake-up the loop asks each machine for its next deadline ([`Machine::poll_timeout`]) and
//! arms one timer per machine; when that timer fires it calls
//! [`Machine::handle_timeout`]. This is quinn-proto's shape, so the loop never needs to
//! know what a machine's timers mean (retransmission, binding expiry, heartbeats), and a
//! machine can be driven by a simulated clock in tests with the same calls.
//!
//! Packets in and actions out (send this, install that binding) will be added beside these
//! methods when the roles land; the loop already re-polls every machine after any event,
//! so they slot in without changing its structure.

use serde_json::{json, Value};
use std::net::Ipv6Addr;
use std::time::Instant;

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
