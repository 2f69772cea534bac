//! The `kernel` data path: the kernel's own Mobile IPv6 code (`CONFIG_IPV6_MIP6`) does the
//! Home Address options and Type 2 Routing Headers, `ip6_tunnel` the IPv6-in-IPv6
//! tunnels, and mip6d only programs them, as umip does
//! (`/work/shared/reference/umip/README.md` §3 has umip's scheme).
//!
//! Two halves:
//! - [`plan`]: pure. Given the role and the current bindings it computes the complete set
//!   of kernel objects that should exist — XFRM sub-policies with umip's priorities
//!   ([`prio`]), route-optimisation states with care-of addresses, wildcard receive
//!   states, ip6ip6 tunnels, addresses, routes and rules (table 252), proxy neighbours.
//! - [`KernelPath`]: the applier. It diffs the plan it installed last against the new one
//!   and adds, replaces or removes the difference through a [`Kernel`] ([`SysKernel`] is
//!   `sys::xfrm` + `sys::rtnl`), make-before-break: new objects first, then in-place
//!   replacements (a care-of address change is an `XFRM_MSG_UPDSA` and a route replace),
//!   then removals. Every installed object is recorded in the daemon's registry, so
//!   SIGTERM (or a failed start) removes it.
//!
//! This machine's kernel has neither `CONFIG_IPV6_MIP6` nor `ip6_tunnel`: here the plans
//! are proven by unit tests, and `tests/kernel_datapath.rs` checks that applying them
//! fails as such a kernel fails and leaves nothing. `scripts/vm-test kernel-plan` runs that
//! test in a VM booting Debian's kernel, where every object installs and iproute2's
//! listings match umip's scheme, and the registry removes them all.

use super::{Binding, BindingKey, DataPath};
use crate::daemon::registry::{EntryId, Registry};
use crate::sys::rtnl::{self, Rtnl, RuleAction, MIP6D_TABLE, RTPROT_MIP, RT_TABLE_MAIN};
use crate::sys::xfrm::{
    self, Dir, Policy, PolicyAction, Selector, State, StateId, Template, Xfrm, IPPROTO_DSTOPTS,
    IPPROTO_MH, IPPROTO_ROUTING,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::Ipv6Addr;
use std::rc::Rc;

/// umip's sub-policy priorities (`MIP6_PRIO_*`); lower wins.
pub mod prio {
    pub const HOME_ERROR: u32 = 1;
    pub const HOME_SIG: u32 = 2;
    pub const HOME_SIG_ANY: u32 = 3;
    pub const HOME_BLOCK: u32 = 4;
    pub const HOME_DATA_IPSEC: u32 = 5;
    pub const HOME_DATA: u32 = 6;
    pub const RO_SIG_IPSEC: u32 = 7;
    pub const RO_SIG: u32 = 8;
    pub const RO_SIG_ANY: u32 = 9;
    pub const RO_SIG_RR: u32 = 10;
    pub const RO_BLOCK: u32 = 11;
    pub const NO_RO_SIG_ANY: u32 = 12;
    pub const NO_RO_DATA: u32 = 13;
    pub const RO_BULE_BCE_DATA: u32 = 14;
    pub const RO_BULE_DATA: u32 = 15;
    pub const RO_BCE_DATA: u32 = 16;
    pub const RO_TRIG: u32 = 17;
    pub const RO_TRIG_ANY: u32 = 18;
    pub const RO_DATA_ANY: u32 = 19;
}

/// umip's rule priorities.
pub mod rule_prio {
    /// MN: from the home address, look up table 252 (default route via the tunnel).
    pub const MN_HOA: u32 = 1001;
    /// MN: from the care-of address, the main table (the path to the HA itself).
    pub const MN_COA: u32 = 1002;
    /// MN: from the home address, blackhole — the fallback when table 252 has no route,
    /// so home-addressed traffic never leaks out natively while away.
    pub const MN_HOA_BLOCK: u32 = 1003;
}

/// The reqid of the mobile node's trigger template, which no state has: the kernel asks
/// for one (`XFRM_MSG_ACQUIRE`) and never takes a Binding Update's Home Address option
/// state for data before route optimisation with that correspondent is in place.
pub const TRIGGER_REQID: u32 = 0x6d69_7036;

/// Route metric of the HA's home-address routes (umip `IP6_RT_PRIO_MIP6_FWD`).
pub const METRIC_FWD: u32 = 192;
/// Route metric of the MN's routes in table 252 (`IP6_RT_PRIO_MIP6_OUT`).
pub const METRIC_OUT: u32 = 128;

/// Mobility Header types used in selectors.
mod mh {
    pub const BRR: u8 = 0;
    pub const HOTI: u8 = 1;
    pub const HOT: u8 = 3;
    pub const BU: u8 = 5;
    pub const BA: u8 = 6;
    pub const BE: u8 = 7;
}

/// One object in the kernel. Devices are named, not numbered: a tunnel's index is only
/// known once it exists, so the applier resolves names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelObject {
    Tunnel {
        name: String,
        local: Ipv6Addr,
        remote: Ipv6Addr,
    },
    Address {
        dev: String,
        addr: Ipv6Addr,
        prefix_len: u8,
        flags: u32,
    },
    Route {
        dst: Ipv6Addr,
        dst_len: u8,
        dev: String,
        table: u32,
        metric: u32,
    },
    Rule {
        priority: u32,
        src: (Ipv6Addr, u8),
        table: u32,
        action: RuleAction,
    },
    ProxyNeigh {
        dev: String,
        addr: Ipv6Addr,
    },
    State(State),
    Policy(Policy),
}

