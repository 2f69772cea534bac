//! The home agent on the `kernel` data path: the [`Ha`] machine (with its correspondent
//! node) on the Mobility Header socket ([`Signalling`]); each home registration becomes
//! umip's objects through [`KernelPath`]: an ip6ip6 tunnel home agent → care-of address
//! (`ip6_tunnel` decapsulates what the mobile node tunnels back, §10.4.5 by its endpoint
//! check), the home address's route into it (metric 192), and the route-optimisation
//! states and sub-policies that let the Binding Update in with its Home Address option and
//! send the Binding Acknowledgement with its Type 2 Routing Header. The home link's duties
//! (DAD, proxy ND, DHAAD) are [`HomeLink`]'s, as on the user path.

use super::cn::{on_binding_action, start_path};
use super::signalling::Signalling;
use super::{KernelPath, PlanConfig};
use crate::daemon::machine::{BindingCacheEntry, Ctx, Machine};
use crate::daemon::registry::Registry;
use crate::datapath::ha_user::cache_rows;
use crate::datapath::home_link::{self, HomeLink};
use crate::proto::event::Action;
use crate::proto::ha::Ha;
use std::os::fd::RawFd;
use std::time::Instant;

pub struct HaKernelPath {
    ha: Ha,
    sig: Signalling,
    path: KernelPath,
    home: HomeLink,
}

impl HaKernelPath {
    pub fn start(ha: Ha, home_if: &str, registry: &mut Registry) -> Result<HaKernelPath, String> {
        let home = HomeLink::open(home_if)?;
        home_link::warn_without_forwarding();
        let sig = Signalling::open(false)?;
        // Proxy entries stay with HomeLink (it also advertises them), so the plan has no
        // home interface.
        let path = start_path(
            PlanConfig {
                cn_route_optimization: ha.cn().config().route_optimization,
                ha_home_interface: None,
                mn: None,
            },
            registry,
        )?;
        tracing::info!("home agent on {home_if}: kernel data path (ip6ip6 tunnels, XFRM, Mobility Header socket)");
        Ok(HaKernelPath {
            ha,
            sig,
            path,
            home,
        })
    }

    pub fn ha(&self) -> &Ha {
        &self.ha
    }
}

impl Machine for HaKernelPath {
    fn name(&self) -> &str {
        "ha"
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.home.poll_timeout(&self.ha)
    }

    fn handle_timeout(&mut self, now: Instant) {
        super::cn::report_use(&self.path, &mut self.ha, now);
        self.home.handle_timeout(now, &mut self.ha);
    }

    fn binding_cache(&self, now: Instant) -> Vec<BindingCacheEntry> {
        cache_rows(&self.ha, now)
    }

    fn status(&self) -> serde_json::Value {
        self.home.status()
    }

    fn sources(&self) -> Vec<RawFd> {
        let mut v = self.sig.fds().to_vec();
        v.extend_from_slice(&self.home.icmp.fds());
        v
    }

    fn on_readable(&mut self, fd: RawFd, now: Instant, ctx: &mut Ctx<'_>) {
        if self.home.icmp.fds().contains(&fd) {
            self.home.icmp.on_readable(fd, now, &mut self.ha);
        } else {
            self.sig.on_readable(fd, &mut self.ha, now, ctx);
        }
    }

    fn apply_actions(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        while let Some(a) = self.ha.poll_action() {
            match self
                .home
                .apply(a, &mut self.ha, &mut self.path, ctx.registry, now)
            {
                Some(Action::Send(t)) => self.sig.send(&t, &self.path, ctx),
                Some(other) if !on_binding_action(&mut self.path, &other, ctx.registry) => {
                    tracing::debug!("home agent: ignoring {other:?}")
                }
                _ => {}
            }
        }
    }
}
