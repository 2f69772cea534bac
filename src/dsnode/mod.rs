//! A Distributed Servers node's handoff engine over blocking sockets, one thread per
//! handoff: the donor and acceptor drivers around the sans-IO machines (`ds::handoff`,
//! `ds::redirect`), the socket surgery (`sys::tcp_repair`), the donor's network lock
//! (`sys::netlock`) and the acceptor's per-connection data path
//! (`datapath::conn_binding`). `src/bin/m6-ds-server.rs`, `testbed/run handoff` and the
//! namespace tests run it; mip6d's event loop does not run it yet (the daemon side of
//! Distributed Servers is still to come), so it is a library for server applications.
//!
//! - [`channel`]: the sealed, length-prefixed control channel between two nodes.
//! - [`conn_path`]: the acceptor's per-connection binding on netfilter queues.
//! - [`donor`]: the contact's home test, drain, freeze, extract, offer, commit.
//! - [`acceptor`]: restore, redirect the client (care-of test, BU), activate; and the
//!   binding's release when the connection ends.

pub mod acceptor;
pub mod channel;
pub mod conn_path;
pub mod donor;

use std::io;

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}