/// What identifies an object to the kernel: two objects with the same key cannot both
/// exist, so a changed object with an unchanged key is replaced in place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKey {
    Tunnel(String),
    Address(String, Ipv6Addr),
    Route(Ipv6Addr, u8, u32, u32),
    Rule(u32, Ipv6Addr, u8),
    ProxyNeigh(String, Ipv6Addr),
    State(xfrm::StateId),
    Policy(xfrm::PolicyId),
}

impl KernelObject {
    pub fn key(&self) -> ObjectKey {
        match self {
            KernelObject::Tunnel { name, .. } => ObjectKey::Tunnel(name.clone()),
            KernelObject::Address { dev, addr, .. } => ObjectKey::Address(dev.clone(), *addr),
            KernelObject::Route {
                dst,
                dst_len,
                table,
                metric,
                ..
            } => ObjectKey::Route(*dst, *dst_len, *table, *metric),
            KernelObject::Rule { priority, src, .. } => ObjectKey::Rule(*priority, src.0, src.1),
            KernelObject::ProxyNeigh { dev, addr } => ObjectKey::ProxyNeigh(dev.clone(), *addr),
            KernelObject::State(s) => ObjectKey::State(s.id),
            KernelObject::Policy(p) => ObjectKey::Policy(p.id()),
        }
    }

    /// Install order: what others depend on first (a route needs its tunnel, an outbound
    /// policy's template its state). Inbound policies go before the states: their
    /// templates are optional and the wildcard receive state satisfies them, and a mobile
    /// node that route-optimises as soon as it sends its Binding Update (no A flag,
    /// RFC 6275 §11.7.2) has its packets accepted sooner. Removal goes the other way.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            KernelObject::Tunnel { .. } => 0,
            KernelObject::Address { .. } => 1,
            KernelObject::Route { .. } => 2,
            KernelObject::Rule { .. } => 3,
            KernelObject::ProxyNeigh { .. } => 4,
            KernelObject::Policy(p) if p.dir == Dir::In => 5,
            KernelObject::State(_) => 6,
            KernelObject::Policy(_) => 7,
        }
    }

    /// For logs and the registry, in `ip` syntax.
    pub fn describe(&self) -> String {
        match self {
            KernelObject::Tunnel {
                name,
                local,
                remote,
            } => format!("ip6tnl {name} local {local} remote {remote}"),
            KernelObject::Address {
                dev,
                addr,
                prefix_len,
                ..
            } => format!("address {addr}/{prefix_len} dev {dev} home nodad"),
            KernelObject::Route {
                dst,
                dst_len,
                dev,
                table,
                metric,
            } => format!("route {dst}/{dst_len} dev {dev} table {table} metric {metric}"),
            KernelObject::Rule {
                priority,
                src,
                table,
                action,
            } => format!(
                "rule {priority} from {}/{} {}",
                src.0,
                src.1,
                match action {
                    RuleAction::Blackhole => "blackhole".to_string(),
                    _ => format!("lookup {table}"),
                }
            ),
            KernelObject::ProxyNeigh { dev, addr } => format!("neigh proxy {addr} dev {dev}"),
            KernelObject::State(s) => format!(
                "xfrm state src {} dst {} proto {} mode ro coa {}{}",
                s.id.src,
                s.id.dst,
                proto_name(s.id.proto),
                s.coaddr.unwrap_or(Ipv6Addr::UNSPECIFIED),
                if s.flags & xfrm::XFRM_STATE_WILDRECV != 0 {
                    " flag wildrecv"
                } else {
                    ""
                }
            ),
            KernelObject::Policy(p) => format!(
                "xfrm policy src {}/{} dst {}/{} proto {}{} dir {:?} ptype sub priority {}{}",
                p.sel.src,
                p.sel.src_len,
                p.sel.dst,
                p.sel.dst_len,
                p.sel.proto,
                match (p.sel.proto, p.sel.sport_mask, p.sel.dport_mask) {
                    (_, 0, 0) => String::new(),
                    // A transport flow (the acceptor's per-connection binding).
                    (xfrm::IPPROTO_TCP | 17, _, _) =>
                        format!(" sport {} dport {}", p.sel.sport, p.sel.dport),
                    _ => format!(" type {}", p.sel.sport),
                },
                p.dir,
                p.priority,
                if p.action == PolicyAction::Block {
                    " action block".to_string()
                } else {
                    p.templates
                        .iter()
                        .map(|t| format!(" tmpl {}", proto_name(t.proto)))
                        .collect()
                }
            ),
        }
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        IPPROTO_ROUTING => "route2",
        IPPROTO_DSTOPTS => "hao",
        _ => "other",
    }
}

