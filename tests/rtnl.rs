//! `mip6d::sys::rtnl` against the live kernel, in a scratch network namespace of its own,
//! with iproute2 as the independent witness: what we install, `ip` lists with the same
//! attributes, and what we read back matches what we asked for.
//!
//! Needs root and iproute2; without them the tests fail and say what to install.

#[path = "support/scratch_ns.rs"]
mod scratch_ns;
#[path = "support/testbed.rs"]
mod testbed;

use std::net::Ipv6Addr;
use std::process::Command;

use mip6d::sys::rtnl::{
    errno, Address, Groups, Neighbour, Route, Rtnl, RtnlEvent, RtnlMonitor, Rule, RuleAction,
    IFA_F_HOMEADDRESS, IFA_F_NODAD, IFA_F_TENTATIVE, MIP6D_TABLE, NTF_PROXY, NUD_PERMANENT,
    RTPROT_MIP,
};
use scratch_ns::{json_field as s, Ns};
use testbed::Tool;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const HOA: &str = "2001:db8:5::1";
const PROXIED: &str = "2001:db8:5::99";
const ROUTE_DST: &str = "2001:db8:6::";

#[test]
fn links_addresses_routes_rules_and_proxy_neighbours_round_trip_and_match_iproute2() {
    testbed::require("rtnl", &[Tool::Ip]);
    let ns = Ns::new("objects");

    // Everything is installed by our code, from inside the namespace.
    let (index, mut monitor, mut rt) = ns.run(|| {
        let monitor = RtnlMonitor::open(
            Groups::LINK
                | Groups::IPV6_IFADDR
                | Groups::IPV6_ROUTE
                | Groups::IPV6_RULE
                | Groups::NEIGH,
        )
        .expect("monitor");
        let mut rt = Rtnl::open().expect("rtnl");
        let index = rt.create_veth("rtnl0", "rtnl0p").expect("create veth");
        (index, monitor, rt)
    });
    // Sockets stay in the namespace they were opened in, whichever thread uses them.

    // --- links
    rt.set_link_up(index, true).unwrap();
    rt.set_link_mtu(index, 1400).unwrap();
    let link = rt.link_by_name("rtnl0").unwrap().expect("rtnl0 listed");
    assert_eq!(link.index, index);
    assert!(link.up, "{link:?}");
    assert_eq!(link.mtu, 1400);
    assert_eq!(link.kind.as_deref(), Some("veth"));
    assert_eq!(link.mac.as_ref().map(Vec::len), Some(6), "{link:?}");
    let ipl = ns.ip_json(&["link", "show", "dev", "rtnl0"]);
    assert_eq!(ipl[0]["mtu"], 1400);
    assert!(ipl[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    let lo = rt.link_by_name("lo").unwrap().expect("lo");
    assert!(!lo.up, "a new namespace's lo is down");

    // --- addresses: HOMEADDRESS and NODAD, one with lifetimes
    let hoa = Address {
        index,
        addr: a(HOA),
        prefix_len: 64,
        flags: IFA_F_NODAD | IFA_F_HOMEADDRESS,
        ..Default::default()
    };
    rt.add_address(&hoa).unwrap();
    let timed = Address {
        index,
        addr: a("2001:db8:5::2"),
        prefix_len: 64,
        flags: IFA_F_NODAD,
        valid_lft: Some(3600),
        preferred_lft: Some(1800),
        ..Default::default()
    };
    rt.add_address(&timed).unwrap();
    let addrs = rt.addresses().unwrap();
    let got = addrs
        .iter()
        .find(|x| x.addr == hoa.addr)
        .expect("HoA read back");
    assert_eq!(got.index, index);
    assert_eq!(got.prefix_len, 64);
    assert_eq!(
        got.flags & (IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_TENTATIVE),
        IFA_F_NODAD | IFA_F_HOMEADDRESS,
        "flags {:#x}",
        got.flags
    );
    assert_eq!(got.valid_lft, None, "no lifetime given: forever");
    let got = addrs
        .iter()
        .find(|x| x.addr == timed.addr)
        .expect("timed read back");
    let valid = got.valid_lft.expect("valid lifetime");
    let preferred = got.preferred_lft.expect("preferred lifetime");
    assert!((3590..=3600).contains(&valid), "{got:?}");
    assert!((1790..=1800).contains(&preferred), "{got:?}");
    let ipa = ns.ip_json(&["-6", "addr", "show", "dev", "rtnl0"]);
    let info = ipa[0]["addr_info"].as_array().unwrap();
    let entry = info
        .iter()
        .find(|x| x["local"] == HOA)
        .unwrap_or_else(|| panic!("ip does not list {HOA}: {ipa:?}"));
    assert_eq!(entry["prefixlen"], 64);
    assert_eq!(entry["home"], true, "{entry}");
    assert_eq!(entry["nodad"], true, "{entry}");
    let entry = info.iter().find(|x| x["local"] == "2001:db8:5::2").unwrap();
    assert!(entry["valid_life_time"].as_u64().unwrap() <= 3600);
    assert!(entry["preferred_life_time"].as_u64().unwrap() <= 1800);

    // --- routes in table 252 with an MTU metric and protocol RTPROT_MIP
    let route = Route {
        dst: a(ROUTE_DST),
        dst_len: 64,
        oif: Some(index),
        table: MIP6D_TABLE,
        priority: Some(128),
        mtu: Some(1280),
        protocol: RTPROT_MIP,
        ..Default::default()
    };
    rt.add_route(&route).unwrap();
    let host = Route {
        dst: a("2001:db8:7::1"),
        dst_len: 128,
        gateway: Some(a("2001:db8:5::fe")),
        oif: Some(index),
        src: Some(a(HOA)),
        ..Default::default()
    };
    rt.add_route(&host).unwrap();
    // Replacing is idempotent (NLM_F_REPLACE): a second add is no error.
    rt.add_route(&route).unwrap();
    let routes = rt.routes(MIP6D_TABLE).unwrap();
    assert_eq!(
        routes.iter().filter(|r| r.dst == route.dst).count(),
        1,
        "{routes:?}"
    );
    assert!(routes.contains(&route), "{route:?} not in {routes:?}");
    let got = routes
        .iter()
        .find(|r| r.dst == host.dst)
        .expect("host route");
    assert_eq!(
        (got.gateway, got.src, got.protocol, got.dst_len),
        (host.gateway, host.src, RTPROT_MIP, 128)
    );
    assert!(
        rt.routes(254).unwrap().iter().all(|r| r.dst != route.dst),
        "table filter"
    );
    let ipr = ns.ip_json(&["-6", "route", "show", "table", "252"]);
    let entry = ipr
        .iter()
        .find(|r| r["dst"] == "2001:db8:6::/64")
        .unwrap_or_else(|| panic!("ip does not list the route: {ipr:?}"));
    assert_eq!(s(entry, "protocol"), "16", "{entry}");
    assert_eq!(entry["metric"], 128, "{entry}");
    assert_eq!(entry["dev"], "rtnl0", "{entry}");
    assert_eq!(entry["metrics"][0]["mtu"], 1280, "{entry}");
    let entry = ipr.iter().find(|r| r["dst"] == "2001:db8:7::1").unwrap();
    assert_eq!(entry["gateway"], "2001:db8:5::fe", "{entry}");
    assert_eq!(entry["prefsrc"], HOA, "{entry}");

    // --- rules with priorities
    let rule = Rule {
        priority: 1001,
        table: MIP6D_TABLE,
        src: Some((a(HOA), 128)),
        protocol: RTPROT_MIP,
        ..Default::default()
    };
    let blackhole = Rule {
        priority: 1003,
        table: 0,
        src: Some((a(HOA), 128)),
        iif: Some("lo".into()),
        action: RuleAction::Blackhole,
        ..Default::default()
    };
    rt.add_rule(&rule).unwrap();
    rt.add_rule(&blackhole).unwrap();
    let rules = rt.rules().unwrap();
    assert!(rules.contains(&rule), "{rule:?} not in {rules:?}");
    assert!(rules.contains(&blackhole), "{blackhole:?} not in {rules:?}");
    assert!(
        rules.iter().any(|r| r.priority == 32766 && r.table == 254),
        "the main-table rule is listed too: {rules:?}"
    );
    let iprule = ns.ip_json(&["-6", "rule", "show"]);
    let entry = iprule
        .iter()
        .find(|r| r["priority"] == 1001)
        .unwrap_or_else(|| panic!("ip does not list rule 1001: {iprule:?}"));
    assert_eq!(entry["src"], HOA, "{entry}");
    assert_eq!(s(entry, "table"), "252", "{entry}");
    assert_eq!(s(entry, "protocol"), "16", "{entry}");
    let entry = iprule.iter().find(|r| r["priority"] == 1003).unwrap();
    // -N prints FR_ACT_BLACKHOLE as its number.
    assert_eq!(s(entry, "action"), "6", "{entry}");
    assert_eq!(entry["iif"], "lo", "{entry}");

    // --- proxy neighbours
    rt.add_proxy_neigh(index, a(PROXIED)).unwrap();
    let proxies = rt.proxy_neighs().unwrap();
    let got = proxies
        .iter()
        .find(|n| n.addr == a(PROXIED))
        .unwrap_or_else(|| panic!("proxy entry not read back: {proxies:?}"));
    assert_eq!(got.index, index);
    assert_ne!(got.flags & NTF_PROXY, 0, "{got:?}");
    assert_eq!(got.protocol, RTPROT_MIP, "marked as ours: {got:?}");
    let ipn = ns.ip_json(&["-6", "neigh", "show", "proxy"]);
    let entry = ipn
        .iter()
        .find(|n| n["dst"] == PROXIED)
        .unwrap_or_else(|| panic!("ip does not list the proxy entry: {ipn:?}"));
    assert_eq!(entry["dev"], "rtnl0", "{entry}");
    assert_eq!(s(entry, "protocol"), "16", "{entry}");
    let ipn = ns.ip(&["-6", "neigh", "show", "proxy"]);
    assert!(
        ipn.lines()
            .any(|l| l.starts_with(&format!("{PROXIED} dev rtnl0")) && l.contains("proxy")),
        "ip -6 neigh show proxy:\n{ipn}"
    );
    // An ordinary permanent neighbour, so the monitor has a cache entry to report too.
    let router = Neighbour {
        index,
        addr: a("2001:db8:5::fe"),
        lladdr: Some(vec![2, 0, 0, 0, 0, 0xfe]),
        state: NUD_PERMANENT,
        flags: 0,
        protocol: 0,
    };
    rt.add_neigh(&router).unwrap();
    assert!(rt.neighbours().unwrap().contains(&router));

    // --- the monitor saw it all happen (the kernel queues notifications before it ACKs)
    let events = monitor.recv().expect("monitor recv");
    let saw = |pred: &dyn Fn(&RtnlEvent) -> bool, what: &str| {
        assert!(
            events.iter().any(pred),
            "monitor missed {what}; it saw: {events:#?}"
        )
    };
    saw(
        &|e| matches!(e, RtnlEvent::NewLink(l) if l.name == "rtnl0" && l.up && l.mtu == 1400),
        "NewLink(rtnl0 up, mtu 1400)",
    );
    saw(
        &|e| matches!(e, RtnlEvent::NewAddress(x) if x.addr == a(HOA) && x.flags & IFA_F_HOMEADDRESS != 0),
        "NewAddress(HoA, HOMEADDRESS)",
    );
    saw(
        &|e| matches!(e, RtnlEvent::NewRoute(r) if *r == route),
        "NewRoute(table 252)",
    );
    saw(
        &|e| matches!(e, RtnlEvent::NewRule(r) if *r == rule),
        "NewRule(1001)",
    );
    saw(
        &|e| matches!(e, RtnlEvent::NewNeigh(n) if n.addr == router.addr),
        "NewNeigh(router)",
    );
    assert_eq!(monitor.dropped(), 0);
    assert_eq!(monitor.garbled(), 0, "every kernel message decoded");

    // --- and everything goes away again
    rt.del_neigh(&router).unwrap();
    rt.del_proxy_neigh(index, a(PROXIED)).unwrap();
    assert!(rt
        .proxy_neighs()
        .unwrap()
        .iter()
        .all(|n| n.addr != a(PROXIED)));
    assert!(!ns.ip(&["-6", "neigh", "show", "proxy"]).contains(PROXIED));
    rt.del_rule(&rule).unwrap();
    rt.del_rule(&blackhole).unwrap();
    assert!(rt
        .rules()
        .unwrap()
        .iter()
        .all(|r| r.priority != 1001 && r.priority != 1003));
    // A delete matches the protocol too: someone else's route of the same prefix stays.
    let err = rt
        .del_route(&Route {
            protocol: 3,
            ..route.clone()
        })
        .expect_err("protocol must match");
    assert_eq!(errno(&err), Some(libc::ESRCH), "{err}");
    rt.del_route(&route).unwrap();
    rt.del_route(&host).unwrap();
    assert!(rt.routes(MIP6D_TABLE).unwrap().is_empty());
    assert!(ns
        .ip_json(&["-6", "route", "show", "table", "252"])
        .is_empty());
    rt.del_address(&hoa).unwrap();
    assert!(rt.addresses().unwrap().iter().all(|x| x.addr != hoa.addr));
    // Errors carry the errno: the address is gone.
    let err = rt.del_address(&hoa).expect_err("second delete");
    assert_eq!(errno(&err), Some(libc::EADDRNOTAVAIL), "{err}");

    let events = monitor.recv().expect("monitor recv");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RtnlEvent::DelAddress(x) if x.addr == a(HOA))),
        "DelAddress missing: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RtnlEvent::DelRoute(r) if r.dst == route.dst)),
        "DelRoute missing: {events:#?}"
    );

    rt.delete_link(index).unwrap();
    assert!(rt.link_by_name("rtnl0").unwrap().is_none());
    let events = monitor.recv().expect("monitor recv");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RtnlEvent::DelLink(l) if l.index == index)),
        "DelLink missing: {events:#?}"
    );
}

