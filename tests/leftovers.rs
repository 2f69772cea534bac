//! After SIGKILL, the next start removes the leftovers it recognises as its own
//! (`src/daemon/leftovers.rs`), and nothing else: the real `mip6d` as home agent on the
//! user data path, in a scratch namespace with a home link (a veth pair).
//!
//! Needs root, iproute2 and ip6tables; without them the test fails and says so.

mod daemon_support;
#[path = "support/scratch_ns.rs"]
mod scratch_ns;
#[path = "support/testbed.rs"]
mod testbed;

use std::net::Ipv6Addr;

use daemon_support::Daemon;
use mip6d::sys::rtnl::{
    Address, Route, Rtnl, Rule, IFA_F_HOMEADDRESS, IFA_F_NODAD, MIP6D_TABLE, RT_TABLE_MAIN,
};
use scratch_ns::Ns;
use testbed::Tool;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const HA_CONF: &str = "NodeConfig HA;\nDatapath user;\nDebugLevel 1;\nInterface \"lefth0\";\n";

/// Starts (or restarts, with the same files) the daemon inside `ns`.
fn start(ns: &Ns, d: &mut Daemon) {
    d.spawn_in_netns(&ns.0);
}

/// The rules carrying the daemon's comment, one per line, as `ip6tables-save` prints them.
fn marked(ns: &Ns) -> Vec<String> {
    ns.sh(&["ip6tables-save"])
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains("--comment mip6d "))
        .map(str::to_string)
        .collect()
}

