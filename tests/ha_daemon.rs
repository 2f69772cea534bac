//! The home agent role of the real `mip6d` on the `user` data path, end to end on the
//! namespace testbed (`testbed/run`): a home registration with its Binding
//! Acknowledgement, the binding in `mip6ctl bc`, traffic for the home address tunnelled
//! HA → CoA, the answer reverse-tunnelled CoA → HA and forwarded from the home address,
//! deregistration, and a clean SIGTERM.
//!
//! - HA: `mip6d` (`NodeConfig HA; Datapath user; Interface "home1";`) in ha1.
//! - MN: the stub of `tests/support/mn_stub.rs` on foreign1, with its own side of the
//!   tunnel in its own netfilter queue; no IPsec.
//! - The other end: an ordinary UDP socket on the client, and `ping` there.
//!
//! Needs root, iproute2 and ip6tables; without them the test fails and says so.

mod daemon_support;
#[path = "support/mn_stub.rs"]
mod mn_stub;
mod proto_support;
#[path = "support/testbed.rs"]
mod testbed;

use daemon_support::{mip6ctl_json, Daemon};
use mn_stub::Mn;

use std::net::IpAddr;
use std::time::Instant;
use testbed::{ip_netns, Testbed, Tool};

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The packet count of the first ip6tables rule in `save` (from `ip6tables-save -c`)
/// containing `needle`.
fn rule_packets(save: &str, needle: &str) -> Option<u64> {
    let line = save.lines().find(|l| l.contains(needle))?;
    let counters = line.strip_prefix('[')?.split(']').next()?;
    counters.split(':').next()?.parse().ok()
}

const HA_CONF: &str =
    "NodeConfig HA;\nDatapath user;\nDebugLevel 1;\nHaMaxBindingLife 600;\nInterface \"home1\";\n";

/// Starts `mip6d -f` with `conf` in `node`'s namespace (`ip netns exec` execs it: same
/// pid); the guard stops it.
fn spawn_in(tb: &Testbed, node: &str, name: &str, conf: &str) -> Daemon {
    let mut d = Daemon::new(name, conf);
    d.spawn_in_netns(&tb.ns(node));
    d
}

/// SIGTERM, exit 0, and nothing the daemon said was a warning.
fn stop(mut d: Daemon) {
    d.signal(libc::SIGTERM);
    let st = d.wait_exit();
    assert!(st.success(), "mip6d exit: {st}\n{}", d.stderr());
    let log = d.stderr();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "the daemon warned:\n{log}"
    );
    if std::env::var_os("MIP6D_TEST_LOG").is_some() {
        eprintln!("{log}");
    }
}

/// Return routability and route optimisation with the client's `mip6d` CN, the home
/// test going through the real HA's tunnel both ways (what `cn_daemon` does with a
/// stand-in for the HA).
#[test]
fn route_optimisation_with_a_correspondent_through_the_real_home_agent() {
    testbed::require("ha_daemon", &[Tool::Ip, Tool::Ip6tables]);
    let tb = Testbed::up(format!("hro{}", std::process::id()), Some("foreign1"));
    let (hoa, coa, cn, ha) = (
        tb.addr("M6_MN_HOME_ADDR"),
        tb.addr("M6_MN_COA_FOREIGN1"),
        tb.addr("M6_CLIENT_ADDR"),
        tb.addr("M6_HA1_ADDR"),
    );
    tb.give_mn_its_home_address(hoa);
    let had = spawn_in(&tb, "ha1", "hro-ha", HA_CONF);
    let cnd = spawn_in(
        &tb,
        "client",
        "hro-cn",
        "NodeConfig CN;\nDatapath user;\nDebugLevel 1;\nDoRouteOptimizationCN enabled;\n",
    );
    let mut m = ok(Mn::start(&tb.ns("mn"), &tb.ns("client"), hoa, coa, cn));
    let ba = ok(m.home_register(ha, 50));
    assert_eq!((ba.src, ba.status), (ha, 0), "{ba:?}");
    ok(m.queue.home_tunnel(ha, coa));

    // The HoTI leaves from the HoA into the tunnel, the HoT comes back through it.
    ok(m.send_test_inits());
    let (hot, cot) = ok(m.receive_tests());
    assert_eq!((hot.src, hot.dst), (cn, hoa), "HoT to the HoA");
    assert_eq!((cot.src, cot.dst), (cn, coa), "CoT to the CoA");
    let save = tb.sh("ha1", &["ip6tables-save", "-c"]);
    assert!(
        rule_packets(&save, "--match-set mip6d-coa src").is_some_and(|n| n >= 1),
        "the HoTI went through the HA's tunnel:\n{save}"
    );
    assert!(
        rule_packets(
            &save,
            "-A PREROUTING -m comment --comment mip6d -m set --match-set mip6d-home dst"
        )
        .is_some_and(|n| n >= 1),
        "the HoT went through the HA's tunnel:\n{save}"
    );

    let ba = ok(m.bind(50));
    assert_eq!((ba.src, ba.dst, ba.rh2_home), (cn, coa, Some(hoa)));
    assert!(ba.authenticator_valid, "BA authenticator: {ba:?}");
    assert_eq!(ba.status, 0, "{ba:?}");
    let bc = mip6ctl_json(&cnd.socket, "bc");
    assert_eq!(bc["entries"][0]["kind"], "cache", "{bc}");
    let bc = mip6ctl_json(&had.socket, "bc");
    assert_eq!(bc["entries"][0]["kind"], "home", "{bc}");

    // Route optimised both ways, the HA no longer in the path.
    let got = ok(m.datagram_to_home(b"route optimised"));
    assert_eq!(
        (got.payload.as_slice(), got.from),
        (&b"route optimised"[..], IpAddr::V6(cn))
    );
    let got = ok(m.datagram_from_home(b"from the HoA", mn_stub::PATIENCE));
    let got = got.expect("datagram with HAO delivered");
    assert_eq!(got.from, IpAddr::V6(hoa));

    stop(cnd);
    stop(had);
    drop(m);
    for node in ["ha1", "client", "mn"] {
        let rules = tb.sh(node, &["ip6tables-save"]);
        assert!(
            !rules.contains("NFQUEUE"),
            "{node}: rules left behind:\n{rules}"
        );
    }
}

