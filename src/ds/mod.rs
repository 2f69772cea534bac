//! Distributed Servers: server nodes sharing one IPv6 address (the DSA).

pub mod membership;
