//! The mobile node's packets on the `kernel` data path, umip's way: what the [`Mn`]
//! machine decided becomes XFRM states and sub-policies, an ip6ip6 tunnel to the home
//! agent and the table-252 rules through [`KernelPath`] (the plan's `MnHome`,
//! `MnRouteOptimization`, `MnCorrespondentUpdate` and `MnBlock` bindings), so the kernel
//! adds the Home Address option, takes the Type 2 Routing Header off and tunnels what
//! leaves from the home address; no data packet goes through mip6d. Signalling is the
//! Mobility Header socket ([`Signalling`]): a Binding Update is sent from the home
//! address and the binding's state moves it to the care-of address with the option, the
//! Home Test Init is routed into the tunnel. The kernel's `XFRM_MSG_ACQUIRE` (the
//! trigger policy, a correspondent's data arriving through the tunnel) offers the
//! correspondent for route optimisation.
//!
//! The movement detection, the home address itself and the machine stay with
//! [`crate::datapath::mn_path::MnPath`], which drives this engine instead of its
//! netfilter queues.

use super::signalling::{Arrived, Signalling};
use super::{KernelObject, KernelPath, MnSettings, PlanConfig};
use crate::daemon::machine::Ctx;
use crate::daemon::registry::Registry;
use crate::datapath::mn_user::for_correspondent;
use crate::datapath::{Binding, BindingKey};
use crate::proto::cn::Cn;
use crate::proto::event::{Action, Event, MnEvent, MnInbound, Transmit};
use crate::proto::mn::Mn;
use crate::sys::mh_socket::SendOptions;
use crate::sys::rtnl::Rtnl;
use crate::sys::xfrm::{XfrmEvent, IPPROTO_DSTOPTS};
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::time::Instant;

/// Where and how a mobile node's Mobility Header leaves on the kernel data path. A
/// header with a Home Address option is sent from the home address: the kernel's state
/// for (home address, destination), whose care-of address `hao_state_coa` is, adds the
/// option and moves the source — the checksum is computed over the home address, as
/// the receiver checks it. The Home Test Init is sent from the home address as well:
/// its route is the tunnel. `Err` says why it cannot leave.
pub fn send_plan(
    t: &Transmit,
    hao_state_coa: Option<Ipv6Addr>,
) -> Result<(Ipv6Addr, SendOptions), String> {
    if t.rh2.is_some() {
        return Err("a routing header is the correspondent node's".into());
    }
    let src = match t.hao {
        Some(hoa) if hao_state_coa == Some(t.src) => hoa,
        Some(hoa) => {
            return Err(format!(
                "no Home Address option state {hoa} -> {} with care-of address {} in the kernel",
                t.dst, t.src
            ))
        }
        None => t.src,
    };
    Ok((
        t.dst,
        SendOptions {
            src: Some(src),
            hao: None,
            rh2: None,
        },
    ))
}

/// The peer an `XFRM_MSG_ACQUIRE` names: the side of its flow that is not the home
/// address. `None` for a flow that does not involve it.
pub fn acquired_peer(hoa: Ipv6Addr, flow_src: Ipv6Addr, flow_dst: Ipv6Addr) -> Option<Ipv6Addr> {
    let peer = match (flow_src == hoa, flow_dst == hoa) {
        (true, false) => flow_dst,
        (false, true) => flow_src,
        _ => return None,
    };
    (!peer.is_unspecified()).then_some(peer)
}

/// The mobile node's kernel engine.
pub struct MnKernel {
    hoa: Ipv6Addr,
    sig: Signalling,
    path: KernelPath,
    rtnl: Rtnl,
    /// The home agent tunnel's interface (name, index), what the Home Test arrives on.
    tunnel: Option<(String, u32)>,
}

fn mine(k: &BindingKey) -> bool {
    matches!(
        k,
        BindingKey::MnHome { .. }
            | BindingKey::MnRouteOptimization { .. }
            | BindingKey::MnCorrespondentUpdate { .. }
            | BindingKey::MnBlock { .. }
    )
}

