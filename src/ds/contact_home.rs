//! The contact node's registration of the DSA at the home agent (`ContactInterface`):
//! the membership protocol decides when and with which sequence number
//! ([`super::membership_machine::DsaRegistrar`]), and a mobile node role whose home address
//! is the DSA ([`MnPath`], started *held*) sends the Binding Updates, keeps the tunnel
//! to the home agent and receives what clients send to the DSA through it.
//!
//! The two run as separate machines of the event loop; a [`DsaLink`] is what they share:
//! the membership side writes what it wants (register with `seq`, or hold), the mobile
//! node side applies it on its next wake-up and writes back the sequence number the home
//! agent acknowledged, which the membership side turns into a commit when it is not the
//! committed one (so the next contact's number is newer still).

use super::membership::Command;
use super::membership_machine::DsaRegistrar;
use crate::config::model::DistributedServer;
use crate::datapath::mn_path::MnPath;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The DSA's prefix length when the block does not say: the home link is a /64 (RFC 4291
/// §2.5.4 for global unicast addresses).
pub const DSA_PREFIX_LEN: u8 = 64;

#[derive(Debug, Default)]
struct LinkState {
    /// `Some(seq)`: register with `seq`; `None`: hold.
    want: Option<u16>,
    /// A request the mobile node side has not applied yet, and since when.
    pending: Option<Instant>,
    /// The sequence number of the home agent's binding as the mobile node holds it.
    bound: Option<u16>,
    /// The last `bound` reported to the membership, so each is reported once.
    reported: Option<u16>,
    requests: u64,
}

/// Shared by the membership machine (through [`MnRegistrar`]) and the mobile node role.
#[derive(Clone, Debug, Default)]
pub struct DsaLink(Arc<Mutex<LinkState>>);

impl DsaLink {
    fn state(&self) -> MutexGuard<'_, LinkState> {
        // Both sides run on the loop's thread; a panic elsewhere leaves plain data.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, want: Option<u16>, now: Instant) {
        let mut s = self.state();
        s.want = want;
        s.pending = Some(now);
        s.reported = None;
        s.requests += 1;
    }

    /// For the mobile node side's `poll_timeout`: a request waits to be applied.
    pub fn pending_since(&self) -> Option<Instant> {
        self.state().pending
    }

    /// The request to apply, once.
    pub fn take_request(&self) -> Option<Option<u16>> {
        let mut s = self.state();
        s.pending.take().map(|_| s.want)
    }

    /// What the mobile node holds now: the acknowledged sequence number, if registered.
    pub fn set_bound(&self, seq: Option<u16>) {
        self.state().bound = seq;
    }
}

/// The [`DsaRegistrar`] that drives the mobile node role through a [`DsaLink`].
pub struct MnRegistrar(pub DsaLink);

impl DsaRegistrar for MnRegistrar {
    fn register(&mut self, _epoch: u64, seq: u16, now: Instant) {
        self.0.request(Some(seq), now);
    }

    fn withdraw(&mut self, _epoch: u64, now: Instant) {
        self.0.request(None, now);
    }

    /// The home agent holds our binding under another number than the committed one (the
    /// mobile node retransmitted, refreshed, or resynchronised after status 135): commit a
    /// number above it before anyone else may become contact.
    fn poll_command(&mut self) -> Option<Command> {
        let mut s = self.0.state();
        let (Some(want), Some(bound)) = (s.want, s.bound) else {
            return None;
        };
        if bound == want || s.reported == Some(bound) || s.pending.is_some() {
            return None;
        }
        s.reported = Some(bound);
        Some(Command::DsaSeqRejected { last: bound })
    }

    fn status(&self) -> Value {
        let s = self.0.state();
        json!({
            "registrar": "mobile node",
            "want": s.want.map_or(json!("held"), |q| json!(q)),
            "home_agent_binding_seq": s.bound,
            "requests": s.requests,
        })
    }
}

/// The mobile node role for the DSA of `ds`, held until the membership makes this node
/// the contact: home address = the DSA, home agent = `HomeAgentAddress`, care-of address
/// from `ContactInterface`, no route optimisation of its own (a client's binding for the
/// DSA is the handoff acceptor's to make).
pub fn start(
    cfg: &crate::config::Config,
    ds: &DistributedServer,
    cn: crate::proto::cn::Cn,
    engine: crate::datapath::mn_path::EngineChoice,
    registry: &mut crate::daemon::registry::Registry,
    now: Instant,
) -> Result<(MnPath, DsaLink), String> {
    use crate::datapath::mn_kernel::RtnlHome;
    use crate::proto::mn::{Mn, MnConfig};
    use crate::proto::movement::{Detector, MovementConfig, DEFAULT_PREFERENCE};
    use std::time::Duration;
    let iface = ds
        .contact_interface
        .clone()
        .ok_or("DistributedServer without ContactInterface")?;
    let hoa = ds.address;
    let mn_config = MnConfig {
        home_address: hoa,
        home_agents: vec![ds.home_agent_address],
        max_ha_binding_life: Duration::from_secs(u64::from(cfg.mn_max_ha_binding_life)),
        route_optimization: false,
        initial_bindack_timeout_first_reg: cfg.initial_bindack_timeout_first_reg,
        initial_bindack_timeout_rereg: cfg.initial_bindack_timeout_rereg,
        // One home agent: never give up on it.
        max_ha_consecutive_resends: 0,
        hold_home_registration: true,
        ..MnConfig::default()
    };
    let detector = Detector::new(MovementConfig {
        interfaces: vec![(iface, DEFAULT_PREFERENCE)],
        home_interface: None,
        home_address: hoa,
        home_prefix: (hoa, DSA_PREFIX_LEN),
    });
    let kernel = RtnlHome::open(hoa).map_err(|e| format!("rtnetlink: {e}"))?;
    let mn = Mn::new(mn_config, Arc::new(ring::rand::SystemRandom::new()));
    let mut path = MnPath::start(
        mn,
        cn,
        detector,
        Box::new(kernel),
        Vec::new(),
        engine,
        registry,
        now,
    )?;
    let link = DsaLink::default();
    path.follow_dsa(link.clone());
    tracing::info!(
        "DistributedServer \"{}\": the DSA {hoa} is registered at {} from this node's address on {} while it is the contact",
        ds.name,
        ds.home_agent_address,
        ds.contact_interface.as_deref().unwrap_or("?")
    );
    Ok((path, link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registrar_asks_for_a_commit_only_when_the_home_agent_holds_another_number() {
        let t0 = Instant::now();
        let link = DsaLink::default();
        let mut r = MnRegistrar(link.clone());
        r.register(1, 5, t0);
        assert_eq!(link.pending_since(), Some(t0));
        assert_eq!(link.take_request(), Some(Some(5)));
        assert_eq!(link.take_request(), None, "applied once");
        link.set_bound(Some(5));
        assert_eq!(r.poll_command(), None, "the committed number is bound");
        // The mobile node refreshed on its own: 6 is now the newest the HA saw.
        link.set_bound(Some(6));
        assert_eq!(r.poll_command(), Some(Command::DsaSeqRejected { last: 6 }));
        assert_eq!(r.poll_command(), None, "reported once");
        r.withdraw(1, t0);
        assert_eq!(link.take_request(), Some(None));
        link.set_bound(None);
        assert_eq!(r.poll_command(), None, "a held registration asks nothing");
        assert_eq!(r.status()["want"], "held");
    }
}
