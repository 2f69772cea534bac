//! Distributed Servers (DESIGN.md layer 4): the logic of handing live TCP connections
//! between server nodes, sans-IO like `proto`. The socket surgery itself is
//! `sys::tcp_repair`.
//!
//! - [`conn_state`]: one frozen connection and its compact, strictly decoded encoding.
//! - [`phases`]: the seven timed phases of a handoff (the seed's Table 1).
//! - [`drain`]: whether the donor waits for its send queue to be acknowledged first.
//! - [`handoff`]: the donor ⇄ acceptor protocol: messages, states, timeouts, rollback.
//! - [`hello`]: the donor's check, before it freezes anything, that the acceptor holds
//!   the group's key.
//! - [`membership`]: contact node, backups and snodes (seed §2.3), hardened.
//! - [`redirect`]: the client redirected with Mobile IPv6: the contact's home test, the
//!   acceptor's care-of test and Binding Update.
//! - [`membership_machine`]: that protocol in the daemon (socket, timers, `mip6ctl members`);
//!   [`state_file`] keeps its promises across restarts; [`contact_home`] registers the DSA
//!   at the home agent while this node is the contact.

pub mod conn_state;
pub mod contact_home;
pub mod drain;
pub mod handoff;
pub mod hello;
pub mod membership;
pub mod membership_machine;
pub mod phases;
pub mod redirect;
pub mod state_file;
