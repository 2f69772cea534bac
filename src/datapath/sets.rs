//! The per-binding state of the `user` data path as kernel IP sets, matched by constant
//! ip6tables rules (`-m set --match-set mip6d-… dst|src`).
//!
//! A binding used to be one or more ip6tables rules of its own: a fork of `ip6tables` per
//! rule (milliseconds; about 70 new registrations a second for a home agent, which needs
//! three rules each) and a chain every packet walks, as long as the binding cache. A set
//! element is one netlink message (microseconds) and a hash lookup per packet.
//!
//! One mip6d runs per network namespace (as [`crate::daemon::leftovers`] assumes), so the
//! set names are fixed; the next start removes a killed daemon's sets by their prefix.

use crate::daemon::registry::Registry;
use crate::sys::ipset::IpSets;
use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;

/// Every set of ours starts with this, so leftovers are recognisable.
pub const PREFIX: &str = "mip6d-";
/// Correspondent part: home addresses with a binding (route optimisation out).
pub const RO: &str = "mip6d-ro";
/// Home agent: home addresses whose traffic goes into the tunnel.
pub const HOME: &str = "mip6d-home";
/// Home agent: care-of addresses whose tunnelled packets are decapsulated.
pub const CARE_OF: &str = "mip6d-coa";

/// A set of addresses, reference-counted so that several users of one address (two
/// tunnels from one care-of address) share its element.
pub struct AddrSet {
    name: &'static str,
    sets: IpSets,
    refs: HashMap<Ipv6Addr, usize>,
}

impl AddrSet {
    /// Creates the set (emptied if a leftover of that name survived) and records its
    /// removal in `registry`. Create sets before the rules that name them: the registry
    /// undoes newest first, and a set cannot go while a rule refers to it.
    pub fn create(name: &'static str, registry: &mut Registry) -> Result<AddrSet, String> {
        let fail = |e: io::Error| {
            format!("ip set {name}: {e} (the user data path needs CONFIG_IP_SET_HASH_IP and CONFIG_NETFILTER_XT_SET)")
        };
        let mut sets = IpSets::open().map_err(fail)?;
        sets.create(name).map_err(fail)?;
        sets.flush(name).map_err(fail)?;
        registry.record(format!("ip set {name}"), move || {
            IpSets::open()?.destroy(name)
        });
        Ok(AddrSet {
            name,
            sets,
            refs: HashMap::new(),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Takes a reference on `addr`; the first one adds the element.
    pub fn insert(&mut self, addr: Ipv6Addr) -> io::Result<()> {
        let n = self.refs.entry(addr).or_insert(0);
        if *n == 0 {
            self.sets.add(self.name, addr)?;
        }
        *n += 1;
        Ok(())
    }

    /// Drops a reference on `addr`; the last one removes the element.
    pub fn remove(&mut self, addr: Ipv6Addr) -> io::Result<()> {
        let Some(n) = self.refs.get_mut(&addr) else {
            return Ok(());
        };
        *n -= 1;
        if *n == 0 {
            self.refs.remove(&addr);
            self.sets.del(self.name, addr)?;
        }
        Ok(())
    }

    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        self.refs.contains_key(addr)
    }

    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
}

/// `-m set --match-set NAME DIR` as rule arguments (`DIR`: `src` or `dst`).
pub fn match_set<'a>(name: &'a str, dir: &'a str) -> [&'a str; 5] {
    ["-m", "set", "--match-set", name, dir]
}