/// Which roles this node plays, and the settings the plan depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanConfig {
    /// Every node is a correspondent node; `DoRouteOptimizationCN` off leaves out its
    /// route-optimisation objects (no binding can exist then anyway).
    pub cn_route_optimization: bool,
    /// Home agent: the home link, where it proxies the home addresses.
    pub ha_home_interface: Option<String>,
    /// Mobile node: `DoRouteOptimizationMN` (the kernel's trigger policies).
    pub mn: Option<MnSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MnSettings {
    pub route_optimization: bool,
}

/// A name for the tunnel between two endpoints that is the same in every plan (the plan
/// is pure) and fits IFNAMSIZ: `ip6m` + 8 hex digits of a hash of both addresses.
pub fn tunnel_name(local: Ipv6Addr, remote: Ipv6Addr) -> String {
    // FNV-1a: tiny, stable across builds and platforms (unlike std's hasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in local.octets().iter().chain(remote.octets().iter()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("ip6m{h:08x}")
}

fn sub(sel: Selector, dir: Dir, priority: u32, templates: Vec<Template>) -> KernelObject {
    KernelObject::Policy(Policy::sub(sel, dir, priority, templates))
}

fn block(sel: Selector, dir: Dir, priority: u32) -> KernelObject {
    let mut p = Policy::sub(sel, dir, priority, vec![]);
    p.action = PolicyAction::Block;
    KernelObject::Policy(p)
}

fn rh2(optional: bool) -> Vec<Template> {
    vec![Template::ro(IPPROTO_ROUTING, optional)]
}

fn hao(optional: bool) -> Vec<Template> {
    vec![Template::ro(IPPROTO_DSTOPTS, optional)]
}

fn any() -> Ipv6Addr {
    Ipv6Addr::UNSPECIFIED
}

/// The objects every correspondent node has (umip's CN baseline): accept a Home Address
/// option from anyone (the binding is checked by the daemon, which is what a BU needs
/// before any binding exists), let Binding Updates in with their HAO, send Mobility
/// Headers without a routing header unless a binding's own policy says otherwise, and let
/// neighbour discovery and ICMPv6 errors bypass every binding.
fn cn_baseline(out: &mut Vec<KernelObject>) {
    out.push(KernelObject::State(State::wildcard_receive(
        IPPROTO_DSTOPTS,
    )));
    // Optional: a mobile node deregistering from home sends its BU without HAO (§11.5.4).
    out.push(sub(
        Selector::any().mh_type(mh::BU),
        Dir::In,
        prio::RO_SIG_ANY,
        hao(true),
    ));
    out.push(sub(
        Selector::any().proto(IPPROTO_MH),
        Dir::Out,
        prio::NO_RO_SIG_ANY,
        vec![],
    ));
    // Neighbour Solicitation / Advertisement, and the ICMPv6 errors (types 1-4).
    for t in [135u8, 136, 1, 2, 3, 4] {
        out.push(sub(
            Selector::any().icmp6_type(t),
            Dir::Out,
            prio::HOME_SIG_ANY,
            vec![],
        ));
    }
}

