//! mip6d: a Mobile IPv6 daemon (RFC 6275) with Distributed Servers.
//!
//! The crate is layered as described in `DESIGN.md`: `wire` turns bytes into typed
//! messages and back; `crypto` holds return routability; `proto` the sans-IO protocol
//! logic; `config` reads `mip6d.conf`; `daemon` is the event loop, signals, systemd
//! integration and the control socket; `ctl` is the operator's command line.

pub mod config;
pub mod crypto;
pub mod ctl;
pub mod daemon;
pub mod datapath;
pub mod ds;
pub mod dsapp;
pub mod dsnode;
pub mod hex;
pub mod linkemu;
pub mod proto;
pub mod sys;
pub mod wire;

#[cfg(test)]
mod testutil;
