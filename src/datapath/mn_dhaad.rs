//! The mobile node's Dynamic Home Agent Address Discovery on the user data path (RFC 6275
//! §11.4.1), for an `MnHomeLink` without `HomeAgentAddress`: the sans-IO
//! [`DhaadClient`] decides, this module sends its requests (from the care-of address to
//! the home prefix's Home-Agents anycast address, through the data path's `IPPROTO_RAW`
//! socket) and reads the replies on a raw ICMPv6 socket filtered to type 145.
//!
//! When to search ([`wanted`]): away from home with no home agent left to try — at
//! start, and again after every candidate refused the registration (umip does the same).
//! A search that gave up is retried after [`RETRY_AFTER`], or at once on a new care-of
//! address.

use super::MAX_ERRORS_PER_WAKE;
use crate::proto::discovery::{DhaadClient, DhaadOutcome};
use crate::proto::mn::{Location, Mn};
use crate::sys::raw::{RawSocket, IPPROTO_ICMPV6};
use crate::wire::icmpv6::{self, Icmpv6Repr};
use crate::wire::packet::{PacketBuilder, Payload};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// How long after a search gave up the next one starts (same care-of address).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether a search should run: away (the request leaves from the care-of address) and no
/// home agent to register with.
pub fn wanted(location: Location, home_agent: Option<Ipv6Addr>, failed: bool) -> Option<Ipv6Addr> {
    match location {
        Location::Away(coa) if home_agent.is_none() || failed => Some(coa),
        _ => None,
    }
}

pub struct MnDhaad {
    rx: RawSocket,
    prefix: (Ipv6Addr, u8),
    client: Option<DhaadClient>,
    /// When the last search gave up, and from which care-of address.
    gave_up: Option<(Instant, Ipv6Addr)>,
    /// What the last search found.
    found: Vec<Ipv6Addr>,
    rng: SystemRandom,
}

impl MnDhaad {
    pub fn open(home_prefix: (Ipv6Addr, u8)) -> Result<MnDhaad, String> {
        let err = |what: &str, e: io::Error| format!("home agent discovery: {what}: {e}");
        let rx = RawSocket::new(IPPROTO_ICMPV6).map_err(|e| err("raw ICMPv6 socket", e))?;
        rx.set_icmp6_filter(&[icmpv6::TYPE_HAAD_REPLY])
            .map_err(|e| err("ICMP6_FILTER", e))?;
        rx.set_nonblocking().map_err(|e| err("O_NONBLOCK", e))?;
        tracing::info!(
            "mobile node: no HomeAgentAddress, home agents of {}/{} by DHAAD",
            home_prefix.0,
            home_prefix.1
        );
        Ok(MnDhaad {
            rx,
            prefix: home_prefix,
            client: None,
            gave_up: None,
            found: Vec::new(),
            rng: SystemRandom::new(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = self.gave_up.map(|(t, _)| t + RETRY_AFTER);
        [
            self.client.as_ref().and_then(DhaadClient::poll_timeout),
            retry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts, follows or ends a search as the mobile node's state asks; sends what is
    /// due. Call after every change of the mobile node and on timeouts.
    pub fn drive(&mut self, mn: &mut Mn, raw: &RawSocket, now: Instant) {
        let want = wanted(
            mn.location(),
            mn.home_agent(),
            mn.home_registration_failed(),
        );
        match (want, self.client.as_mut()) {
            (None, _) => self.client = None,
            (Some(coa), Some(c)) => {
                c.set_care_of(coa);
                c.handle_timeout(now);
            }
            (Some(coa), None) => {
                let retry_due = match self.gave_up {
                    Some((t, from)) => from != coa || now >= t + RETRY_AFTER,
                    None => true,
                };
                if retry_due {
                    let mut id = [0u8; 2];
                    // A failed random source leaves 0: replies still match, only less
                    // protected against stale ones.
                    let _ = self.rng.fill(&mut id);
                    self.gave_up = None;
                    self.client = DhaadClient::start(
                        self.prefix.0,
                        self.prefix.1,
                        coa,
                        u16::from_be_bytes(id),
                        now,
                    );
                    tracing::info!("DHAAD: searching from {coa}");
                }
            }
        }
        self.conclude(mn, now);
        if let Some(c) = self.client.as_mut() {
            while let Some(s) = c.poll_transmit() {
                let pkt = PacketBuilder::new(s.src, s.dst).build(Payload::Icmpv6(&s.request));
                match raw.send_to(&pkt, s.dst) {
                    Ok(_) => tracing::debug!("DHAAD request {} -> {}", s.src, s.dst),
                    Err(e) => tracing::warn!("DHAAD request to {}: {e}", s.dst),
                }
            }
        }
    }

    fn conclude(&mut self, mn: &mut Mn, now: Instant) {
        let Some(outcome) = self.client.as_ref().and_then(|c| c.outcome().cloned()) else {
            return;
        };
        let coa = match mn.location() {
            Location::Away(c) => c,
            _ => Ipv6Addr::UNSPECIFIED,
        };
        self.client = None;
        match outcome {
            DhaadOutcome::Found(agents) => {
                tracing::info!("DHAAD: home agents {agents:?}");
                self.found = agents.clone();
                mn.set_home_agents(agents, now);
            }
            DhaadOutcome::GaveUp => {
                tracing::warn!(
                    "DHAAD: no reply; trying again in {}s",
                    RETRY_AFTER.as_secs()
                );
                self.gave_up = Some((now, coa));
            }
        }
    }

    /// Reads the replies waiting on the socket.
    pub fn on_readable(&mut self, mn: &mut Mn, now: Instant) {
        let mut buf = [0u8; 1500];
        let mut errors = 0;
        loop {
            let n = match self.rx.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("DHAAD socket: {e}");
                    errors += 1;
                    if errors >= MAX_ERRORS_PER_WAKE {
                        break;
                    }
                    continue;
                }
            };
            let (Some(c), Some(data)) = (self.client.as_mut(), buf.get(..n)) else {
                continue;
            };
            if let Ok(reply @ Icmpv6Repr::HaadReply { .. }) = Icmpv6Repr::parse(data) {
                c.on_reply(&reply);
            }
        }
        self.conclude(mn, now);
    }

    /// For `mip6ctl status`.
    pub fn status(&self) -> Value {
        let state = match (&self.client, self.gave_up) {
            (Some(_), _) => "searching",
            (None, Some(_)) => "gave up",
            (None, None) if !self.found.is_empty() => "found",
            (None, None) => "idle",
        };
        json!({
            "state": state,
            "home_prefix": format!("{}/{}", self.prefix.0, self.prefix.1),
            "found": self.found.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_only_away_without_a_home_agent() {
        let coa: Ipv6Addr = "2001:db8:41::100".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        assert_eq!(wanted(Location::Away(coa), None, false), Some(coa));
        assert_eq!(wanted(Location::Away(coa), Some(ha), false), None);
        assert_eq!(wanted(Location::Away(coa), Some(ha), true), Some(coa));
        assert_eq!(wanted(Location::Home, None, false), None);
        assert_eq!(wanted(Location::Detached, None, true), None);
    }
}