/// A correspondent's binding (and a home agent's for the signalling with its mobile
/// nodes): packets to the home address get a Type 2 Routing Header naming it and go to
/// the care-of address; packets from it arrive with a Home Address option.
fn cn_binding(out: &mut Vec<KernelObject>, local: Ipv6Addr, hoa: Ipv6Addr, coa: Ipv6Addr) {
    out.push(KernelObject::State(State::ro(
        local,
        hoa,
        IPPROTO_ROUTING,
        coa,
    )));
    out.push(KernelObject::State(State::ro(
        hoa,
        local,
        IPPROTO_DSTOPTS,
        coa,
    )));
    // BA and BRR must carry the RH2 even though the baseline sends MH without one.
    for t in [mh::BA, mh::BRR] {
        out.push(sub(
            Selector::hosts(local, hoa).mh_type(t),
            Dir::Out,
            prio::RO_SIG,
            rh2(false),
        ));
    }
}

/// A mobile node's Binding Updates to `peer`: sent from the home address, they get a Home
/// Address option and the care-of address as source from the state. The sub-policy is
/// HOME_SIG for correspondents too (umip: RO_SIG): it must win over `MnBlock`'s
/// signalling bypass, or a BU sent while blocked would leave without its option.
fn mn_binding_update(out: &mut Vec<KernelObject>, hoa: Ipv6Addr, peer: Ipv6Addr, coa: Ipv6Addr) {
    out.push(KernelObject::State(State::ro(
        hoa,
        peer,
        IPPROTO_DSTOPTS,
        coa,
    )));
    out.push(sub(
        Selector::hosts(hoa, peer).mh_type(mh::BU),
        Dir::Out,
        prio::HOME_SIG,
        hao(false),
    ));
}

