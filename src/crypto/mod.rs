//! Cryptography of the protocol, with `ring`.
//!
//! [`rr`] is the return routability procedure of RFC 6275 §5.2: the correspondent node's
//! secret Kcn and nonce table, keygen tokens, the binding management key Kbm and the
//! Binding Authorization Data authenticator. Everything here is a pure function of its
//! inputs plus an explicit `now` and random source, so the state machines in `proto` can
//! be tested under simulated time.
//!
//! [`auth`] seals the messages mip6d daemons exchange among themselves (Distributed
//! Servers membership and handoff) with HMAC-SHA256 and replay protection.

pub mod auth;
pub mod rr;