impl MnKernel {
    /// Opens the Mobility Header socket and the XFRM listener, installs the baseline of a
    /// mobile node that is also a correspondent node.
    pub fn start(
        hoa: Ipv6Addr,
        mn_route_optimization: bool,
        cn_route_optimization: bool,
        registry: &mut Registry,
    ) -> Result<MnKernel, String> {
        let sig = Signalling::open(true)?;
        let rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let path = super::cn::start_path(
            PlanConfig {
                cn_route_optimization,
                ha_home_interface: None,
                mn: Some(MnSettings {
                    route_optimization: mn_route_optimization,
                }),
            },
            registry,
        )?;
        tracing::info!(
            "mobile node {hoa}: kernel data path (XFRM route optimisation, ip6ip6 tunnel, Mobility Header socket)"
        );
        Ok(MnKernel {
            hoa,
            sig,
            path,
            rtnl,
            tunnel: None,
        })
    }

    pub fn fds(&self) -> [RawFd; 2] {
        self.sig.fds()
    }

    pub fn owns(&self, fd: RawFd) -> bool {
        self.fds().contains(&fd)
    }

    /// Hands what `fd` has to the machines; returns the peers the kernel's trigger
    /// named, for the caller to offer for route optimisation.
    pub fn on_readable(
        &mut self,
        fd: RawFd,
        mn: &mut Mn,
        cn: &mut Cn,
        now: Instant,
        ctx: &mut Ctx<'_>,
    ) -> Vec<Ipv6Addr> {
        let (mhs, events) = self.sig.read(fd, ctx);
        for a in &mhs {
            self.dispatch(a, mn, cn, now);
        }
        let mut acquired = Vec::new();
        for e in events {
            match e {
                XfrmEvent::Report(r) => {
                    if let Some(ev) = super::signalling::unbound_hao(&r) {
                        cn.handle(ev, now);
                    }
                }
                XfrmEvent::Acquire(a) => {
                    tracing::debug!("XFRM acquire {} -> {}", a.sel.src, a.sel.dst);
                    if let Some(peer) = acquired_peer(self.hoa, a.sel.src, a.sel.dst) {
                        acquired.push(peer);
                    }
                }
                XfrmEvent::Expire => {}
            }
        }
        acquired
    }

    fn dispatch(&self, a: &Arrived, mn: &mut Mn, cn: &mut Cn, now: Instant) {
        if for_correspondent(a.repr.mh_type()) {
            cn.handle(Event::Mh(a.inbound()), now);
            return;
        }
        // What arrived on the tunnel's interface came through the home agent.
        let tunnelled = a.ifindex.is_some() && a.ifindex == self.tunnel.as_ref().map(|t| t.1);
        mn.handle(
            MnEvent::Mh(MnInbound {
                packet: a.inbound(),
                rh2: a.rh2,
                tunnel_src: if tunnelled { mn.home_agent() } else { None },
            }),
            now,
        );
    }

    /// Brings the kernel to the mobile node's bindings `want`.
    pub fn sync(&mut self, want: &[Binding], registry: &mut Registry) {
        if let Err(e) = self.path.set_bindings(mine, want, registry) {
            tracing::error!("mobile node: kernel data path: {e}");
        }
        let name = self.path.installed().into_iter().find_map(|o| match o {
            KernelObject::Tunnel { name, remote, .. } if want_tunnel(want, remote) => Some(name),
            _ => None,
        });
        if self.tunnel.as_ref().map(|t| &t.0) != name.as_ref() {
            self.tunnel = name.and_then(|n| match self.rtnl.link_by_name(&n) {
                Ok(Some(l)) => Some((n, l.index)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!("tunnel {n}: {e}");
                    None
                }
            });
        }
    }