/// Computes every kernel object for `cfg` and `bindings`. Pure and deterministic: the
/// same input gives the same objects in the same order, without duplicates.
pub fn plan(cfg: &PlanConfig, bindings: &[Binding]) -> Vec<KernelObject> {
    let mut out = Vec::new();
    if cfg.cn_route_optimization {
        cn_baseline(&mut out);
    }
    if cfg.mn.is_some() {
        // Accept a routing header from anyone: a correspondent's BA arrives with one
        // before the daemon has installed the binding's own state.
        out.push(KernelObject::State(State::wildcard_receive(
            IPPROTO_ROUTING,
        )));
        out.push(sub(
            Selector::any().mh_type(mh::BE),
            Dir::Out,
            prio::HOME_SIG_ANY,
            vec![],
        ));
    }
    for b in bindings {
        match *b {
            Binding::Correspondent { local, hoa, coa } => {
                if cfg.cn_route_optimization {
                    cn_binding(&mut out, local, hoa, coa);
                    out.push(sub(
                        Selector::hosts(local, hoa),
                        Dir::Out,
                        prio::RO_BCE_DATA,
                        rh2(false),
                    ));
                    out.push(sub(
                        Selector::hosts(hoa, local),
                        Dir::In,
                        prio::RO_BCE_DATA,
                        hao(true),
                    ));
                }
            }
            Binding::HomeRegistration { ha, hoa, coa } => {
                // Signalling with the MN goes route-optimised, its data through the tunnel.
                out.push(KernelObject::State(State::ro(
                    ha,
                    hoa,
                    IPPROTO_ROUTING,
                    coa,
                )));
                out.push(KernelObject::State(State::ro(
                    hoa,
                    ha,
                    IPPROTO_DSTOPTS,
                    coa,
                )));
                out.push(sub(
                    Selector::hosts(ha, hoa).mh_type(mh::BA),
                    Dir::Out,
                    prio::HOME_SIG,
                    rh2(false),
                ));
                out.push(sub(
                    Selector::hosts(hoa, ha).mh_type(mh::BU),
                    Dir::In,
                    prio::HOME_SIG,
                    hao(true),
                ));
                let tnl = tunnel_name(ha, coa);
                out.push(KernelObject::Tunnel {
                    name: tnl.clone(),
                    local: ha,
                    remote: coa,
                });
                out.push(KernelObject::Route {
                    dst: hoa,
                    dst_len: 128,
                    dev: tnl,
                    table: RT_TABLE_MAIN,
                    metric: METRIC_FWD,
                });
                if let Some(home) = &cfg.ha_home_interface {
                    out.push(KernelObject::ProxyNeigh {
                        dev: home.clone(),
                        addr: hoa,
                    });
                }
            }
            Binding::MnHome {
                hoa,
                coa,
                ha,
                acknowledged,
            } => {
                mn_binding_update(&mut out, hoa, ha, coa);
                out.push(KernelObject::State(State::ro(
                    ha,
                    hoa,
                    IPPROTO_ROUTING,
                    coa,
                )));
                out.push(sub(
                    Selector::hosts(ha, hoa).mh_type(mh::BA),
                    Dir::In,
                    prio::HOME_SIG,
                    rh2(true),
                ));
                if !acknowledged {
                    // Until the BA the BU routes like any packet of the care-of address
                    // (the kernel looks its route up from the home address first, so no
                    // blackhole rule may be in the way); `MnBlock` keeps the rest in.
                    continue;
                }
                // Home-addressed traffic never leaks out natively while away, should
                // table 252 lose its route.
                out.push(KernelObject::Rule {
                    priority: rule_prio::MN_HOA_BLOCK,
                    src: (hoa, 128),
                    table: 0,
                    action: RuleAction::Blackhole,
                });
                let tnl = tunnel_name(coa, ha);
                out.push(KernelObject::Tunnel {
                    name: tnl.clone(),
                    local: coa,
                    remote: ha,
                });
                out.push(KernelObject::Address {
                    dev: tnl.clone(),
                    addr: hoa,
                    prefix_len: 128,
                    flags: rtnl::IFA_F_HOMEADDRESS | rtnl::IFA_F_NODAD,
                });
                out.push(KernelObject::Route {
                    dst: any(),
                    dst_len: 0,
                    dev: tnl,
                    table: MIP6D_TABLE,
                    metric: METRIC_OUT,
                });
                out.push(KernelObject::Rule {
                    priority: rule_prio::MN_HOA,
                    src: (hoa, 128),
                    table: MIP6D_TABLE,
                    action: RuleAction::ToTable,
                });
                out.push(KernelObject::Rule {
                    priority: rule_prio::MN_COA,
                    src: (coa, 128),
                    table: RT_TABLE_MAIN,
                    action: RuleAction::ToTable,
                });
                if cfg.mn.is_some_and(|m| m.route_optimization) {
                    // What leaves from the home address with no route-optimisation state
                    // makes the kernel ask for one (XFRM_MSG_ACQUIRE): the optional
                    // template lets the packet go on through the tunnel meanwhile. umip's
                    // inbound trigger (XFRM_MODE_IN_TRIGGER on any -> HoA) drops every
                    // tunnelled packet on Linux 6.1 (XfrmInTmplMismatch) and sends no
                    // ACQUIRE; measured in the VM.
                    out.push(sub(
                        Selector::hosts(hoa, any()),
                        Dir::Out,
                        prio::RO_TRIG_ANY,
                        vec![Template {
                            reqid: TRIGGER_REQID,
                            ..Template::ro(IPPROTO_DSTOPTS, true)
                        }],
                    ));
                }
            }
            Binding::MnRouteOptimization { hoa, coa, cn } => {
                out.push(KernelObject::State(State::ro(
                    hoa,
                    cn,
                    IPPROTO_DSTOPTS,
                    coa,
                )));
                out.push(KernelObject::State(State::ro(
                    cn,
                    hoa,
                    IPPROTO_ROUTING,
                    coa,
                )));
                out.push(sub(
                    Selector::hosts(hoa, cn),
                    Dir::Out,
                    prio::RO_BULE_DATA,
                    hao(false),
                ));
                out.push(sub(
                    Selector::hosts(cn, hoa),
                    Dir::In,
                    prio::RO_BULE_DATA,
                    rh2(true),
                ));
                // The home test goes through the tunnel, never route-optimised (§5.2.5).
                out.push(sub(
                    Selector::hosts(hoa, cn).mh_type(mh::HOTI),
                    Dir::Out,
                    prio::RO_SIG_RR,
                    vec![],
                ));
                out.push(sub(
                    Selector::hosts(cn, hoa).mh_type(mh::HOT),
                    Dir::In,
                    prio::RO_SIG_RR,
                    vec![],
                ));
            }
            Binding::MnCorrespondentUpdate { hoa, coa, cn } => {
                // umip's pre-BU state: the BU leaves from the care-of address with a
                // Home Address option before route optimisation carries any data.
                mn_binding_update(&mut out, hoa, cn, coa);
            }
            Binding::MnBlock { hoa } => {
                out.push(block(
                    Selector::hosts(hoa, any()),
                    Dir::Out,
                    prio::HOME_BLOCK,
                ));
                // Signalling still leaves (the deregistration from home, sent from the
                // home address before the block is lifted), as on the user data path.
                out.push(sub(
                    Selector::hosts(hoa, any()).proto(IPPROTO_MH),
                    Dir::Out,
                    prio::HOME_SIG_ANY,
                    vec![],
                ));
            }
        }
    }
    // Two bindings may ask for the same object (the wildcard states of a node that is
    // both MN and CN): keep the first of each key.
    let mut seen = std::collections::HashSet::new();
    out.retain(|o| seen.insert(o.key()));
    out
}