#[test]
fn home_agent_daemon_registers_a_mobile_node_and_tunnels_its_traffic() {
    testbed::require(
        "ha_daemon",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    let started = Instant::now();
    let tb = Testbed::up(format!("had{}", std::process::id()), Some("foreign1"));
    let (hoa, coa, cn, ha) = (
        tb.addr("M6_MN_HOME_ADDR"),
        tb.addr("M6_MN_COA_FOREIGN1"),
        tb.addr("M6_CLIENT_ADDR"),
        tb.addr("M6_HA1_ADDR"),
    );
    let mn_ns = tb.ns("mn");
    // Away from home, the MN owns its HoA on lo (the datapath README's last pitfall).
    tb.give_mn_its_home_address(hoa);
    let proxy_ndp = tb.sh("ha1", &["sysctl", "-n", "net.ipv6.conf.home1.proxy_ndp"]);

    let mut d = spawn_in(&tb, "ha1", "had", HA_CONF);
    let rules = tb.sh("ha1", &["ip6tables-save"]);
    assert_eq!(
        rules.matches("NFQUEUE").count(),
        6,
        "the two receive rules, route optimisation, the three tunnel rules:\n{rules}"
    );
    assert_eq!(tb.set_members("ha1", "mip6d-home"), Some(vec![]));
    assert_eq!(tb.set_members("ha1", "mip6d-coa"), Some(vec![]));
    assert!(
        rules.contains("--ctstate INVALID"),
        "the defragmentation rule:\n{rules}"
    );

    let mut m = ok(Mn::start(&mn_ns, &tb.ns("client"), hoa, coa, cn));

    // Home registration: BU CoA → HA with HAO, H|A, Alternate CoA; the BA comes back to
    // the CoA with a Type 2 Routing Header for the HoA (§6.4, §9.5.4).
    let ba = ok(m.home_register(ha, 50));
    assert_eq!(
        (ba.src, ba.dst, ba.rh2_home),
        (ha, coa, Some(hoa)),
        "{ba:?}"
    );
    assert_eq!((ba.status, ba.sequence), (0, 1), "{ba:?}");
    assert_eq!(ba.lifetime_units, 50, "{ba:?}");

    let bc = mip6ctl_json(&d.socket, "bc");
    let entries = bc["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{bc}");
    assert_eq!(entries[0]["home_address"], hoa.to_string());
    assert_eq!(entries[0]["care_of_address"], coa.to_string());
    assert_eq!(entries[0]["kind"], "home");
    assert_eq!(entries[0]["flags"], "H");
    // A registration is two set elements, not rules.
    let rules = tb.sh("ha1", &["ip6tables-save"]);
    assert_eq!(rules.matches("NFQUEUE").count(), 6, "{rules}");
    assert_eq!(
        tb.set_members("ha1", "mip6d-home"),
        Some(vec![hoa.to_string()])
    );
    assert_eq!(
        tb.set_members("ha1", "mip6d-coa"),
        Some(vec![coa.to_string()])
    );
    let proxies = tb.sh("ha1", &["ip", "-6", "neigh", "show", "proxy"]);
    assert!(
        proxies.contains(&hoa.to_string()) && proxies.contains("home1"),
        "proxy ND for the HoA: {proxies}"
    );
    assert_eq!(
        tb.sh("ha1", &["sysctl", "-n", "net.ipv6.conf.home1.proxy_ndp"])
            .trim(),
        "1"
    );

    // The MN's side of the tunnel, then traffic: client → HoA goes through the HA, which
    // tunnels it HA → CoA (the stub waits for exactly that packet in its queue).
    ok(m.queue.home_tunnel(ha, coa));
    let got = ok(m.datagram_to_home_via(ha, b"through the home agent"));
    assert_eq!(got.payload, b"through the home agent");
    assert_eq!(got.from, IpAddr::V6(cn));

    // The answer from the HoA: reverse-tunnelled CoA → HA, decapsulated by the HA and
    // forwarded; the client sees it from the HoA, and the HA's tunnel rule counted it.
    let got = ok(m.datagram_from_home_socket(b"reply from home", mn_stub::PATIENCE));
    let got = got.expect("the reply reached the client");
    assert_eq!(got.payload, b"reply from home");
    assert_eq!(got.from, IpAddr::V6(hoa));
    let save = tb.sh("ha1", &["ip6tables-save", "-c"]);
    let decapsulated = rule_packets(&save, "--match-set mip6d-coa src");
    assert!(
        decapsulated.is_some_and(|n| n >= 1),
        "the reply did not come through the HA's tunnel rule:\n{save}"
    );

    // A full-size answer (1500 bytes inside, 1540 in the tunnel): the MN's kernel
    // fragments the outer packet; conntrack's defragmentation on the HA (its counting
    // rule) reassembles it before the tunnel rule sees it.
    let big = vec![0x5a; 1500 - 48];
    let got = ok(m.datagram_from_home_socket(&big, mn_stub::PATIENCE));
    let got = got.expect("the full-size reply reached the client");
    assert_eq!((got.payload.len(), got.from), (big.len(), IpAddr::V6(hoa)));
    // The MN did fragment it (the conntrack reassembly on the HA has no counter of its
    // own in snmp6).
    let snmp = tb.sh("mn", &["cat", "/proc/net/snmp6"]);
    let fragmented = snmp
        .lines()
        .find_map(|l| l.strip_prefix("Ip6FragOKs"))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(
        fragmented.is_some_and(|n| n >= 1),
        "the MN fragmented the tunnelled reply: {fragmented:?}\n{snmp}"
    );

    // ping6 from the client to the HoA: echo request tunnelled by the HA, echo reply
    // reverse-tunnelled by the MN.
    let ping = tb.sh(
        "client",
        &["ping", "-6", "-c", "1", "-W", "5", &hoa.to_string()],
    );
    assert!(ping.contains("1 received"), "{ping}");

    // A 1500-byte packet does not fit the tunnel over 1500-byte links: ha1 answers with
    // Packet Too Big for 1460 (RFC 2473 §7.1), which the client's kernel takes into its
    // path MTU for the home address.
    let _ = ip_netns(
        &tb.ns("client"),
        &[
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1452",
            &hoa.to_string(),
        ],
    );
    let route = tb.sh("client", &["ip", "-6", "route", "get", &hoa.to_string()]);
    assert!(
        route.contains("mtu 1460"),
        "the client learnt the tunnel's MTU from ha1: {route}"
    );

    // Deregistration: BA 0, and the binding, its rules and its proxy entry are gone.
    let ba = ok(m.home_register(ha, 0));
    assert_eq!((ba.status, ba.sequence, ba.dst), (0, 2, coa), "{ba:?}");
    let bc = mip6ctl_json(&d.socket, "bc");
    assert_eq!(bc["entries"].as_array().map(Vec::len), Some(0), "{bc}");
    assert_eq!(tb.set_members("ha1", "mip6d-home"), Some(vec![]));
    assert_eq!(tb.set_members("ha1", "mip6d-coa"), Some(vec![]));
    let proxies = tb.sh("ha1", &["ip", "-6", "neigh", "show", "proxy"]);
    assert!(!proxies.contains(&hoa.to_string()), "{proxies}");

    // Register again, then SIGTERM: exit 0, no rule, proxy entry or sysctl left behind.
    let ba = ok(m.home_register(ha, 50));
    assert_eq!((ba.status, ba.sequence), (0, 3), "{ba:?}");
    assert_eq!(
        tb.set_members("ha1", "mip6d-home"),
        Some(vec![hoa.to_string()])
    );
    d.signal(libc::SIGTERM);
    let st = d.wait_exit();
    assert!(st.success(), "mip6d exit: {st}\n{}", d.stderr());
    let rules = tb.sh("ha1", &["ip6tables-save"]);
    assert!(
        !rules.contains("NFQUEUE") && !rules.contains("conntrack"),
        "rules left behind after SIGTERM:\n{rules}"
    );
    let sets = tb.set_names("ha1");
    assert!(sets.is_empty(), "sets left behind after SIGTERM: {sets:?}");
    let proxies = tb.sh("ha1", &["ip", "-6", "neigh", "show", "proxy"]);
    assert!(!proxies.contains(&hoa.to_string()), "{proxies}");
    assert_eq!(
        tb.sh("ha1", &["sysctl", "-n", "net.ipv6.conf.home1.proxy_ndp"]),
        proxy_ndp,
        "proxy_ndp restored"
    );
    drop(m);
    let rules = tb.sh("mn", &["ip6tables-save"]);
    assert!(
        !rules.contains("NFQUEUE"),
        "the MN's rules left behind:\n{rules}"
    );
    let log = d.stderr();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "the daemon warned:\n{log}"
    );
    if std::env::var_os("MIP6D_TEST_LOG").is_some() {
        eprintln!("{log}");
    }
    eprintln!("ha_daemon: end to end in {:?}", started.elapsed());
}
