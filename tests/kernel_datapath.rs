//! The `kernel` data path (`datapath::kernel::KernelPath` over `SysKernel`) applied to a
//! live kernel, one role per scratch namespace: a home agent with a registered mobile
//! node, that mobile node (home binding acknowledged, route optimisation with a
//! correspondent), and a correspondent with a binding cache entry.
//!
//! What the kernel then holds is read back with iproute2 (`ip xfrm policy`, `ip xfrm
//! state`, `ip -6 tunnel`, `ip -6 route`, `ip -6 rule`, `ip -6 neigh show proxy`) and
//! compared with what umip installs for the same situation
//! (/work/shared/reference/umip/README.md §3): sub-policies with umip's priorities and RO
//! templates, RO states with the care-of address, wildcard receive states, ip6ip6 tunnels,
//! table 252 and rules 1001–1003. The expectations below are written from umip's scheme,
//! not from our plan. Then the daemon's registry removes everything, and nothing may be
//! left.
//!
//! On a kernel without `CONFIG_IPV6_MIP6` (this project's CI host) the same code must
//! fail the way such a kernel fails and leave nothing behind either. `scripts/vm-test
//! kernel-plan` runs this test in a VM with Debian's kernel, where the objects install.

#[path = "support/scratch_ns.rs"]
mod scratch_ns;
#[path = "support/testbed.rs"]
mod testbed;

use mip6d::daemon::registry::Registry;
use mip6d::datapath::kernel::{
    tunnel_name, KernelPath, MnSettings, PlanConfig, SysKernel, TRIGGER_REQID,
};
use mip6d::datapath::{Binding, DataPath};
use scratch_ns::Ns;
use std::cell::RefCell;
use std::net::Ipv6Addr;
use std::process::Command;
use std::rc::Rc;

