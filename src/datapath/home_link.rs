//! The home agent's duties on its home link, whichever data path carries the packets:
//! DAD for the home addresses it defends (§10.3.1, simplified: see [`super::ha_user`]),
//! proxy Neighbour Discovery (`proxy_ndp` and proxy neighbour entries, marked like umip's),
//! and, through [`HaIcmp`], unsolicited Neighbor Advertisements, DHAAD and Mobile Prefix
//! Solicitations. Both the user and the kernel home agents hold one.

use super::ha_icmp::HaIcmp;
use super::{Binding, BindingKey, DataPath};
use crate::daemon::registry::{EntryId, Registry};
use crate::proto::event::{Action, Event};
use crate::proto::ha::Ha;
use crate::sys::rtnl::{self, Rtnl};
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;

pub struct HomeLink {
    home_if: String,
    home_index: u32,
    rtnl: Rtnl,
    proxies: HashMap<Ipv6Addr, EntryId>,
    /// Whether `proxy_ndp` on the home interface is ours to restore (recorded once).
    proxy_sysctl: bool,
    pub icmp: HaIcmp,
}

/// The decapsulated and the tunnelled packets are forwarded: say so when that is off.
pub fn warn_without_forwarding() {
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/forwarding")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if !forwarding {
        tracing::warn!("home agent: net.ipv6.conf.all.forwarding is not 1; tunnelled traffic will not be forwarded");
    }
}

