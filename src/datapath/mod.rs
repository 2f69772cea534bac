//! The data path (DESIGN.md layer 6): how packets get the Mobile IPv6 treatment.
//!
//! [`rewrite`] holds the packet transformations a kernel with `CONFIG_IPV6_MIP6` and
//! `ip6_tunnel` would do itself, as pure functions; [`user`] runs the correspondent node
//! on them (netfilter queues in, raw socket out) as a daemon machine, and [`ha_user`] the
//! home agent (with an ip6ip6 tunnel done in user space). [`kernel`] is the other backend:
//! it programs the kernel's own MIP6 code (XFRM route-optimisation states and
//! sub-policies, ip6ip6 tunnels, table 252) as umip does; [`probe`] tells whether the
//! running kernel can do that (`--datapath auto`). The kernel side of receiving packets
//! for the user backends is [`crate::sys::nfqueue`]; `README.md` beside this file says
//! which netfilter rules feed which rewrite, and what the spike in
//! `tests/datapath_nfqueue.rs` proved on this kernel.

pub mod conn_binding;
pub mod ha_icmp;
pub mod ha_user;
pub mod home_link;
pub mod kernel;
pub mod mn_dhaad;
pub mod mn_kernel;
pub mod mn_path;
pub mod mn_seg6;
pub mod mn_user;
pub mod probe;
pub mod rewrite;
pub mod seg6;
pub mod sets;
pub mod user;

use crate::daemon::registry::Registry;
use std::io;
use std::net::Ipv6Addr;

/// How many failed reads in a row end one readiness callback. Reads must go on until the
/// socket would block (the loop is edge-triggered), but a socket that only ever fails
/// must not pin the loop.
pub(crate) const MAX_ERRORS_PER_WAKE: usize = 64;

/// Reads `src` with `recv` until it would block, handing each item to `each`. Errors are
/// logged under `what`; [`MAX_ERRORS_PER_WAKE`] of them in a row end this wake.
/// `NotFound` is not counted: on a netfilter queue it is the answer to a verdict for a
/// packet the kernel already dropped (an interface going down flushes its packets).
pub(crate) fn drain<S, T>(
    what: &str,
    src: &mut S,
    mut recv: impl FnMut(&mut S) -> io::Result<T>,
    mut each: impl FnMut(&mut S, T),
) {
    let mut errors = 0;
    loop {
        match recv(src) {
            Ok(item) => {
                errors = 0;
                each(src, item);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => tracing::debug!("{what}: {e}"),
            Err(e) => {
                tracing::warn!("{what}: {e}");
                errors += 1;
                if errors >= MAX_ERRORS_PER_WAKE {
                    return;
                }
            }
        }
    }
}

/// A binding as a data path needs to know it: what the protocol machines decided, in the
/// terms of the packets it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// Home agent: a mobile node's home registration (its care-of address may change by
    /// installing it again).
    HomeRegistration {
        ha: Ipv6Addr,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
    },
    /// Correspondent node (every role): a binding cache entry — packets from `local` to
    /// `hoa` go to `coa` with a Type 2 Routing Header, and arrive from it with a Home
    /// Address option.
    Correspondent {
        local: Ipv6Addr,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
    },
    /// Mobile node: the home binding; `acknowledged` once the home agent's BA arrived
    /// (then the tunnel carries what leaves from the home address).
    MnHome {
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        ha: Ipv6Addr,
        acknowledged: bool,
    },
    /// Mobile node: route optimisation with correspondent `cn` (after its BA).
    MnRouteOptimization {
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        cn: Ipv6Addr,
    },
    /// Mobile node: a Binding Update to correspondent `cn` from `coa` is outstanding or
    /// bound, so Binding Updates to it leave with a Home Address option naming `coa`.
    MnCorrespondentUpdate {
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        cn: Ipv6Addr,
    },
    /// Mobile node: no registration covers where the node is; nothing but signalling
    /// leaves from the home address (umip's `xfrm_block_hoa`).
    MnBlock { hoa: Ipv6Addr },
}

/// What identifies a binding: installing a binding with the key of an installed one
/// replaces it (a new care-of address, an acknowledgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindingKey {
    HomeRegistration { hoa: Ipv6Addr },
    Correspondent { local: Ipv6Addr, hoa: Ipv6Addr },
    MnHome { hoa: Ipv6Addr },
    MnRouteOptimization { hoa: Ipv6Addr, cn: Ipv6Addr },
    MnCorrespondentUpdate { hoa: Ipv6Addr, cn: Ipv6Addr },
    MnBlock { hoa: Ipv6Addr },
}

impl Binding {
    pub fn key(&self) -> BindingKey {
        match *self {
            Binding::HomeRegistration { hoa, .. } => BindingKey::HomeRegistration { hoa },
            Binding::Correspondent { local, hoa, .. } => BindingKey::Correspondent { local, hoa },
            Binding::MnHome { hoa, .. } => BindingKey::MnHome { hoa },
            Binding::MnRouteOptimization { hoa, cn, .. } => {
                BindingKey::MnRouteOptimization { hoa, cn }
            }
            Binding::MnCorrespondentUpdate { hoa, cn, .. } => {
                BindingKey::MnCorrespondentUpdate { hoa, cn }
            }
            Binding::MnBlock { hoa } => BindingKey::MnBlock { hoa },
        }
    }
}

/// What the roles need from a data path, whichever does the work. A role calls
/// `install` when a binding appears or changes and `remove` when it goes; `cleanup`
/// removes everything the data path installed (shutdown). Objects are recorded in the
/// daemon's registry as they are installed, so a shutdown that never reaches `cleanup`
/// still removes them.
pub trait DataPath {
    /// "kernel" or "user", for logs and `mip6ctl status`.
    fn name(&self) -> &'static str;
    fn install(&mut self, binding: &Binding, registry: &mut Registry) -> io::Result<()>;
    fn remove(&mut self, key: &BindingKey, registry: &mut Registry) -> io::Result<()>;
    /// Removes everything; returns what could not be removed.
    fn cleanup(&mut self, registry: &mut Registry) -> Vec<io::Error>;
}