#[test]
fn kernel_errors_come_back_as_errno_with_the_kernels_reason() {
    testbed::require("rtnl", &[Tool::Ip]);
    let ns = Ns::new("errors");
    ns.run(|| {
        let mut rt = Rtnl::open().unwrap();
        let err = rt.set_link_mtu(987_654, 1400).expect_err("no such link");
        assert_eq!(errno(&err), Some(libc::ENODEV), "{err}");
        let index = rt.create_veth("rtnl1", "rtnl1p").unwrap();
        let err = rt.create_veth("rtnl1", "rtnl1q").expect_err("exists");
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        // IPv6 refuses an MTU below 1280 on an up link only through its own checks; a
        // tiny MTU is refused by the device itself, with a reason text.
        let err = rt.set_link_mtu(index, 10).expect_err("MTU too small");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        rt.delete_link(index).unwrap();
    });
}

/// The kernel data path's tunnel. This machine's kernel has no `ip6_tunnel`, so creation
/// must fail with a clear error; the VM tests of issue #9 boot a kernel that has it and
/// exercise success. Which outcome is right is decided independently by iproute2.
#[test]
fn ip6tnl_creation_fails_clearly_without_ip6_tunnel() {
    testbed::require("rtnl", &[Tool::Ip]);
    let ns = Ns::new("tnl");
    // Debian's kernel (the VM) has ip6_tunnel whenever it has MIP6.
    let expect_tunnel = testbed::mip6_kernel("rtnl") == Some(true);
    let iproute2_can = Command::new("ip")
        .args(["netns", "exec", &ns.0, "ip", "link", "add", "rtnlprobe"])
        .args([
            "type",
            "ip6tnl",
            "local",
            "2001:db8::1",
            "remote",
            "2001:db8::2",
        ])
        .output()
        .unwrap()
        .status
        .success();
    if iproute2_can {
        ns.ip(&["link", "del", "rtnlprobe"]);
    }
    let result = ns.run(|| {
        let mut rt = Rtnl::open().unwrap();
        let r = rt.create_ip6tnl("rtnltnl", a("2001:db8::1"), a("2001:db8::2"));
        let link = rt.link_by_name("rtnltnl").unwrap();
        (r, link)
    });
    match (iproute2_can, result) {
        (false, (Err(e), None)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("ip6_tunnel"), "{e}");
            assert_eq!(errno(&e), Some(libc::EOPNOTSUPP), "{e}");
            assert_eq!(errno(&e), Some(libc::EOPNOTSUPP), "{e}");
        }
        (true, (Ok(index), Some(link))) => {
            assert_eq!(link.index, index);
            assert_eq!(link.kind.as_deref(), Some("ip6tnl"));
            let info = ns.ip(&["-d", "link", "show", "rtnltnl"]);
            assert!(info.contains("ip6ip6"), "{info}");
            testbed::ran_supported_branch("rtnl::ip6tnl");
        }
        (false, _) if expect_tunnel => panic!("a MIP6 kernel without ip6_tunnel"),
        (can, other) => panic!("iproute2 could create ip6tnl: {can}; we got {other:?}"),
    }
}