const HA: &str = "2001:db8:6b::1";
const HOA: &str = "2001:db8:6b:1::100";
const COA: &str = "2001:db8:6b:2::100";
const COA2: &str = "2001:db8:6b:4::100";
const CN: &str = "2001:db8:6b:3::1";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// What iproute2 shows in the namespace of the calling thread.
#[derive(Debug, Default)]
struct Listing {
    policies: Vec<String>,
    states: Vec<String>,
    tunnels: String,
    routes_main: String,
    routes_252: String,
    routes_252_mip: String,
    rules: String,
    proxies: String,
    addresses: String,
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("spawn ip");
    // A routing table that never held a route does not exist yet: empty.
    if String::from_utf8_lossy(&out.stderr).contains("FIB table does not exist") {
        return String::new();
    }
    assert!(out.status.success(), "ip {args:?}: {}", testbed::text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip xfrm` output as one line per object, whitespace collapsed, so that each object
/// can be matched as a whole.
fn blocks(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if words.is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(&words);
                continue;
            }
        }
        out.push(words);
    }
    out
}

fn list() -> Listing {
    Listing {
        policies: blocks(&ip(&["-6", "xfrm", "policy", "list", "ptype", "sub"])),
        states: blocks(&ip(&["-6", "xfrm", "state", "list"])),
        tunnels: ip(&["-6", "tunnel", "show"]),
        // Filtered by umip's route protocol (16, RTPROT_MIP), which iproute2 then omits.
        routes_main: ip(&["-6", "route", "show", "proto", "16"]),
        routes_252: ip(&["-6", "route", "show", "table", "252"]),
        routes_252_mip: ip(&["-6", "route", "show", "table", "252", "proto", "16"]),
        rules: ip(&["-6", "rule", "show"]),
        proxies: ip(&["-6", "neigh", "show", "proxy"]),
        addresses: ip(&["-6", "addr", "show"]),
    }
}

/// What one role's run produced.
struct Outcome {
    /// `Err` when the kernel refused (start or install), with the first error.
    applied: Result<Listing, std::io::Error>,
    /// What the registry could not remove.
    undo_errors: Vec<String>,
    /// iproute2's view once the registry removed everything.
    after: Listing,
}

/// Applies `bindings` for `cfg` through `KernelPath` inside `ns`, lists what the kernel
/// holds, then removes everything through the registry, as the daemon's SIGTERM does.
/// `then`: bindings installed after the listing (a care-of address change), whose
/// listing replaces the first.
fn apply(
    ns: &Ns,
    setup: &[&[&str]],
    cfg: PlanConfig,
    bindings: Vec<Binding>,
    then: Vec<Binding>,
) -> Outcome {
    for cmd in setup {
        ns.ip(cmd);
    }
    ns.run(move || {
        let mut registry = Registry::new();
        let applied = (|| {
            let kernel: Rc<RefCell<dyn mip6d::datapath::kernel::Kernel>> =
                Rc::new(RefCell::new(SysKernel::open()?));
            let mut path = KernelPath::start(cfg, kernel, &mut registry)?;
            for b in &bindings {
                path.install(b, &mut registry)?;
            }
            for b in &then {
                path.install(b, &mut registry)?;
            }
            Ok(list())
        })();
        let undo_errors = registry
            .undo_all()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        Outcome {
            applied,
            undo_errors,
            after: list(),
        }
    })
}

/// Checks that `want` (each a run of words of one `ip xfrm` object) are all there, and
/// that there is nothing else.
fn assert_objects(kind: &str, have: &[String], want: &[String]) {
    for w in want {
        assert!(
            have.iter().any(|h| h.contains(w.as_str())),
            "no {kind} matching `{w}` in:\n{}",
            have.join("\n")
        );
    }
    assert_eq!(
        have.len(),
        want.len(),
        "{kind}s: expected exactly\n{}\ngot\n{}",
        want.join("\n"),
        have.join("\n")
    );
}

/// A sub-policy as `ip xfrm policy` prints it: selector, direction, umip's priority, and
/// either the RO template (`Some((proto, level))`) or none.
fn pol(sel: &str, dir: &str, prio: u32, tmpl: Option<(&str, &str)>) -> String {
    let mut s = format!("{sel} dir {dir} priority {prio} ptype sub");
    if let Some((proto, level)) = tmpl {
        s.push_str(&format!(
            " tmpl src :: dst :: proto {proto} reqid 0 mode ro"
        ));
        if level == "use" {
            s.push_str(" level use");
        }
    }
    s
}

fn hosts(src: &str, dst: &str) -> String {
    format!("src {src}/128 dst {dst}/128")
}

fn mh(src: &str, dst: &str, mh_type: u8) -> String {
    format!("src {src}/0 dst {dst}/0 proto mobility-header type {mh_type}")
}

fn mh_hosts(src: &str, dst: &str, mh_type: u8) -> String {
    format!("src {src}/128 dst {dst}/128 proto mobility-header type {mh_type}")
}

fn ro_state(src: &str, dst: &str, proto: &str, coa: &str) -> String {
    format!("src {src} dst {dst} proto {proto} reqid 0 mode ro") + &format!("|coa {coa}")
}

/// The CN baseline every node has (umip: BU in with HAO, MH out without RH2, ND and
/// ICMPv6 errors bypass).
fn cn_baseline() -> Vec<String> {
    let mut v = vec![
        pol(&mh("::", "::", 5), "in", 9, Some(("hao", "use"))),
        pol("src ::/0 dst ::/0 proto mobility-header", "out", 12, None),
    ];
    for t in [135, 136, 1, 2, 3, 4] {
        v.push(pol(
            &format!("src ::/0 dst ::/0 proto ipv6-icmp type {t}"),
            "out",
            3,
            None,
        ));
    }
    v
}

fn refused_without_mip6(test: &str, o: &Outcome) -> bool {
    match (&o.applied, testbed::mip6_kernel(test)) {
        (Ok(_), Some(false)) => panic!("{test}: a kernel without MIP6 accepted the plan"),
        (Err(e), Some(true)) => panic!("{test}: a MIP6 kernel refused the plan: {e}"),
        (Err(e), _) => {
            assert!(
                mip6d::datapath::probe::is_missing_mip6(e)
                    || e.kind() == std::io::ErrorKind::Unsupported,
                "{test}: not the refusal of a kernel without MIP6 / ip6_tunnel: {e}"
            );
            true
        }
        (Ok(_), _) => false,
    }
}

/// Whatever happened, the registry removed everything.
fn assert_nothing_left(test: &str, o: &Outcome) {
    assert!(o.undo_errors.is_empty(), "{test}: {:?}", o.undo_errors);
    let l = &o.after;
    assert!(l.policies.is_empty(), "{test}: {:#?}", l.policies);
    assert!(l.states.is_empty(), "{test}: {:#?}", l.states);
    assert!(!l.tunnels.contains("ip6m"), "{test}: {}", l.tunnels);
    assert!(l.routes_main.trim().is_empty(), "{test}: {}", l.routes_main);
    assert!(l.routes_252.trim().is_empty(), "{test}: {}", l.routes_252);
    for p in ["1001:", "1002:", "1003:"] {
        assert!(!l.rules.contains(p), "{test}: {}", l.rules);
    }
    assert!(l.proxies.trim().is_empty(), "{test}: {}", l.proxies);
    assert!(!l.addresses.contains(HOA), "{test}: {}", l.addresses);
}

/// `ip xfrm state` objects, with the `coa` line appended, matched as "head|coa X".
fn assert_states(have: &[String], want: &[String]) {
    let have: Vec<String> = have
        .iter()
        .map(|s| match s.find(" coa ") {
            Some(i) => {
                let coa = s[i + 5..].split_whitespace().next().unwrap_or("");
                format!(
                    "{}|coa {coa}",
                    &s[..s.find(" replay-window").unwrap_or(s.len())]
                )
            }
            None => s.clone(),
        })
        .collect();
    for w in want {
        let (head, coa) = w.split_once('|').unwrap();
        assert!(
            have.iter().any(|h| h.starts_with(head) && h.ends_with(coa)),
            "no state `{w}` in:\n{}",
            have.join("\n")
        );
    }
    assert_eq!(have.len(), want.len(), "states:\n{}", have.join("\n"));
}

#[test]
fn home_agent_with_a_registered_mobile_node() {
    testbed::require("kernel_datapath", &[testbed::Tool::Ip]);
    let ns = Ns::new("kdp-ha");
    let cfg = PlanConfig {
        cn_route_optimization: true,
        ha_home_interface: Some("kdphome".into()),
        mn: None,
    };
    let reg = |coa| Binding::HomeRegistration {
        ha: a(HA),
        hoa: a(HOA),
        coa: a(coa),
    };
    // The care-of address moves once after the registration: the plan must re-point
    // everything to the new one (an in-place update, make before break).
    let o = apply(
        &ns,
        &[
            &[
                "link", "add", "kdphome", "type", "veth", "peer", "name", "kdphome1",
            ],
            &["link", "set", "kdphome", "up"],
        ],
        cfg,
        vec![reg(COA)],
        vec![reg(COA2)],
    );
    assert_nothing_left("ha", &o);
    if refused_without_mip6("kernel_datapath", &o) {
        return;
    }
    let l = o.applied.as_ref().unwrap();
    let mut want = cn_baseline();
    want.push(pol(
        &mh_hosts(HA, HOA, 6),
        "out",
        2,
        Some(("route2", "required")),
    ));
    want.push(pol(&mh_hosts(HOA, HA, 5), "in", 2, Some(("hao", "use"))));
    assert_objects("policy", &l.policies, &want);
    assert_states(
        &l.states,
        &[
            ro_state(HA, HOA, "route2", COA2),
            ro_state(HOA, HA, "hao", COA2),
            ro_state("::", "::", "hao", "::"),
        ],
    );
    let tnl = tunnel_name(a(HA), a(COA2));
    assert!(
        l.tunnels.lines().any(
            |t| t.starts_with(&format!("{tnl}: ipv6/ipv6 remote {COA2} local {HA}"))
                // umip's tunnel parameters: no encapsulation limit option, hop limit 64.
                && t.contains("encaplimit none")
                && t.contains("hoplimit 64")
        ),
        "{}",
        l.tunnels
    );
    assert!(
        !l.tunnels.contains(&tunnel_name(a(HA), a(COA))),
        "the old care-of address's tunnel is gone: {}",
        l.tunnels
    );
    assert!(
        l.routes_main
            .lines()
            .any(|r| r.starts_with(&format!("{HOA} dev {tnl} metric 192"))),
        "{}",
        l.routes_main
    );
    assert!(
        l.proxies.contains(&format!("{HOA} dev kdphome proxy")),
        "{}",
        l.proxies
    );
    testbed::ran_supported_branch("kernel_datapath::home_agent");
}

#[test]
fn mobile_node_away_from_home_with_route_optimisation() {
    testbed::require("kernel_datapath", &[testbed::Tool::Ip]);
    let ns = Ns::new("kdp-mn");
    let cfg = PlanConfig {
        cn_route_optimization: true,
        ha_home_interface: None,
        mn: Some(MnSettings {
            route_optimization: true,
        }),
    };
    let o = apply(
        &ns,
        &[&["link", "set", "lo", "up"]],
        cfg,
        vec![
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
        ],
        vec![],
    );
    assert_nothing_left("mn", &o);
    if refused_without_mip6("kernel_datapath", &o) {
        return;
    }
    let l = o.applied.as_ref().unwrap();
    let mut want = cn_baseline();
    want.extend([
        pol(&mh("::", "::", 7), "out", 3, None),
        pol(&mh_hosts(HOA, HA, 5), "out", 2, Some(("hao", "required"))),
        pol(&mh_hosts(HA, HOA, 6), "in", 2, Some(("route2", "use"))),
        pol(&hosts(HOA, CN), "out", 15, Some(("hao", "required"))),
        pol(&hosts(CN, HOA), "in", 15, Some(("route2", "use"))),
        pol(&mh_hosts(HOA, CN, 1), "out", 10, None),
        pol(&mh_hosts(CN, HOA, 3), "in", 10, None),
        // The RO trigger: what leaves from the home address without a state asks the
        // daemon (XFRM_MSG_ACQUIRE) and goes on through the tunnel (optional template).
        format!(
            "src {HOA}/128 dst ::/0 dir out priority 18 ptype sub tmpl src :: dst :: \
             proto hao reqid {TRIGGER_REQID} mode ro level use"
        ),
    ]);
    assert_objects("policy", &l.policies, &want);
    assert_states(
        &l.states,
        &[
            ro_state(HOA, HA, "hao", COA),
            ro_state(HA, HOA, "route2", COA),
            ro_state(HOA, CN, "hao", COA),
            ro_state(CN, HOA, "route2", COA),
            ro_state("::", "::", "hao", "::"),
            ro_state("::", "::", "route2", "::"),
        ],
    );
    let tnl = tunnel_name(a(COA), a(HA));
    assert!(
        l.tunnels.lines().any(
            |t| t.starts_with(&format!("{tnl}: ipv6/ipv6 remote {HA} local {COA}"))
                // umip's tunnel parameters: no encapsulation limit option, hop limit 64.
                && t.contains("encaplimit none")
                && t.contains("hoplimit 64")
        ),
        "{}",
        l.tunnels
    );
    assert!(
        l.routes_252_mip
            .lines()
            .any(|r| r.starts_with(&format!("default dev {tnl} metric 128"))),
        "{}",
        l.routes_252
    );
    for rule in [
        format!("1001:\tfrom {HOA} lookup 252"),
        format!("1002:\tfrom {COA} lookup main"),
        format!("1003:\tfrom {HOA} blackhole"),
    ] {
        assert!(l.rules.contains(&rule), "no `{rule}` in:\n{}", l.rules);
    }
    let hoa_line = l
        .addresses
        .lines()
        .find(|x| x.contains(&format!("inet6 {HOA}/128")))
        .unwrap_or_else(|| panic!("{}", l.addresses));
    assert!(
        hoa_line.contains("home") && hoa_line.contains("nodad"),
        "{hoa_line}"
    );
    testbed::ran_supported_branch("kernel_datapath::mobile_node");
}

#[test]
fn correspondent_with_a_binding_cache_entry() {
    testbed::require("kernel_datapath", &[testbed::Tool::Ip]);
    let ns = Ns::new("kdp-cn");
    let cfg = PlanConfig {
        cn_route_optimization: true,
        ha_home_interface: None,
        mn: None,
    };
    let o = apply(
        &ns,
        &[&["link", "set", "lo", "up"]],
        cfg,
        vec![Binding::Correspondent {
            local: a(CN),
            hoa: a(HOA),
            coa: a(COA),
        }],
        vec![],
    );
    assert_nothing_left("cn", &o);
    if refused_without_mip6("kernel_datapath", &o) {
        return;
    }
    let l = o.applied.as_ref().unwrap();
    let mut want = cn_baseline();
    want.extend([
        pol(
            &mh_hosts(CN, HOA, 6),
            "out",
            8,
            Some(("route2", "required")),
        ),
        pol(
            &mh_hosts(CN, HOA, 0),
            "out",
            8,
            Some(("route2", "required")),
        ),
        pol(&hosts(CN, HOA), "out", 16, Some(("route2", "required"))),
        pol(&hosts(HOA, CN), "in", 16, Some(("hao", "use"))),
    ]);
    assert_objects("policy", &l.policies, &want);
    assert_states(
        &l.states,
        &[
            ro_state(CN, HOA, "route2", COA),
            ro_state(HOA, CN, "hao", COA),
            ro_state("::", "::", "hao", "::"),
        ],
    );
    assert!(!l.tunnels.contains("ip6m"), "{}", l.tunnels);
    testbed::ran_supported_branch("kernel_datapath::correspondent");
}

/// The Binding Refresh Request's input on the kernel data path: a datagram to the home
/// address goes out with the binding's routing header, and `KernelPath` reads that use
/// back from the state's `lastused`; a binding nothing used is not reported.
#[test]
fn correspondent_binding_use_is_read_from_the_kernel() {
    testbed::require("kernel_datapath", &[testbed::Tool::Ip]);
    if testbed::mip6_kernel("kernel_datapath") != Some(true) {
        // The other tests prove the refusal without MIP6; there is no state to use here.
        return;
    }
    let ns = Ns::new("kdp-use");
    for cmd in [
        &["link", "set", "lo", "up"][..],
        &["link", "add", "d0", "type", "dummy"],
        &["link", "set", "d0", "up"],
        &["addr", "add", &format!("{CN}/64"), "dev", "d0", "nodad"],
        &["-6", "route", "add", &format!("{COA}/128"), "dev", "d0"],
        &["-6", "route", "add", &format!("{HOA}/128"), "dev", "d0"],
        &["-6", "route", "add", &format!("{COA2}/128"), "dev", "d0"],
    ] {
        ns.ip(cmd);
    }
    let (before, after, idle) = ns.run(|| {
        let mut registry = Registry::new();
        let kernel: Rc<RefCell<dyn mip6d::datapath::kernel::Kernel>> =
            Rc::new(RefCell::new(SysKernel::open().expect("xfrm")));
        let cfg = PlanConfig {
            cn_route_optimization: true,
            ha_home_interface: None,
            mn: None,
        };
        let mut path = KernelPath::start(cfg, kernel, &mut registry).expect("baseline");
        for (hoa, coa) in [(HOA, COA), ("2001:db8:6b:5::100", COA2)] {
            path.install(
                &Binding::Correspondent {
                    local: a(CN),
                    hoa: a(hoa),
                    coa: a(coa),
                },
                &mut registry,
            )
            .expect("binding");
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .saturating_sub(60);
        let before = path.correspondents_used_since(since);
        let sock = std::net::UdpSocket::bind((a(CN), 0)).expect("bind");
        sock.send_to(b"use", (a(HOA), 9))
            .expect("send through the binding");
        let after = path.correspondents_used_since(since);
        let idle = path.correspondents_used_since(u64::MAX);
        let errors = registry.undo_all();
        assert!(errors.is_empty(), "{errors:?}");
        (before, after, idle)
    });
    assert!(before.is_empty(), "used before any packet: {before:?}");
    assert_eq!(
        after,
        vec![(a(CN), a(HOA))],
        "only the binding the datagram used"
    );
    assert!(idle.is_empty(), "{idle:?}");
    testbed::ran_supported_branch("kernel_datapath::binding_use");
}
