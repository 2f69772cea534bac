//! The mobile node's [`HomeKernel`] over rtnetlink ([`crate::sys::rtnl`]): the home
//! address, the home-address rule and table-252 route, and the link / address events
//! movement detection reads.

use super::mn_path::{HomeKernel, Undo};
use crate::proto::movement::Observation;
use crate::sys::rtnl::{
    self, Address, Groups, Route, Rtnl, RtnlEvent, RtnlMonitor, IFA_F_DADFAILED, IFA_F_DEPRECATED,
    IFA_F_HOMEADDRESS, IFA_F_NODAD, IFA_F_TENTATIVE, MIP6D_TABLE, RTPROT_MIP, RT_TABLE_MAIN,
};
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;

/// umip's rule priority for "from HoA → table 252" (reference README §3).
pub const HOA_RULE_PRIORITY: u32 = 1001;

/// Removing something that is already gone is done (a link that went down took its
/// routes with it; `move` flushed the addresses of the interface it took down).
pub(crate) fn gone_is_fine(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e)
            if matches!(
                rtnl::errno(&e),
                Some(libc::ESRCH | libc::ENOENT | libc::EADDRNOTAVAIL | libc::ENODEV)
            ) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn usable(a: &Address) -> bool {
    a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED) == 0
        && a.preferred_lft != Some(0)
}

/// What an rtnetlink event means to movement detection.
pub fn observation(e: RtnlEvent) -> Option<Observation> {
    Some(match e {
        RtnlEvent::NewLink(l) => Observation::Link {
            index: l.index,
            up: l.up && l.running,
            name: l.name,
        },
        RtnlEvent::DelLink(l) => Observation::LinkGone { index: l.index },
        RtnlEvent::NewAddress(a) => Observation::Address {
            index: a.index,
            addr: a.addr,
            prefix_len: a.prefix_len,
            usable: usable(&a),
        },
        RtnlEvent::DelAddress(a) => Observation::AddressGone {
            index: a.index,
            addr: a.addr,
        },
        _ => return None,
    })
}

pub struct RtnlHome {
    rtnl: Rtnl,
    monitor: RtnlMonitor,
    hoa: Ipv6Addr,
    lo: u32,
    pending: Vec<Observation>,
}

impl RtnlHome {
    /// Subscribes first, then reads the current links and addresses, so nothing that
    /// happens in between is missed (at worst seen twice, which the detector ignores).
    pub fn open(hoa: Ipv6Addr) -> io::Result<RtnlHome> {
        let monitor = RtnlMonitor::open(
            Groups::LINK
                .union(Groups::IPV6_IFADDR)
                .union(Groups::IPV6_ROUTE),
        )?;
        let mut me = RtnlHome {
            lo: 0,
            rtnl: Rtnl::open()?,
            monitor,
            hoa,
            pending: Vec::new(),
        };
        me.dump()?;
        me.lo = me
            .rtnl
            .link_by_name("lo")?
            .map(|l| l.index)
            .ok_or_else(|| io::Error::other("no lo interface"))?;
        Ok(me)
    }

    fn dump(&mut self) -> io::Result<()> {
        for l in self.rtnl.links()? {
            self.pending.extend(observation(RtnlEvent::NewLink(l)));
        }
        for a in self.rtnl.addresses()? {
            self.pending.extend(observation(RtnlEvent::NewAddress(a)));
        }
        Ok(())
    }
}