impl HomeLink {
    /// The home agent's next deadline: its own (binding lifetimes) or the link's (DAD,
    /// unsolicited NAs, the Home Agents List).
    pub fn poll_timeout(&self, ha: &Ha) -> Option<Instant> {
        [ha.poll_timeout(), self.icmp.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The link's timers (DAD, unsolicited NAs, the Home Agents List), then the home
    /// agent's.
    pub fn handle_timeout(&mut self, now: Instant, ha: &mut Ha) {
        self.icmp.handle_timeout(now, ha);
        ha.handle_timeout(now);
    }

    /// What `mip6ctl status` shows of the home link.
    pub fn status(&self) -> serde_json::Value {
        let list = self.icmp.home_agents(Instant::now());
        serde_json::json!({
            "home_agents_list": list.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        })
    }

    pub fn open(home_if: &str) -> Result<HomeLink, String> {
        let mut rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let home_index = rtnl
            .link_by_name(home_if)
            .map_err(|e| format!("home interface {home_if}: {e}"))?
            .ok_or_else(|| format!("home interface {home_if}: no such interface"))?
            .index;
        let icmp = HaIcmp::start(&mut rtnl, home_if)?;
        Ok(HomeLink {
            home_if: home_if.to_string(),
            home_index,
            rtnl,
            proxies: HashMap::new(),
            proxy_sysctl: false,
            icmp,
        })
    }

    /// The smallest MTU of the links a tunnel can leave by: what an encapsulated packet
    /// must fit.
    pub fn smallest_link_mtu(&mut self) -> Result<usize, String> {
        Ok(self
            .rtnl
            .links()
            .map_err(|e| format!("rtnetlink: {e}"))?
            .iter()
            .filter(|l| l.up && l.name != "lo" && l.mtu >= 1280)
            .map(|l| l.mtu as usize)
            .min()
            .unwrap_or(1500))
    }

    /// RFC 6275 §10.3.1 DAD for a home registration, answered to `ha` as `DadResult`.
    /// The home agent's actions that every data path handles alike: DAD, proxy ND, the
    /// registrations as bindings of `path` (whose tunnel each carries), their logs.
    /// Returns what is left for the caller: a `Send`, or the embedded correspondent
    /// node's actions.
    pub fn apply(
        &mut self,
        a: Action,
        ha: &mut Ha,
        path: &mut dyn DataPath,
        registry: &mut Registry,
        now: Instant,
    ) -> Option<Action> {
        match a {
            Action::StartDad { hoa, link_local } => self.dad(ha, hoa, link_local, now),
            // A registration's tunnel is part of the registration: the route's actions
            // name it, so they carry both.
            Action::TunnelAdd { .. } | Action::TunnelDel { .. } => {}
            Action::RouteAdd {
                hoa,
                tunnel_local,
                tunnel_remote,
            } => {
                tracing::info!(
                    "home registration {hoa} -> tunnel {tunnel_local} -> {tunnel_remote}"
                );
                let b = Binding::HomeRegistration {
                    ha: tunnel_local,
                    hoa,
                    coa: tunnel_remote,
                };
                if let Err(e) = path.install(&b, registry) {
                    tracing::error!("home registration {hoa}: {e}");
                }
            }
            Action::RouteDel { hoa } => {
                if let Err(e) = path.remove(&BindingKey::HomeRegistration { hoa }, registry) {
                    tracing::warn!("home registration {hoa}: {e}");
                }
            }
            Action::ProxyNdAdd { addr, router } => self.proxy_add(addr, router, registry, now),
            Action::ProxyNdDel { addr } => self.proxy_del(addr, registry),
            Action::BindingInstalled {
                local,
                hoa,
                coa,
                home: true,
                ..
            } => tracing::info!("home registration {hoa} -> {coa} (at {local})"),
            Action::BindingRemoved {
                local,
                hoa,
                home: true,
            } => tracing::info!("home registration of {hoa} (at {local}) removed"),
            other => return Some(other),
        }
        None
    }

    pub fn dad(&mut self, ha: &mut Ha, hoa: Ipv6Addr, link_local: Option<Ipv6Addr>, now: Instant) {
        let taken = std::iter::once(hoa)
            .chain(link_local)
            .find(|a| address_in_use(&mut self.rtnl, *a, self.home_index));
        if let Some(a) = taken {
            tracing::info!("DAD for {hoa}: {a} is in use on this node");
            ha.handle(Event::DadResult { hoa, ok: false }, now);
            return;
        }
        self.icmp.start_dad(hoa, link_local, now, ha);
    }

    /// A proxy neighbour entry for `addr` on the home link, with `proxy_ndp` on and
    /// unsolicited Neighbor Advertisements.
    pub fn proxy_add(
        &mut self,
        addr: Ipv6Addr,
        router: bool,
        registry: &mut Registry,
        now: Instant,
    ) {
        if !self.proxy_sysctl {
            let path = proxy_ndp_path(&self.home_if);
            match std::fs::read_to_string(&path) {
                Ok(old) if old.trim() == "1" => self.proxy_sysctl = true,
                Ok(old) => match std::fs::write(&path, "1") {
                    Ok(()) => {
                        self.proxy_sysctl = true;
                        let old = old.trim().to_string();
                        let p = path.clone();
                        registry.record(format!("sysctl {path} = 1 (was {old})"), move || {
                            std::fs::write(&p, &old)
                        });
                    }
                    Err(e) => tracing::error!("{path}: {e}"),
                },
                Err(e) => tracing::error!("{path}: {e}"),
            }
        }
        if self.proxies.contains_key(&addr) {
            // Only the router flag changed; iproute2's proxy entries do not carry it.
            return;
        }
        let index = self.home_index;
        if router {
            tracing::debug!("proxy ND for {addr}: the router flag is not set by this data path");
        }
        match self.rtnl.add_proxy_neigh(index, addr) {
            Ok(()) => {
                let what = format!("proxy ND: {addr} on {}", self.home_if);
                let id = registry.record(what, move || Rtnl::open()?.del_proxy_neigh(index, addr));
                self.proxies.insert(addr, id);
                self.icmp.advertise(addr, router, now);
            }
            Err(e) => tracing::error!("proxy ND for {addr}: {e}"),
        }
    }

    pub fn proxy_del(&mut self, addr: Ipv6Addr, registry: &mut Registry) {
        self.icmp.stop_advertising(addr);
        if let Some(id) = self.proxies.remove(&addr) {
            if let Err(e) = registry.undo(id) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// The simplified DAD of the module documentation: is `addr` in use already? A failed
/// look-up counts as "not in use", as the registration must not hang on it.
fn address_in_use(rt: &mut Rtnl, addr: Ipv6Addr, home_index: u32) -> bool {
    let assigned = rt
        .addresses()
        .map(|all| all.iter().any(|a| a.addr == addr))
        .unwrap_or_else(|e| {
            tracing::warn!("DAD for {addr}: cannot list addresses: {e}");
            false
        });
    let permanent = rt
        .neighbours()
        .map(|all| {
            all.iter().any(|n| {
                n.addr == addr && n.index == home_index && n.state & rtnl::NUD_PERMANENT != 0
            })
        })
        .unwrap_or_else(|e| {
            tracing::warn!("DAD for {addr}: cannot list neighbours: {e}");
            false
        });
    assigned || permanent
}

fn proxy_ndp_path(ifname: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{ifname}/proxy_ndp")
}