    /// Sends one of the mobile node machine's Mobility Headers.
    pub fn send_mn(&self, t: &Transmit, ctx: &mut Ctx<'_>) {
        let state = t
            .hao
            .and_then(|hoa| self.path.state_coa(hoa, t.dst, IPPROTO_DSTOPTS));
        match send_plan(t, state) {
            Ok((to, opts)) => self.sig.send_with(t, to, opts, ctx),
            Err(why) => tracing::warn!("not sending {} to {}: {why}", t.repr, t.dst),
        }
    }

    /// Sends one of the correspondent node part's.
    pub fn send_cn(&self, t: &Transmit, ctx: &mut Ctx<'_>) {
        self.sig.send(t, &self.path, ctx);
    }

    /// Tells the correspondent node part which of its bindings are in use.
    pub fn report_use(&self, cn: &mut Cn, now: Instant) {
        super::cn::report_use(&self.path, cn, now);
    }

    /// A correspondent node action (a binding of the part every node runs).
    pub fn on_cn_action(&mut self, a: &Action, registry: &mut Registry) -> bool {
        super::cn::on_binding_action(&mut self.path, a, registry)
    }
}

/// Whether `want` has an acknowledged home binding toward `ha` (the tunnel's remote).
fn want_tunnel(want: &[Binding], ha: Ipv6Addr) -> bool {
    want.iter()
        .any(|b| matches!(b, Binding::MnHome { ha: h, acknowledged: true, .. } if *h == ha))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mh::{Message, MhRepr};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn transmit(src: &str, dst: &str, hao: Option<&str>, tunnel: bool) -> Transmit {
        Transmit {
            src: a(src),
            dst: a(dst),
            rh2: None,
            repr: MhRepr {
                message: Message::CareOfTestInit { cookie: [0; 8] },
                options: vec![],
            },
            bytes: vec![],
            hao: hao.map(a),
            tunnel: tunnel.then(|| (a(src), a("2001:db8:1::1"))),
        }
    }

    #[test]
    fn a_binding_update_leaves_from_the_home_address_for_the_state_to_move() {
        let t = transmit(
            "2001:db8:41::100",
            "2001:db8:1::1",
            Some("2001:db8:1::100"),
            false,
        );
        let (to, opts) = send_plan(&t, Some(a("2001:db8:41::100"))).expect("the state is there");
        assert_eq!(to, a("2001:db8:1::1"));
        assert_eq!(opts.src, Some(a("2001:db8:1::100")));
        assert_eq!(
            (opts.hao, opts.rh2),
            (None, None),
            "the kernel adds the option"
        );
        // No state, or one for another care-of address: it would leave wrong.
        assert!(send_plan(&t, None).is_err());
        assert!(send_plan(&t, Some(a("2001:db8:42::100"))).is_err());
    }

    #[test]
    fn tests_and_plain_headers_leave_as_they_are() {
        let coti = transmit("2001:db8:41::100", "2001:db8:10::2", None, false);
        assert_eq!(
            send_plan(&coti, None).unwrap().1.src,
            Some(a("2001:db8:41::100"))
        );
        // The Home Test Init: from the home address, which routes into the tunnel.
        let hoti = transmit("2001:db8:1::100", "2001:db8:10::2", None, true);
        let (to, opts) = send_plan(&hoti, None).unwrap();
        assert_eq!(
            (to, opts.src),
            (a("2001:db8:10::2"), Some(a("2001:db8:1::100")))
        );
        let mut ba = coti.clone();
        ba.rh2 = Some(a("2001:db8:1::100"));
        assert!(send_plan(&ba, None).is_err());
    }

    #[test]
    fn an_acquire_names_the_peer_of_the_home_address() {
        let (hoa, cn) = (a("2001:db8:1::100"), a("2001:db8:10::2"));
        assert_eq!(acquired_peer(hoa, cn, hoa), Some(cn));
        assert_eq!(acquired_peer(hoa, hoa, cn), Some(cn));
        assert_eq!(acquired_peer(hoa, cn, a("2001:db8:10::3")), None);
        assert_eq!(acquired_peer(hoa, Ipv6Addr::UNSPECIFIED, hoa), None);
    }
}
