use super::*;
use crate::sys::xfrm::{PolicyType, StateId, XFRM_STATE_WILDRECV};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const HA: &str = "2001:db8:1::1";
const HOA: &str = "2001:db8:1::100";
const COA: &str = "2001:db8:2::100";
const COA2: &str = "2001:db8:3::100";
const CN: &str = "2001:db8:9::1";

fn cn_only() -> PlanConfig {
    PlanConfig {
        cn_route_optimization: true,
        ha_home_interface: None,
        mn: None,
    }
}

fn ha_cfg() -> PlanConfig {
    PlanConfig {
        ha_home_interface: Some("home1".into()),
        ..cn_only()
    }
}

fn mn_cfg(ro: bool) -> PlanConfig {
    PlanConfig {
        mn: Some(MnSettings {
            route_optimization: ro,
        }),
        ..cn_only()
    }
}

fn policies(p: &[KernelObject]) -> Vec<&Policy> {
    p.iter()
        .filter_map(|o| match o {
            KernelObject::Policy(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn states(p: &[KernelObject]) -> Vec<&State> {
    p.iter()
        .filter_map(|o| match o {
            KernelObject::State(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn find_policy(p: &[KernelObject], sel: Selector, dir: Dir) -> &Policy {
    policies(p)
        .into_iter()
        .find(|x| x.sel == sel && x.dir == dir)
        .unwrap_or_else(|| panic!("no {dir:?} policy for {sel:?} in {p:#?}"))
}

fn find_state(p: &[KernelObject], src: &str, dst: &str, proto: u8) -> State {
    states(p)
        .into_iter()
        .find(|s| s.id.src == a(src) && s.id.dst == a(dst) && s.id.proto == proto)
        .cloned()
        .unwrap_or_else(|| panic!("no state {src} -> {dst} proto {proto} in {p:#?}"))
}

#[test]
fn correspondent_baseline_accepts_hao_from_anyone_and_bypasses_nd() {
    let p = plan(&cn_only(), &[]);
    let wild = states(&p);
    assert_eq!(wild.len(), 1);
    assert_eq!(wild[0].id.proto, IPPROTO_DSTOPTS);
    assert_eq!(wild[0].flags, XFRM_STATE_WILDRECV);
    assert_eq!(wild[0].mode, xfrm::XFRM_MODE_ROUTEOPTIMIZATION);
    let bu = find_policy(&p, Selector::any().mh_type(5), Dir::In);
    assert_eq!(bu.priority, prio::RO_SIG_ANY);
    assert_eq!(bu.templates, vec![Template::ro(IPPROTO_DSTOPTS, true)]);
    let mh_out = find_policy(&p, Selector::any().proto(IPPROTO_MH), Dir::Out);
    assert_eq!(mh_out.priority, prio::NO_RO_SIG_ANY);
    assert!(mh_out.templates.is_empty());
    for t in [135, 136] {
        let nd = find_policy(&p, Selector::any().icmp6_type(t), Dir::Out);
        assert_eq!(nd.priority, prio::HOME_SIG_ANY);
    }
    assert!(policies(&p).iter().all(|x| x.ptype == PolicyType::Sub));
    assert!(!p.iter().any(|o| matches!(
        o,
        KernelObject::Tunnel { .. } | KernelObject::Route { .. } | KernelObject::Rule { .. }
    )));
    // Without route optimisation the correspondent installs nothing.
    let off = PlanConfig {
        cn_route_optimization: false,
        ..cn_only()
    };
    assert!(plan(&off, &[]).is_empty());
}

#[test]
fn correspondent_binding_is_rh2_out_and_hao_in_naming_the_care_of_address() {
    let b = Binding::Correspondent {
        local: a(CN),
        hoa: a(HOA),
        coa: a(COA),
    };
    let p = plan(&cn_only(), &[b]);
    let out = find_state(&p, CN, HOA, IPPROTO_ROUTING);
    assert_eq!(out.coaddr, Some(a(COA)));
    assert_eq!(out.sel, Selector::hosts(a(CN), a(HOA)));
    let inn = find_state(&p, HOA, CN, IPPROTO_DSTOPTS);
    assert_eq!(inn.coaddr, Some(a(COA)));
    let data = find_policy(&p, Selector::hosts(a(CN), a(HOA)), Dir::Out);
    assert_eq!(data.priority, prio::RO_BCE_DATA);
    assert_eq!(data.templates, vec![Template::ro(IPPROTO_ROUTING, false)]);
    let data_in = find_policy(&p, Selector::hosts(a(HOA), a(CN)), Dir::In);
    assert_eq!(data_in.templates, vec![Template::ro(IPPROTO_DSTOPTS, true)]);
    // BA beats the baseline's "MH without RH2" (8 < 12).
    let ba = find_policy(&p, Selector::hosts(a(CN), a(HOA)).mh_type(6), Dir::Out);
    assert!(ba.priority < prio::NO_RO_SIG_ANY);
    assert_eq!(ba.templates[0].proto, IPPROTO_ROUTING);
}

#[test]
fn home_agent_registration_tunnels_routes_and_proxies_the_home_address() {
    let b = Binding::HomeRegistration {
        ha: a(HA),
        hoa: a(HOA),
        coa: a(COA),
    };
    let p = plan(&ha_cfg(), &[b]);
    let tnl = tunnel_name(a(HA), a(COA));
    assert!(p.contains(&KernelObject::Tunnel {
        name: tnl.clone(),
        local: a(HA),
        remote: a(COA)
    }));
    assert!(p.contains(&KernelObject::Route {
        dst: a(HOA),
        dst_len: 128,
        dev: tnl,
        table: RT_TABLE_MAIN,
        metric: METRIC_FWD
    }));
    assert!(p.contains(&KernelObject::ProxyNeigh {
        dev: "home1".into(),
        addr: a(HOA)
    }));
    let ba = find_policy(&p, Selector::hosts(a(HA), a(HOA)).mh_type(6), Dir::Out);
    assert_eq!(ba.priority, prio::HOME_SIG);
    assert_eq!(ba.templates, vec![Template::ro(IPPROTO_ROUTING, false)]);
    let bu = find_policy(&p, Selector::hosts(a(HOA), a(HA)).mh_type(5), Dir::In);
    assert_eq!(bu.priority, prio::HOME_SIG);
    assert_eq!(
        find_state(&p, HA, HOA, IPPROTO_ROUTING).coaddr,
        Some(a(COA))
    );
    assert_eq!(
        find_state(&p, HOA, HA, IPPROTO_DSTOPTS).coaddr,
        Some(a(COA))
    );
    // The HA's data to the home address goes through the tunnel: no data policy.
    assert!(policies(&p)
        .iter()
        .all(|x| x.sel != Selector::hosts(a(HA), a(HOA))));
}

#[test]
fn mobile_node_blocks_home_traffic_until_the_ack_then_tunnels_it() {
    let pending = Binding::MnHome {
        hoa: a(HOA),
        coa: a(COA),
        ha: a(HA),
        acknowledged: false,
    };
    let blocked = Binding::MnBlock { hoa: a(HOA) };
    let p = plan(&mn_cfg(true), &[pending, blocked]);
    let blk = find_policy(&p, Selector::hosts(a(HOA), Ipv6Addr::UNSPECIFIED), Dir::Out);
    assert_eq!(blk.action, PolicyAction::Block);
    assert_eq!(blk.priority, prio::HOME_BLOCK);
    let bu = find_policy(&p, Selector::hosts(a(HOA), a(HA)).mh_type(5), Dir::Out);
    assert!(bu.priority < blk.priority, "the BU must get past the block");
    assert_eq!(bu.templates, vec![Template::ro(IPPROTO_DSTOPTS, false)]);
    assert_eq!(
        find_state(&p, HOA, HA, IPPROTO_DSTOPTS).coaddr,
        Some(a(COA))
    );
    // The kernel looks the BU's route up from the home address before the state moves
    // it to the care-of address: a blackhole rule for the home address would kill it.
    assert!(!p.iter().any(|o| matches!(o, KernelObject::Rule { .. })));
    assert!(!p.iter().any(|o| matches!(o, KernelObject::Tunnel { .. })));
    // Neighbour discovery gets past the block (a node back home answers for its address).
    assert!(policies(&p)
        .iter()
        .any(|x| x.sel == Selector::any().icmp6_type(136) && x.priority < blk.priority));
    // The MN accepts a routing header from anyone (a CN's BA).
    assert!(states(&p)
        .iter()
        .any(|s| s.id.proto == IPPROTO_ROUTING && s.flags == XFRM_STATE_WILDRECV));

    let bound = Binding::MnHome {
        hoa: a(HOA),
        coa: a(COA),
        ha: a(HA),
        acknowledged: true,
    };
    let p = plan(&mn_cfg(true), std::slice::from_ref(&bound));
    assert!(policies(&p).iter().all(|x| x.action != PolicyAction::Block));
    let tnl = tunnel_name(a(COA), a(HA));
    assert!(p.contains(&KernelObject::Tunnel {
        name: tnl.clone(),
        local: a(COA),
        remote: a(HA)
    }));
    assert!(p.contains(&KernelObject::Address {
        dev: tnl.clone(),
        addr: a(HOA),
        prefix_len: 128,
        flags: rtnl::IFA_F_HOMEADDRESS | rtnl::IFA_F_NODAD
    }));
    assert!(p.contains(&KernelObject::Route {
        dst: Ipv6Addr::UNSPECIFIED,
        dst_len: 0,
        dev: tnl,
        table: MIP6D_TABLE,
        metric: METRIC_OUT
    }));
    assert!(p.contains(&KernelObject::Rule {
        priority: rule_prio::MN_HOA,
        src: (a(HOA), 128),
        table: MIP6D_TABLE,
        action: RuleAction::ToTable
    }));
    assert!(p.contains(&KernelObject::Rule {
        priority: rule_prio::MN_HOA_BLOCK,
        src: (a(HOA), 128),
        table: 0,
        action: RuleAction::Blackhole
    }));
    assert!(p.contains(&KernelObject::Rule {
        priority: rule_prio::MN_COA,
        src: (a(COA), 128),
        table: RT_TABLE_MAIN,
        action: RuleAction::ToTable
    }));
    let trig = find_policy(&p, Selector::hosts(a(HOA), Ipv6Addr::UNSPECIFIED), Dir::Out);
    assert_eq!(trig.priority, prio::RO_TRIG_ANY);
    assert_eq!(trig.templates.len(), 1);
    assert_eq!(
        (trig.templates[0].proto, trig.templates[0].reqid),
        (IPPROTO_DSTOPTS, TRIGGER_REQID),
        "a state no binding has: data waits for route optimisation in the tunnel"
    );
    assert!(
        trig.templates[0].optional,
        "data goes on through the tunnel"
    );
    // DoRouteOptimizationMN disabled: no trigger.
    let p = plan(&mn_cfg(false), &[bound]);
    assert!(policies(&p).iter().all(|x| x.priority != prio::RO_TRIG_ANY));
}

#[test]
fn mobile_node_route_optimisation_with_a_correspondent() {
    let b = Binding::MnRouteOptimization {
        hoa: a(HOA),
        coa: a(COA),
        cn: a(CN),
    };
    let p = plan(&mn_cfg(true), &[b]);
    assert_eq!(
        find_state(&p, HOA, CN, IPPROTO_DSTOPTS).coaddr,
        Some(a(COA))
    );
    assert_eq!(
        find_state(&p, CN, HOA, IPPROTO_ROUTING).coaddr,
        Some(a(COA))
    );
    let data = find_policy(&p, Selector::hosts(a(HOA), a(CN)), Dir::Out);
    assert_eq!(data.priority, prio::RO_BULE_DATA);
    assert_eq!(data.templates, vec![Template::ro(IPPROTO_DSTOPTS, false)]);
    let hoti = find_policy(&p, Selector::hosts(a(HOA), a(CN)).mh_type(1), Dir::Out);
    assert!(
        hoti.templates.is_empty(),
        "the HoTI goes through the tunnel"
    );
    assert!(hoti.priority < data.priority);
}

#[test]
fn mobile_node_binding_update_to_a_correspondent_leaves_with_a_home_address_option() {
    let b = Binding::MnCorrespondentUpdate {
        hoa: a(HOA),
        coa: a(COA),
        cn: a(CN),
    };
    let p = plan(&mn_cfg(true), &[b, Binding::MnBlock { hoa: a(HOA) }]);
    assert_eq!(
        find_state(&p, HOA, CN, IPPROTO_DSTOPTS).coaddr,
        Some(a(COA))
    );
    let bu = find_policy(&p, Selector::hosts(a(HOA), a(CN)).mh_type(5), Dir::Out);
    assert_eq!(bu.templates, vec![Template::ro(IPPROTO_DSTOPTS, false)]);
    // Only the BU: data to the correspondent is not route-optimised before its BA.
    assert!(policies(&p)
        .iter()
        .all(|x| x.sel != Selector::hosts(a(HOA), a(CN))));
}

#[test]
fn plans_are_deterministic_and_free_of_duplicate_keys() {
    let bs = vec![
        Binding::MnHome {
            hoa: a(HOA),
            coa: a(COA),
            ha: a(HA),
            acknowledged: true,
        },
        Binding::MnRouteOptimization {
            hoa: a(HOA),
            coa: a(COA),
            cn: a(CN),
        },
        Binding::Correspondent {
            local: a(HOA),
            hoa: a("2001:db8:5::5"),
            coa: a(COA2),
        },
    ];
    let cfg = mn_cfg(true);
    let p = plan(&cfg, &bs);
    assert_eq!(p, plan(&cfg, &bs));
    let mut keys: Vec<ObjectKey> = p.iter().map(KernelObject::key).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    // Both wildcard receive states on a node that is MN and CN.
    let wild: Vec<u8> = states(&p)
        .iter()
        .filter(|s| s.flags == XFRM_STATE_WILDRECV)
        .map(|s| s.id.proto)
        .collect();
    assert_eq!(wild.len(), 2);
}

#[test]
fn tunnel_names_fit_ifnamsiz_and_tell_endpoints_apart() {
    let n = tunnel_name(a(HA), a(COA));
    assert!(n.len() <= 15, "{n}");
    assert_eq!(n, tunnel_name(a(HA), a(COA)));
    assert_ne!(n, tunnel_name(a(HA), a(COA2)));
    assert_ne!(n, tunnel_name(a(COA), a(HA)));
}

/// A kernel that records what it was asked and holds the objects by key.
#[derive(Default)]
struct Fake {
    objects: BTreeMap<ObjectKey, KernelObject>,
    log: Vec<String>,
    fail_on: Option<ObjectKey>,
    /// `last_used` of states, by (src, dst, proto).
    used: BTreeMap<(Ipv6Addr, Ipv6Addr, u8), u64>,
}

impl Kernel for Fake {
    fn add(&mut self, o: &KernelObject) -> io::Result<()> {
        if self.fail_on.as_ref() == Some(&o.key()) {
            return Err(io::Error::other("refused"));
        }
        self.log.push(format!("add {}", o.describe()));
        assert!(
            self.objects.insert(o.key(), o.clone()).is_none(),
            "added twice: {}",
            o.describe()
        );
        Ok(())
    }
    fn replace(&mut self, o: &KernelObject) -> io::Result<()> {
        self.log.push(format!("replace {}", o.describe()));
        assert!(self.objects.insert(o.key(), o.clone()).is_some());
        Ok(())
    }
    fn remove(&mut self, o: &KernelObject) -> io::Result<()> {
        self.log.push(format!("remove {}", o.describe()));
        assert!(
            self.objects.remove(&o.key()).is_some(),
            "not there: {}",
            o.describe()
        );
        Ok(())
    }
    fn last_used(&mut self, id: &StateId) -> io::Result<Option<u64>> {
        assert!(
            self.objects.contains_key(&ObjectKey::State(*id)),
            "asked about a state it does not have"
        );
        Ok(self.used.get(&(id.src, id.dst, id.proto)).copied())
    }
}

#[test]
fn bindings_in_use_are_the_ones_whose_states_a_packet_used_lately() {
    let (fake, mut path, mut reg) = fake_path(cn_only());
    for hoa in [HOA, COA2] {
        path.install(
            &Binding::Correspondent {
                local: a(CN),
                hoa: a(hoa),
                coa: a(COA),
            },
            &mut reg,
        )
        .unwrap();
    }
    assert!(path.correspondents_used_since(0).is_empty(), "never used");
    // Data to the mobile node (RH2 out) long ago, from the other (HAO in) just now.
    fake.borrow_mut()
        .used
        .insert((a(CN), a(HOA), IPPROTO_ROUTING), 100);
    fake.borrow_mut()
        .used
        .insert((a(COA2), a(CN), IPPROTO_DSTOPTS), 1000);
    assert_eq!(path.correspondents_used_since(500), vec![(a(CN), a(COA2))]);
    assert_eq!(path.correspondents_used_since(50).len(), 2);
}

fn fake_path(cfg: PlanConfig) -> (Rc<RefCell<Fake>>, KernelPath, Registry) {
    let fake = Rc::new(RefCell::new(Fake::default()));
    let mut reg = Registry::new();
    let dyn_fake: Rc<RefCell<dyn Kernel>> = fake.clone();
    let path = KernelPath::start(cfg, dyn_fake, &mut reg).unwrap();
    (fake, path, reg)
}

#[test]
fn applier_moves_a_home_registration_make_before_break_and_records_everything() {
    let (fake, mut path, mut reg) = fake_path(ha_cfg());
    let baseline = fake.borrow().objects.len();
    assert_eq!(reg.len(), baseline, "every baseline object recorded");
    let reg1 = Binding::HomeRegistration {
        ha: a(HA),
        hoa: a(HOA),
        coa: a(COA),
    };
    path.install(&reg1, &mut reg).unwrap();
    let want: Vec<KernelObject> = plan(&ha_cfg(), &[reg1]);
    assert_eq!(fake.borrow().objects.len(), want.len());
    assert_eq!(reg.len(), want.len());
    // Tunnels go in before the routes through them.
    let log = fake.borrow().log.clone();
    let t = log
        .iter()
        .position(|l| l.starts_with("add ip6tnl"))
        .unwrap();
    let r = log.iter().position(|l| l.starts_with("add route")).unwrap();
    assert!(t < r, "{log:#?}");

    // The mobile node moves: states and the route are replaced in place, the new tunnel
    // exists before the old one goes.
    fake.borrow_mut().log.clear();
    let moved = Binding::HomeRegistration {
        ha: a(HA),
        hoa: a(HOA),
        coa: a(COA2),
    };
    path.install(&moved, &mut reg).unwrap();
    let log = fake.borrow().log.clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with("replace xfrm state") && l.contains(COA2)),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("replace route")),
        "{log:#?}"
    );
    let added = log
        .iter()
        .position(|l| l.starts_with("add ip6tnl"))
        .unwrap();
    let removed = log
        .iter()
        .position(|l| l.starts_with("remove ip6tnl"))
        .unwrap();
    assert!(added < removed, "{log:#?}");
    assert!(
        !log.iter().any(|l| l.starts_with("remove xfrm")),
        "{log:#?}"
    );
    let want = plan(&ha_cfg(), &[moved]);
    let have: Vec<KernelObject> = fake.borrow().objects.values().cloned().collect();
    assert_eq!(have.len(), want.len());
    assert!(want.iter().all(|o| have.contains(o)));
    assert_eq!(reg.len(), want.len(), "{:#?}", reg.installed());

    // Deregistration: policies go before the states they name, routes before tunnels.
    fake.borrow_mut().log.clear();
    path.remove(&BindingKey::HomeRegistration { hoa: a(HOA) }, &mut reg)
        .unwrap();
    let log = fake.borrow().log.clone();
    let pol = log
        .iter()
        .position(|l| l.starts_with("remove xfrm policy"))
        .unwrap();
    let st = log
        .iter()
        .rposition(|l| l.starts_with("remove xfrm state"))
        .unwrap();
    assert!(pol < st, "{log:#?}");
    let rt = log
        .iter()
        .position(|l| l.starts_with("remove route"))
        .unwrap();
    let tn = log
        .iter()
        .position(|l| l.starts_with("remove ip6tnl"))
        .unwrap();
    assert!(rt < tn, "{log:#?}");
    assert_eq!(fake.borrow().objects.len(), baseline);

    // Shutdown through the registry alone (SIGTERM) leaves nothing.
    assert!(reg.undo_all().is_empty());
    assert!(fake.borrow().objects.is_empty());
    drop(path);
}

#[test]
fn cleanup_removes_everything_and_errors_do_not_lose_records() {
    let (fake, mut path, mut reg) = fake_path(mn_cfg(true));
    let bad = State::ro(a(HOA), a(CN), IPPROTO_DSTOPTS, a(COA));
    fake.borrow_mut().fail_on = Some(ObjectKey::State(bad.id));
    let ro = Binding::MnRouteOptimization {
        hoa: a(HOA),
        coa: a(COA),
        cn: a(CN),
    };
    assert!(path.install(&ro, &mut reg).is_err());
    // Everything else of the plan went in and is recorded.
    let want = plan(&mn_cfg(true), std::slice::from_ref(&ro));
    assert_eq!(fake.borrow().objects.len(), want.len() - 1);
    assert_eq!(reg.len(), want.len() - 1);
    // The next change retries what failed.
    fake.borrow_mut().fail_on = None;
    path.install(&ro, &mut reg).unwrap();
    assert_eq!(fake.borrow().objects.len(), want.len());
    assert!(path.cleanup(&mut reg).is_empty());
    assert!(fake.borrow().objects.is_empty());
    assert!(reg.is_empty());
    assert_eq!(path.name(), "kernel");
}