/// What the applier needs from the kernel; [`SysKernel`] is the real one, tests use a
/// recording fake.
pub trait Kernel {
    fn add(&mut self, o: &KernelObject) -> io::Result<()>;
    /// Replaces an object with the same key (a new care-of address).
    fn replace(&mut self, o: &KernelObject) -> io::Result<()>;
    fn remove(&mut self, o: &KernelObject) -> io::Result<()>;
    /// When a packet last used the state `id` (seconds since the epoch); `None` if never
    /// or if the state is gone.
    fn last_used(&mut self, id: &StateId) -> io::Result<Option<u64>>;
}

/// The kernel through `sys::xfrm` and `sys::rtnl`, in the daemon's network namespace.
pub struct SysKernel {
    xfrm: Xfrm,
    rtnl: Rtnl,
}

impl SysKernel {
    pub fn open() -> io::Result<SysKernel> {
        Ok(SysKernel {
            xfrm: Xfrm::open()?,
            rtnl: Rtnl::open()?,
        })
    }

    fn index(&mut self, dev: &str) -> io::Result<u32> {
        self.rtnl
            .link_by_name(dev)?
            .map(|l| l.index)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no device {dev}")))
    }

    fn route(&mut self, o: &KernelObject) -> io::Result<rtnl::Route> {
        let KernelObject::Route {
            dst,
            dst_len,
            dev,
            table,
            metric,
        } = o
        else {
            unreachable!("route() is only called for routes")
        };
        Ok(rtnl::Route {
            dst: *dst,
            dst_len: *dst_len,
            oif: Some(self.index(dev)?),
            table: *table,
            priority: Some(*metric),
            protocol: RTPROT_MIP,
            ..rtnl::Route::default()
        })
    }

    fn address(&mut self, o: &KernelObject) -> io::Result<rtnl::Address> {
        let KernelObject::Address {
            dev,
            addr,
            prefix_len,
            flags,
        } = o
        else {
            unreachable!("address() is only called for addresses")
        };
        Ok(rtnl::Address {
            index: self.index(dev)?,
            addr: *addr,
            prefix_len: *prefix_len,
            flags: *flags,
            ..rtnl::Address::default()
        })
    }
}

fn rule(o: &KernelObject) -> Option<rtnl::Rule> {
    let KernelObject::Rule {
        priority,
        src,
        table,
        action,
    } = o
    else {
        return None;
    };
    Some(rtnl::Rule {
        priority: *priority,
        table: *table,
        src: Some(*src),
        action: *action,
        ..rtnl::Rule::default()
    })
}

impl Kernel for SysKernel {
    fn add(&mut self, o: &KernelObject) -> io::Result<()> {
        match o {
            KernelObject::Tunnel {
                name,
                local,
                remote,
            } => {
                let index = self.rtnl.create_ip6tnl(name, *local, *remote)?;
                self.rtnl.set_link_up(index, true)
            }
            KernelObject::Address { .. } => {
                let a = self.address(o)?;
                self.rtnl.add_address(&a)
            }
            KernelObject::Route { .. } => {
                let r = self.route(o)?;
                self.rtnl.add_route(&r)
            }
            KernelObject::Rule { .. } => self.rtnl.add_rule(&rule(o).expect("a rule")),
            KernelObject::ProxyNeigh { dev, addr } => {
                let i = self.index(dev)?;
                self.rtnl.add_proxy_neigh(i, *addr)
            }
            KernelObject::State(s) => match self.xfrm.add_state(s) {
                // The larval state of an ACQUIRE (the mobile node's trigger) holds the
                // addresses for 30 s; an update replaces it.
                Err(e) if crate::sys::xfrm::errno(&e) == Some(libc::EEXIST) => {
                    self.xfrm.update_state(s)
                }
                r => r,
            },
            KernelObject::Policy(p) => self.xfrm.add_policy(p),
        }
    }