impl HomeKernel for RtnlHome {
    fn add_home_address(
        &mut self,
        ifindex: u32,
        prefix_len: u8,
        away: bool,
    ) -> io::Result<Option<Undo>> {
        let a = Address {
            index: ifindex,
            addr: self.hoa,
            prefix_len,
            flags: IFA_F_NODAD | if away { IFA_F_HOMEADDRESS } else { 0 },
            ..Address::default()
        };
        // Already there (the testbed's or an operator's static address at home): not
        // ours to remove later.
        if self
            .rtnl
            .addresses()?
            .iter()
            .any(|x| x.index == ifindex && x.addr == self.hoa)
        {
            return Ok(None);
        }
        match self.rtnl.add_address(&a) {
            Ok(()) => Ok(Some(Box::new(move || {
                gone_is_fine(Rtnl::open()?.del_address(&a))
            }))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_home_route(&mut self, ifindex: u32, mtu_overhead: u32) -> io::Result<Undo> {
        let gw = self
            .rtnl
            .routes(RT_TABLE_MAIN)?
            .into_iter()
            .find(|r| r.dst_len == 0 && r.oif == Some(ifindex) && r.gateway.is_some())
            .and_then(|r| r.gateway)
            .ok_or_else(|| io::Error::other("no default router on that link yet"))?;
        let mtu = self
            .rtnl
            .link_by_index(ifindex)?
            .map(|l| l.mtu)
            .ok_or_else(|| io::Error::other("the link is gone"))?;
        let route = Route {
            gateway: Some(gw),
            oif: Some(ifindex),
            table: MIP6D_TABLE,
            mtu: Some(mtu.saturating_sub(mtu_overhead).max(1280)),
            protocol: RTPROT_MIP,
            ..Route::default()
        };
        let rule = rtnl::Rule {
            priority: HOA_RULE_PRIORITY,
            table: MIP6D_TABLE,
            src: Some((self.hoa, 128)),
            ..rtnl::Rule::default()
        };
        self.rtnl.add_route(&route)?;
        if let Err(e) = self.rtnl.add_rule(&rule) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = self.rtnl.del_route(&route);
                return Err(e);
            }
        }
        tracing::info!(
            "home address {}: rule {HOA_RULE_PRIORITY} to table {MIP6D_TABLE}, default via {gw} (interface {ifindex}) mtu {}",
            self.hoa,
            route.mtu.unwrap_or(0)
        );
        Ok(Box::new(move || {
            let mut r = Rtnl::open()?;
            let a = gone_is_fine(r.del_rule(&rule));
            let b = gone_is_fine(r.del_route(&route));
            a.and(b)
        }))
    }

    fn set_reverse_tunnel(
        &mut self,
        ifindex: u32,
        ha: Ipv6Addr,
        coa: Ipv6Addr,
    ) -> io::Result<Undo> {
        super::mn_seg6::install(&mut self.rtnl, self.hoa, ifindex, ha, coa)
    }

    fn loopback(&mut self) -> u32 {
        self.lo
    }

    fn observations(&mut self) -> Vec<Observation> {
        let mut out = std::mem::take(&mut self.pending);
        match self.monitor.recv() {
            Ok(events) => {
                let mut overrun = false;
                for e in events {
                    if e == RtnlEvent::Overrun {
                        overrun = true;
                    }
                    out.extend(observation(e));
                }
                if overrun {
                    if let Err(e) = self.dump() {
                        tracing::warn!("rtnetlink: re-reading links and addresses: {e}");
                    }
                    out.append(&mut self.pending);
                }
            }
            Err(e) => tracing::warn!("rtnetlink monitor: {e}"),
        }
        out
    }

    fn event_fd(&self) -> Option<RawFd> {
        Some(self.monitor.as_raw_fd())
    }
}

/// The mobile node role from the configuration: the first `MnHomeLink` (its home
/// address, home agent, `MnRoPolicy`), the `Interface` statements for movement detection,
/// and the `Mn*` timers. `cn` is the correspondent node every role runs.
pub fn start(
    cfg: &crate::config::Config,
    cn: crate::proto::cn::Cn,
    engine: super::mn_path::EngineChoice,
    kernel_tunnel: bool,
    registry: &mut crate::daemon::registry::Registry,
    now: std::time::Instant,
) -> Result<super::mn_path::MnPath, String> {
    use crate::config::NodeRole;
    use crate::proto::mn::{Mn, MnConfig};
    use crate::proto::movement::{Detector, MovementConfig};
    use std::time::Duration;
    let hl = cfg
        .home_links
        .first()
        .ok_or("NodeConfig MN needs an MnHomeLink block (home address, home agent)")?;
    if cfg.home_links.len() > 1 {
        tracing::warn!("only the first MnHomeLink is used so far");
    }
    let hoa = hl.home_address.addr;
    let mn_config = MnConfig {
        home_address: hoa,
        // Without one, DHAAD finds them (`enable_dhaad` below).
        home_agents: if hl.uses_dhaad() {
            vec![]
        } else {
            vec![hl.home_agent_address]
        },
        max_ha_binding_life: Duration::from_secs(u64::from(cfg.mn_max_ha_binding_life)),
        max_cn_binding_life: Duration::from_secs(u64::from(cfg.mn_max_cn_binding_life)),
        use_cn_bu_ack: cfg.use_cn_bu_ack,
        route_optimization: cfg.do_route_optimization_mn,
        initial_bindack_timeout_first_reg: cfg.initial_bindack_timeout_first_reg,
        initial_bindack_timeout_rereg: cfg.initial_bindack_timeout_rereg,
        max_ha_consecutive_resends: cfg.mn_max_ha_consecutive_resends,
        max_cn_consecutive_resends: cfg.mn_max_cn_consecutive_resends,
        optimistic_handoff: cfg.optimistic_handoff,
        ..MnConfig::default()
    };
    let home_prefix = hl
        .home_prefix
        .map_or((hoa, hl.home_address.len), |p| (p.addr, p.len));
    let detector = Detector::new(MovementConfig {
        interfaces: cfg
            .interfaces
            .iter()
            .filter(|i| i.effective_type(cfg.node_config) == NodeRole::Mn)
            .map(|i| (i.name.clone(), i.preference))
            .collect(),
        home_interface: Some(hl.interface.clone()),
        home_address: hoa,
        home_prefix,
    });
    let kernel = RtnlHome::open(hoa).map_err(|e| format!("rtnetlink: {e}"))?;
    let mn = Mn::new(
        mn_config,
        std::sync::Arc::new(ring::rand::SystemRandom::new()),
    );
    let dhaad = if hl.uses_dhaad() {
        Some(super::mn_dhaad::MnDhaad::open(home_prefix)?)
    } else {
        None
    };
    let mut path = super::mn_path::MnPath::start(
        mn,
        cn,
        detector,
        Box::new(kernel),
        hl.ro_policies.clone(),
        engine,
        registry,
        now,
    )?;
    if let Some(d) = dhaad {
        path.enable_dhaad(d);
    }
    if kernel_tunnel {
        path.enable_kernel_tunnel();
    }
    Ok(path)
}