#[test]
fn after_sigkill_the_next_start_removes_its_own_leftovers_and_nothing_else() {
    testbed::require("leftovers", &[Tool::Ip, Tool::Ip6tables, Tool::Ipset]);
    let ns = Ns::new("left");

    // The home link, and objects of two kinds: marked as a dead mip6d's (protocol 16,
    // comment mip6d) and somebody else's (same shapes, without the mark).
    let index = ns.run(|| {
        let mut rt = Rtnl::open().unwrap();
        let index = rt.create_veth("lefth0", "lefth1").unwrap();
        rt.set_link_up(index, true).unwrap();
        rt.add_address(&Address {
            index,
            addr: a("2001:db8:77::1"),
            prefix_len: 64,
            flags: IFA_F_NODAD,
            ..Default::default()
        })
        .unwrap();
        let route = |dst: &str, table, protocol| Route {
            dst: a(dst),
            dst_len: 64,
            oif: Some(index),
            table,
            protocol,
            ..Default::default()
        };
        for r in [
            route("2001:db8:78::", MIP6D_TABLE, 16),
            route("2001:db8:79::", RT_TABLE_MAIN, 16),
            route("2001:db8:80::", MIP6D_TABLE, 4),
            route("2001:db8:81::", RT_TABLE_MAIN, 4),
        ] {
            rt.add_route(&r).unwrap();
        }
        let rule = |priority, protocol| Rule {
            priority,
            src: Some((a("2001:db8:77::100"), 128)),
            protocol,
            ..Default::default()
        };
        rt.add_rule(&rule(1001, 16)).unwrap();
        rt.add_rule(&rule(1500, 4)).unwrap();
        rt.add_proxy_neigh(index, a("2001:db8:77::100")).unwrap(); // marked by add_proxy_neigh
                                                                   // A mobile node's home address away from home carries IFA_F_HOMEADDRESS, which
                                                                   // nothing but a Mobile IPv6 daemon sets; an ordinary /128 on lo does not.
        let lo = rt.link_by_name("lo").unwrap().unwrap().index;
        rt.set_link_up(lo, true).unwrap();
        for (addr, flags) in [
            ("2001:db8:77::300", IFA_F_NODAD | IFA_F_HOMEADDRESS),
            ("2001:db8:77::301", IFA_F_NODAD),
        ] {
            rt.add_address(&Address {
                index: lo,
                addr: a(addr),
                flags,
                ..Default::default()
            })
            .unwrap();
        }
        index
    });
    ns.ip(&[
        "-6",
        "neigh",
        "add",
        "proxy",
        "2001:db8:77::200",
        "dev",
        "lefth0",
    ]);
    for spec in [
        "-t raw -A PREROUTING -m comment --comment mip6d -p 135 -j NFQUEUE --queue-num 7001",
        "-t mangle -A OUTPUT -m comment --comment other -d 2001:db8:77::5/128 -j ACCEPT",
        "-t filter -A INPUT -d 2001:db8:77::6/128 -j ACCEPT",
    ] {
        let mut cmd = vec!["ip6tables", "-w"];
        cmd.extend(spec.split(' '));
        ns.sh(&cmd);
    }

    // First start: the marked objects go, the others stay, and the log says what went.
    let mut d = Daemon::new("leftovers", HA_CONF);
    start(&ns, &mut d);
    let log = d.stderr();
    for what in [
        "--queue-num 7001",
        "route 2001:db8:78::/64 table 252",
        "route 2001:db8:79::/64 table 254",
        "rule 1001",
        "proxy neighbour 2001:db8:77::100",
        "home address 2001:db8:77::300",
    ] {
        assert!(
            log.contains("removed a leftover") && log.contains(what),
            "the log does not report removing {what}:\n{log}"
        );
    }
    let routes = ns.ip(&["-6", "route", "show", "table", "all"]);
    assert!(!routes.contains("2001:db8:78::/64"), "{routes}");
    assert!(!routes.contains("2001:db8:79::/64"), "{routes}");
    assert!(routes.contains("2001:db8:80::/64"), "not ours: {routes}");
    assert!(routes.contains("2001:db8:81::/64"), "not ours: {routes}");
    let rules = ns.ip(&["-6", "rule", "show"]);
    assert!(!rules.contains("1001:"), "{rules}");
    assert!(rules.contains("1500:"), "not ours: {rules}");
    let addrs = ns.ip(&["-6", "addr", "show", "dev", "lo"]);
    assert!(!addrs.contains("2001:db8:77::300/"), "{addrs}");
    assert!(addrs.contains("2001:db8:77::301/"), "not ours: {addrs}");
    let proxies = ns.ip(&["-6", "neigh", "show", "proxy"]);
    assert!(!proxies.contains("2001:db8:77::100 "), "{proxies}");
    assert!(proxies.contains("2001:db8:77::200 "), "not ours: {proxies}");
    let save = ns.sh(&["ip6tables-save"]);
    assert!(!save.contains("--queue-num 7001"), "{save}");
    assert!(save.contains("--comment other"), "not ours: {save}");
    assert!(save.contains("-d 2001:db8:77::6/128"), "not ours: {save}");
    let first = marked(&ns);
    assert_eq!(
        first.len(),
        7,
        "two receive rules, the defragmentation rule, route optimisation and three tunnel \
         rules, all marked: {first:#?}"
    );
    let sets = |ns: &Ns| -> Vec<String> {
        let mut v: Vec<String> = ns
            .sh(&["ipset", "list", "-n"])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(sets(&ns), ["mip6d-coa", "mip6d-home", "mip6d-ro"]);

    // SIGKILL: no cleanup, so the rules stay (and a stale pid file and socket).
    let mut child = d.child.take().expect("running");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(marked(&ns), first, "SIGKILL leaves the rules in place");
    assert_eq!(sets(&ns).len(), 3, "and the sets");

    // The next start removes the old set before installing its own: one set, not two.
    start(&ns, &mut d);
    assert_eq!(marked(&ns), first, "exactly one set after the restart");
    let log = d.stderr();
    assert_eq!(sets(&ns), ["mip6d-coa", "mip6d-home", "mip6d-ro"]);
    assert_eq!(
        log.matches("removed a leftover").count(),
        10,
        "the seven old rules and three sets, reported:\n{log}"
    );

    // SIGTERM: nothing of ours is left, and the others' objects are still there.
    d.signal(libc::SIGTERM);
    let st = d.wait_exit();
    assert!(st.success(), "mip6d exit: {st}\n{}", d.stderr());
    assert!(marked(&ns).is_empty(), "{:#?}", marked(&ns));
    assert!(sets(&ns).is_empty(), "{:?}", sets(&ns));
    let save = ns.sh(&["ip6tables-save"]);
    assert!(save.contains("--comment other"), "{save}");
    assert!(ns.ip(&["-6", "rule", "show"]).contains("1500:"));
    let _ = index;
}

/// The kernel data path's XFRM leftovers: a sub-policy in umip's priority range goes, one
/// outside it and a main policy stay. (Route-optimisation states and ip6ip6 devices need
/// a MIP6 kernel; their predicates are unit-tested in `daemon::leftovers`.)
#[test]
fn xfrm_sub_policies_in_umips_range_are_leftovers_and_others_are_not() {
    use mip6d::sys::xfrm::{Dir, Policy, PolicyType, Selector, Xfrm};
    testbed::require("leftovers", &[Tool::Ip]);
    let ns = Ns::new("leftx");
    let (ours, theirs, main) = ns.run(|| {
        let mut x = Xfrm::open().expect("XFRM socket");
        let sel = Selector::hosts(a("2001:db8:77::1"), a("2001:db8:77::2"));
        let ours = Policy::sub(sel, Dir::Out, 16, vec![]);
        let theirs = Policy::sub(sel, Dir::In, 100, vec![]);
        let main = Policy {
            ptype: PolicyType::Main,
            ..Policy::sub(sel, Dir::Fwd, 16, vec![])
        };
        for p in [&ours, &theirs, &main] {
            x.add_policy(p).expect("add policy");
        }
        let removed = mip6d::daemon::leftovers::remove_all();
        assert_eq!(
            removed
                .iter()
                .filter(|r| r.starts_with("xfrm sub-policy"))
                .count(),
            1,
            "{removed:?}"
        );
        (
            x.get_policy(&ours.id()).unwrap().is_some(),
            x.get_policy(&theirs.id()).unwrap().is_some(),
            x.get_policy(&main.id()).unwrap().is_some(),
        )
    });
    assert_eq!((ours, theirs, main), (false, true, true));
}