    fn replace(&mut self, o: &KernelObject) -> io::Result<()> {
        match o {
            KernelObject::State(s) => self.xfrm.update_state(s),
            KernelObject::Policy(p) => self.xfrm.update_policy(p),
            // add_route replaces (NLM_F_REPLACE).
            KernelObject::Route { .. } => self.add(o),
            _ => {
                self.remove(o)?;
                self.add(o)
            }
        }
    }

    fn remove(&mut self, o: &KernelObject) -> io::Result<()> {
        match o {
            KernelObject::Tunnel { name, .. } => {
                let i = self.index(name)?;
                self.rtnl.delete_link(i)
            }
            KernelObject::Address { .. } => {
                let a = self.address(o)?;
                self.rtnl.del_address(&a)
            }
            KernelObject::Route { .. } => {
                let r = self.route(o)?;
                self.rtnl.del_route(&r)
            }
            KernelObject::Rule { .. } => self.rtnl.del_rule(&rule(o).expect("a rule")),
            KernelObject::ProxyNeigh { dev, addr } => {
                let i = self.index(dev)?;
                self.rtnl.del_proxy_neigh(i, *addr)
            }
            KernelObject::State(s) => self.xfrm.del_state(&s.id),
            KernelObject::Policy(p) => self.xfrm.del_policy(&p.id()),
        }
    }

    fn last_used(&mut self, id: &StateId) -> io::Result<Option<u64>> {
        Ok(self
            .xfrm
            .get_state(id)?
            .and_then(|s| s.last_used)
            .filter(|&t| t != 0))
    }
}

/// The `kernel` data path as the roles see it: bindings in, kernel objects kept in step.
pub struct KernelPath {
    cfg: PlanConfig,
    kernel: Rc<RefCell<dyn Kernel>>,
    bindings: BTreeMap<BindingKey, Binding>,
    installed: BTreeMap<ObjectKey, (KernelObject, EntryId)>,
}

impl KernelPath {
    /// Installs the baseline of `cfg` (the objects every node of the role has).
    pub fn start(
        cfg: PlanConfig,
        kernel: Rc<RefCell<dyn Kernel>>,
        registry: &mut Registry,
    ) -> io::Result<KernelPath> {
        let mut p = KernelPath {
            cfg,
            kernel,
            bindings: BTreeMap::new(),
            installed: BTreeMap::new(),
        };
        p.sync(registry)?;
        Ok(p)
    }

    /// The care-of address of the installed route-optimisation state that gives packets
    /// from `local` to `hoa` a Type 2 Routing Header, if there is one.
    pub fn rh2_coa(&self, local: Ipv6Addr, hoa: Ipv6Addr) -> Option<Ipv6Addr> {
        self.state_coa(local, hoa, IPPROTO_ROUTING)
    }

    /// The care-of address of the installed route-optimisation state from `src` to
    /// `dst` for `proto` (routing header or Home Address option), if there is one.
    pub fn state_coa(&self, src: Ipv6Addr, dst: Ipv6Addr, proto: u8) -> Option<Ipv6Addr> {
        self.installed.values().find_map(|(o, _)| match o {
            KernelObject::State(s) if s.id.src == src && s.id.dst == dst && s.id.proto == proto => {
                s.coaddr
            }
            _ => None,
        })
    }

    /// The correspondent bindings (local, home address) whose route-optimisation states
    /// a packet used at `since` (seconds since the epoch) or later, either way.
    pub fn correspondents_used_since(&self, since: u64) -> Vec<(Ipv6Addr, Ipv6Addr)> {
        let mut kernel = self.kernel.borrow_mut();
        let mut used = Vec::new();
        for b in self.bindings.values() {
            let Binding::Correspondent { local, hoa, .. } = *b else {
                continue;
            };
            let ids = self.installed.values().filter_map(|(o, _)| match o {
                KernelObject::State(s)
                    if (s.id.src, s.id.dst, s.id.proto) == (local, hoa, IPPROTO_ROUTING)
                        || (s.id.src, s.id.dst, s.id.proto) == (hoa, local, IPPROTO_DSTOPTS) =>
                {
                    Some(s.id)
                }
                _ => None,
            });
            let mut last = None;
            for id in ids {
                match kernel.last_used(&id) {
                    Ok(t) => last = last.max(t),
                    Err(e) => tracing::debug!("last use of {id:?}: {e}"),
                }
            }
            if last.is_some_and(|t| t >= since) {
                used.push((local, hoa));
            }
        }
        used
    }

