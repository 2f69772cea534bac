//! A Distributed Servers node's handoff engine over blocking sockets, one thread per
//! handoff: the donor and acceptor drivers around the sans-IO machines (`ds::handoff`,
//! `ds::redirect`), the socket surgery (`sys::tcp_repair`), the donor's network lock
//! (`sys::netlock`) and the acceptor's per-connection data path
//! (`datapath::conn_binding`). mip6d runs it as a machine of its event loop
//! ([`service`]); `src/bin/m6-ds-server.rs` and the namespace tests also drive it
//! directly.
//!
//! - [`channel`]: the sealed, length-prefixed control channel between two nodes.
//! - [`conn_path`]: the acceptor's per-connection binding on netfilter queues, and the
//!   choice between those and [`conn_xfrm`], the same binding on XFRM (MIP6 kernels).
//! - [`donor`]: the contact's home test, drain, freeze, extract, offer, commit.
//! - [`hello`]: the donor's authentication check of the acceptor before a handoff.
//! - [`acceptor`]: restore, redirect the client (care-of test, BU), activate; and the
//!   binding's release when the connection ends.
//! - [`service`]: the engine in mip6d: workers, keepers, `mip6ctl handoff`/`handoffs`
//!   and the application socket.

pub mod acceptor;
pub mod channel;
pub mod conn_path;
pub mod conn_xfrm;
pub mod donor;
pub mod hello;
pub mod service;

use std::io;

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}
