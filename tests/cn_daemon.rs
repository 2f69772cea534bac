//! The correspondent node role of the real `mip6d` on the `user` data path, end to end on
//! the namespace testbed (`testbed/run`): return routability, a Binding Update with its
//! Binding Acknowledgement, the binding in `mip6ctl bc`, route-optimised traffic from an
//! ordinary socket, and a clean SIGTERM.
//!
//! - CN: `mip6d` (`NodeConfig CN; Datapath user;`) in the `client` namespace.
//! - MN: the stub of `tests/support/mn_stub.rs` (also `examples/rr_client.rs`, which
//!   `scripts/demo` runs), on foreign1, speaking through raw sockets and its own netfilter
//!   queue from the `mn` namespace. The home agent is stood in for by host routes; the
//!   module's documentation says how and why.
//!
//! Needs root, iproute2 and ip6tables; without them the test fails and says so.

mod daemon_support;
#[path = "support/mn_stub.rs"]
mod mn_stub;
mod proto_support;
#[path = "support/testbed.rs"]
mod testbed;

use daemon_support::{mip6ctl_json, Daemon};
use mn_stub::{install_stand_in, Mn, StandIn};

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::{Testbed, Tool};

// --- the test ------------------------------------------------------------------------------------

/// Unwraps a step of the MN stub; its error says what went wrong.
fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn correspondent_daemon_binds_a_mobile_node_and_route_optimises_its_traffic() {
    testbed::require("cn_daemon", &[Tool::Ip, Tool::Ip6tables, Tool::Ipset]);
    let started = Instant::now();
    let tb = Testbed::up(format!("cnd{}", std::process::id()), Some("foreign1"));
    let (hoa, coa, cn) = (
        tb.addr("M6_MN_HOME_ADDR"),
        tb.addr("M6_MN_COA_FOREIGN1"),
        tb.addr("M6_CLIENT_ADDR"),
    );

    // The stand-in for the HA tunnel (see tests/support/mn_stub.rs).
    let (mn_ns, router_ns, ha1_ns) = (tb.ns("mn"), tb.ns("router"), tb.ns("ha1"));
    ok(install_stand_in(
        &StandIn {
            mn_ns: &mn_ns,
            router_ns: &router_ns,
            ha1_ns: &ha1_ns,
            router_uplink1: tb.addr("M6_ROUTER_UPLINK1_ADDR"),
        },
        hoa,
        coa,
    ));

    // The daemon, in the client's namespace (`ip netns exec` execs it: same pid).
    let mut d = Daemon::new(
        "cnd",
        "NodeConfig CN;\nDatapath user;\nDebugLevel 1;\nDoRouteOptimizationCN enabled;\n",
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &tb.ns("client")])
        .arg(env!("CARGO_BIN_EXE_mip6d"))
        .arg("-f")
        .arg("-c")
        .arg(&d.config)
        .arg("--control-socket")
        .arg(&d.socket)
        .arg("--pid-file")
        .arg(&d.pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&d.log).unwrap());
    for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUST_LOG"] {
        cmd.env_remove(v);
    }
    d.spawn(cmd);
    let rules = tb.sh("client", &["ip6tables-save"]);
    assert_eq!(
        rules.matches("NFQUEUE").count(),
        3,
        "the two receive rules and route optimisation:\n{rules}"
    );
    assert_eq!(tb.set_members("client", "mip6d-ro"), Some(vec![]));

    // The MN: its queue (bound before its rules), raw socket, a UDP socket on the HoA,
    // and an ordinary UDP socket on the client.
    let mut m = ok(Mn::start(&mn_ns, &tb.ns("client"), hoa, coa, cn));

    // Return routability: HoTI from the HoA, CoTI from the CoA; each test echoes its
    // cookie (checked by the stub) and comes from the CN to the address it tests.
    ok(m.send_test_inits());
    let (hot, cot) = ok(m.receive_tests());
    assert_eq!((hot.src, hot.dst), (cn, hoa), "HoT to the HoA");
    assert_eq!((cot.src, cot.dst), (cn, coa), "CoT to the CoA");

    // The Binding Update: from the CoA, Home Address option, Nonce Indices and Binding
    // Authorization Data, A flag; lifetime 50 units (200 s).
    let ba = ok(m.bind(50));
    // §9.5.4, §6.4: to the CoA, with a Type 2 Routing Header holding the HoA.
    assert_eq!((ba.src, ba.dst, ba.rh2_home), (cn, coa, Some(hoa)));
    assert!(ba.authenticator_valid, "BA authenticator: {ba:?}");
    assert_eq!((ba.status, ba.sequence), (0, 1), "BA accepted, sequence 1");

    // The binding as the operator sees it.
    let bc = mip6ctl_json(&d.socket, "bc");
    let entries = bc["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{bc}");
    assert_eq!(entries[0]["home_address"], hoa.to_string());
    assert_eq!(entries[0]["care_of_address"], coa.to_string());
    assert_eq!(entries[0]["kind"], "cache");
    assert_eq!(
        tb.set_members("client", "mip6d-ro"),
        Some(vec![hoa.to_string()]),
        "the binding's home address is in the route optimisation set"
    );

    // Route optimisation on the CN's data path: an ordinary socket on the client sends to
    // the HoA; it leaves toward the CoA with a Type 2 Routing Header (the stub waits for
    // exactly that) and reaches the socket on the HoA.
    let got = ok(m.datagram_to_home(b"route optimised"));
    assert_eq!(got.payload, b"route optimised");
    assert_eq!(got.from, IpAddr::V6(cn));

    // The other direction: the MN sends from its CoA with a Home Address option; the
    // CN's receive queue gives the datagram to the client's socket as coming from the HoA.
    let got = ok(m.datagram_from_home(b"from the HoA", daemon_support::PATIENCE));
    let got = got.expect("datagram with HAO delivered");
    assert_eq!(got.payload, b"from the HoA");
    assert_eq!(got.from, IpAddr::V6(hoa), "source is the HoA");

    // Deregistration (lifetime 0, Kbm from the home keygen token only): BA, and the
    // binding and its rule are gone.
    let ba = ok(m.bind(0));
    assert!(
        ba.authenticator_valid,
        "deregistration BA authenticator: {ba:?}"
    );
    assert_eq!((ba.status, ba.sequence), (0, 2));
    let bc = mip6ctl_json(&d.socket, "bc");
    assert_eq!(bc["entries"].as_array().map(Vec::len), Some(0), "{bc}");
    assert_eq!(
        tb.set_members("client", "mip6d-ro"),
        Some(vec![]),
        "the binding's set element went with it"
    );
    // Without a binding, a Home Address option is refused with Binding Error status 1
    // (RFC 6275 §9.3.1), and the datagram is not delivered.
    let late = ok(m.datagram_from_home(b"unbound", Duration::from_millis(300)));
    let be = ok(m.binding_error());
    assert_eq!(
        (be.src, be.dst, be.status, be.home_address),
        (cn, coa, 1, hoa)
    );
    assert!(
        late.is_none(),
        "a HAO without binding must not be delivered: {late:?}"
    );

    let stats = mip6ctl_json(&d.socket, "stats");
    let count = |name: &str, dir: &str| {
        stats["mobility_header"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e[dir].as_u64())
            .unwrap()
    };
    assert_eq!(
        (
            count("HoTI", "received"),
            count("CoTI", "received"),
            count("BU", "received")
        ),
        (1, 1, 2),
        "{stats}"
    );
    assert_eq!(
        (
            count("HoT", "sent"),
            count("CoT", "sent"),
            count("BA", "sent"),
            count("BE", "sent")
        ),
        (1, 1, 2, 1),
        "{stats}"
    );

    // SIGTERM: exit 0, and every rule the daemon added is gone.
    d.signal(libc::SIGTERM);
    let st = d.wait_exit();
    assert!(st.success(), "mip6d exit: {st}\n{}", d.stderr());
    let rules = tb.sh("client", &["ip6tables-save"]);
    assert!(
        !rules.contains("NFQUEUE"),
        "rules left behind after SIGTERM:\n{rules}"
    );
    let sets = tb.set_names("client");
    assert!(sets.is_empty(), "sets left behind after SIGTERM: {sets:?}");
    // The MN's queue and its rules go with it.
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
    // MIP6D_TEST_LOG=1 shows what the daemon said (run with --nocapture).
    if std::env::var_os("MIP6D_TEST_LOG").is_some() {
        eprintln!("{log}");
    }
    eprintln!("cn_daemon: end to end in {:?}", started.elapsed());
}