    /// Makes the bindings whose keys `mine` selects exactly `want`, in one pass over
    /// the kernel (nothing is touched when they already are).
    pub fn set_bindings(
        &mut self,
        mine: impl Fn(&BindingKey) -> bool,
        want: &[Binding],
        registry: &mut Registry,
    ) -> io::Result<()> {
        let mut next: BTreeMap<BindingKey, Binding> = self
            .bindings
            .iter()
            .filter(|(k, _)| !mine(k))
            .map(|(k, b)| (*k, b.clone()))
            .collect();
        next.extend(want.iter().map(|b| (b.key(), b.clone())));
        if next == self.bindings {
            return Ok(());
        }
        self.bindings = next;
        self.sync(registry)
    }

    /// What is installed now, in install order.
    pub fn installed(&self) -> Vec<KernelObject> {
        let mut v: Vec<KernelObject> = self.installed.values().map(|(o, _)| o.clone()).collect();
        v.sort_by_key(KernelObject::rank);
        v
    }

    /// Brings the kernel to the plan for the current bindings. On an error the objects
    /// done so far stay recorded, so nothing is lost for cleanup; the next sync retries
    /// the rest.
    fn sync(&mut self, registry: &mut Registry) -> io::Result<()> {
        let bindings: Vec<Binding> = self.bindings.values().cloned().collect();
        let mut want = plan(&self.cfg, &bindings);
        want.sort_by_key(KernelObject::rank);
        let want_keys: std::collections::HashSet<ObjectKey> =
            want.iter().map(KernelObject::key).collect();
        let mut first_error = None;
        // Make before break: additions and replacements first, removals last.
        for o in &want {
            let key = o.key();
            let result = match self.installed.get(&key) {
                Some((old, _)) if old == o => continue,
                Some(_) => self.kernel.borrow_mut().replace(o),
                None => self.kernel.borrow_mut().add(o),
            };
            match result {
                Ok(()) => {
                    if let Some((_, id)) = self.installed.remove(&key) {
                        registry.forget(id);
                    }
                    let id = self.record(o, registry);
                    self.installed.insert(key, (o.clone(), id));
                }
                Err(e) => {
                    tracing::error!("kernel data path: {}: {e}", o.describe());
                    first_error.get_or_insert(e);
                }
            }
        }
        let mut stale: Vec<(KernelObject, EntryId)> = self
            .installed
            .iter()
            .filter(|(k, _)| !want_keys.contains(k))
            .map(|(_, v)| v.clone())
            .collect();
        stale.sort_by_key(|(o, _)| std::cmp::Reverse(o.rank()));
        for (o, id) in stale {
            self.installed.remove(&o.key());
            if let Err(e) = registry.undo(id) {
                tracing::warn!("kernel data path: {e}");
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn record(&self, o: &KernelObject, registry: &mut Registry) -> EntryId {
        let kernel = Rc::clone(&self.kernel);
        let obj = o.clone();
        registry.record(o.describe(), move || kernel.borrow_mut().remove(&obj))
    }
}

impl DataPath for KernelPath {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn install(&mut self, b: &Binding, registry: &mut Registry) -> io::Result<()> {
        self.bindings.insert(b.key(), b.clone());
        self.sync(registry)
    }

    fn remove(&mut self, key: &BindingKey, registry: &mut Registry) -> io::Result<()> {
        if self.bindings.remove(key).is_none() {
            return Ok(());
        }
        self.sync(registry)
    }

    fn cleanup(&mut self, registry: &mut Registry) -> Vec<io::Error> {
        self.bindings.clear();
        let mut all: Vec<(KernelObject, EntryId)> =
            std::mem::take(&mut self.installed).into_values().collect();
        all.sort_by_key(|(o, _)| std::cmp::Reverse(o.rank()));
        all.into_iter()
            .filter_map(|(_, id)| {
                registry
                    .undo(id)
                    .err()
                    .map(|e| io::Error::other(e.to_string()))
            })
            .collect()
    }
}

pub mod cn;
pub mod ha;
pub mod mn;
pub mod signalling;

#[cfg(test)]
mod tests;
