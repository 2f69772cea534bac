//! The data path (DESIGN.md layer 6): how packets get the Mobile IPv6 treatment.
//!
//! [`rewrite`] holds the packet transformations a kernel with `CONFIG_IPV6_MIP6` and
//! `ip6_tunnel` would do itself, as pure functions; [`user`] runs the correspondent node
//! on them (netfilter queues in, raw socket out) as a daemon machine, and [`ha_user`] the
//! home agent (with an ip6ip6 tunnel done in user space). The mobile node backend and the
//! `kernel` backend are still to come. The kernel side of receiving packets for them is
//! [`crate::sys::nfqueue`]; `README.md` beside this file says which netfilter rules feed
//! which rewrite, and what the spike in `tests/datapath_nfqueue.rs` proved on this kernel.

pub mod ha_user;
pub mod mn_kernel;
pub mod mn_user;
pub mod rewrite;
pub mod sets;
pub mod user;
