//! The correspondent node on the `kernel` data path: the [`Cn`] machine's Mobility
//! Headers through [`Signalling`], its bindings as XFRM route-optimisation states and
//! sub-policies through [`KernelPath`] (umip's correspondent objects: an RH2 state and
//! policy out, a HAO state and policy in, per binding, over the wildcard HAO receive
//! state). The kernel inserts and removes the headers; no packet goes through mip6d.
//!
//! Bindings in use get their Binding Refresh Request as on the user path: before the
//! machine's timers run, [`report_use`] reads the states' `lastused` and tells it which
//! bindings a packet used within [`USED_WINDOW`].

use super::signalling::Signalling;
use super::{KernelPath, PlanConfig, SysKernel};
use crate::daemon::machine::{BindingCacheEntry, Ctx, Machine};
use crate::daemon::registry::Registry;
use crate::datapath::user::cache_rows;
use crate::datapath::user::Responder;
use crate::datapath::{Binding, BindingKey, DataPath};
use crate::proto::cn::Cn;
use crate::proto::cn::USED_WINDOW;
use crate::proto::event::{Action, Event};
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Opens the kernel's XFRM and rtnetlink sockets and installs the baseline of `cfg`
/// (recorded in `registry`).
pub fn start_path(cfg: PlanConfig, registry: &mut Registry) -> Result<KernelPath, String> {
    let kernel = SysKernel::open().map_err(|e| format!("XFRM / rtnetlink: {e}"))?;
    KernelPath::start(cfg, Rc::new(RefCell::new(kernel)), registry)
        .map_err(|e| format!("kernel data path: installing the baseline: {e}"))
}

/// A correspondent node's binding actions, as bindings of `path`; `false` when `a` is
/// not one (the caller's business then). A home agent's home registrations
/// (`home: true`) are installed by the tunnel actions instead.
pub fn on_binding_action(path: &mut KernelPath, a: &Action, registry: &mut Registry) -> bool {
    let r = match *a {
        Action::BindingInstalled {
            local,
            hoa,
            coa,
            home: false,
            ..
        } => {
            tracing::info!("binding {hoa} -> {coa} (at {local}): XFRM route optimisation");
            path.install(&Binding::Correspondent { local, hoa, coa }, registry)
        }
        Action::BindingRemoved {
            local,
            hoa,
            home: false,
        } => {
            tracing::info!("binding for {hoa} (at {local}) removed");
            path.remove(&BindingKey::Correspondent { local, hoa }, registry)
        }
        _ => return false,
    };
    if let Err(e) = r {
        tracing::error!("route optimisation: {e}");
    }
    true
}

/// Tells `machine` which of its route-optimisation bindings the kernel used within
/// [`USED_WINDOW`] (their states' `lastused`): what decides a Binding Refresh Request
/// (§9.5.5). Called just before the machine's timers run.
pub fn report_use(path: &KernelPath, machine: &mut impl Responder, now: Instant) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(USED_WINDOW)
        .as_secs();
    for (local, hoa) in path.correspondents_used_since(wall) {
        machine.handle(Event::BindingUsed { local, hoa }, now);
    }
}

pub struct CnKernelPath {
    cn: Cn,
    sig: Signalling,
    path: KernelPath,
}

impl CnKernelPath {
    pub fn start(cn: Cn, registry: &mut Registry) -> Result<CnKernelPath, String> {
        let sig = Signalling::open(false)?;
        let path = start_path(
            PlanConfig {
                cn_route_optimization: cn.config().route_optimization,
                ha_home_interface: None,
                mn: None,
            },
            registry,
        )?;
        tracing::info!("correspondent node: kernel data path (XFRM route optimisation, Mobility Header socket)");
        Ok(CnKernelPath { cn, sig, path })
    }

    pub fn cn(&self) -> &Cn {
        &self.cn
    }
}

impl Machine for CnKernelPath {
    fn name(&self) -> &str {
        "cn"
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.cn.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        report_use(&self.path, &mut self.cn, now);
        self.cn.handle_timeout(now);
    }

    fn binding_cache(&self, now: Instant) -> Vec<BindingCacheEntry> {
        cache_rows(&self.cn, now)
    }

    fn sources(&self) -> Vec<RawFd> {
        self.sig.fds().to_vec()
    }

    fn on_readable(&mut self, fd: RawFd, now: Instant, ctx: &mut Ctx<'_>) {
        self.sig.on_readable(fd, &mut self.cn, now, ctx);
    }

    fn apply_actions(&mut self, _now: Instant, ctx: &mut Ctx<'_>) {
        while let Some(a) = self.cn.poll_action() {
            match a {
                Action::Send(t) => self.sig.send(&t, &self.path, ctx),
                other => {
                    if !on_binding_action(&mut self.path, &other, ctx.registry) {
                        tracing::debug!("correspondent node: ignoring {other:?}")
                    }
                }
            }
        }
    }
}
