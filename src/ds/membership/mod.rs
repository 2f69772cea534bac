//! Distributed Servers membership (issue #7, seed §2.3): one contact node, a few backups
//! that commit every change among themselves, and snodes that register with the contact.
//! Sans-IO like `proto`: [`Node`] takes frames, commands and timer expiries with the
//! current time and returns [`Action`]s. The protocol, its hardening (epochs, majorities,
//! authenticated frames) and what the majority costs in availability are described in
//! `README.md` beside this file.

pub mod codec;
pub mod node;
pub mod view;

pub use codec::{Durable, Message};
pub use node::{Action, Command, Config, Dest, Node, Rejection, Role, Stats, StopReason};
pub use view::{seq_newer, EpochDisplay, Member, NodeId, View};
