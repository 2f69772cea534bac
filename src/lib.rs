//! mip6d: a Mobile IPv6 daemon (RFC 6275) with Distributed Servers.
//!
//! The crate is layered as described in `DESIGN.md`: `wire` turns bytes into typed
//! messages and back, and knows nothing of sockets, clocks or state.

pub mod config;
pub mod ctl;
pub mod wire;
