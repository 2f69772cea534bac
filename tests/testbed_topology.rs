//! The namespace testbed (`testbed/run`) really builds the seed's Figure 1 network: real
//! pings between the nodes, a handover of the mobile node with `move`, two testbeds side by
//! side, and nothing left behind by `down`.
//!
//! Needs root, iproute2 and iputils-ping. Without them this test fails and says what is
//! missing: a silently skipped network test is indistinguishable from a passing one.

#[path = "support/testbed.rs"]
mod testbed;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::time::Instant;

use testbed::{namespaces_with_prefix, read_state, text, Testbed, Tool};

/// What this test does with a testbed beyond the shared guard.
trait TopologyExt {
    fn state_now(&self) -> HashMap<String, String>;
    fn exec(&self, node: &str, cmd: &[&str]) -> Output;
    fn ping(&self, node: &str, dst: &str, extra: &[&str]) -> Output;
    fn assert_ping(&self, node: &str, dst: &str, what: &str);
    fn status_text(&self) -> String;
}

impl TopologyExt for Testbed {
    /// The state file as it is now (`move` rewrites it).
    fn state_now(&self) -> HashMap<String, String> {
        read_state(&self.state_file()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(cmd)
            .output()
            .expect("spawn ip netns exec")
    }

    fn ping(&self, node: &str, dst: &str, extra: &[&str]) -> Output {
        let mut cmd = vec!["ping", "-6", "-c1", "-W2", "-q"];
        cmd.extend_from_slice(extra);
        cmd.push(dst);
        self.exec(node, &cmd)
    }

    fn assert_ping(&self, node: &str, dst: &str, what: &str) {
        let out = self.ping(node, dst, &[]);
        assert!(
            out.status.success(),
            "{what}: ping from {node} to {dst} failed:\n{}\n{}",
            text(&out),
            self.status_text()
        );
    }

    fn status_text(&self) -> String {
        text(&self.run(&["status"]))
    }
}

fn key<'a>(state: &'a HashMap<String, String>, k: &str) -> &'a str {
    state
        .get(k)
        .unwrap_or_else(|| panic!("state file has no {k}: {state:?}"))
}

fn assert_gone(prefix: &str, state_file: &Path) {
    let left = namespaces_with_prefix(prefix);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(
        !state_file.exists(),
        "state file left behind: {}",
        state_file.display()
    );
}

#[test]
fn testbed_up_ping_move_down() {
    testbed::require("testbed_topology", &[Tool::Ip, Tool::Ping]);
    let started = Instant::now();
    let pid = std::process::id();
    let tb = Testbed::up(format!("m6t{pid}"), None);
    let s = tb.state_now();

    // Every documented key is present and the addresses are the documented ones.
    for k in [
        "M6_CLIENT_ADDR",
        "M6_HA1_ADDR",
        "M6_HA2_ADDR",
        "M6_HA1_UPLINK_ADDR",
        "M6_SN1_ADDR",
        "M6_SN2_ADDR",
        "M6_MN_HOME_ADDR",
        "M6_MN_COA_FOREIGN1",
        "M6_MN_COA_FOREIGN2",
        "M6_DSA_ADDR",
        "M6_HOME_PREFIX",
        "M6_MN_LINK",
        "M6_MN_ADDR",
        "M6_EMULATION_IFACES",
    ] {
        key(&s, k);
    }
    assert_eq!(key(&s, "M6_HOME_PREFIX"), "2001:db8:1::/64");
    assert_eq!(key(&s, "M6_MN_LINK"), "home1");
    assert_eq!(key(&s, "M6_MN_ADDR"), key(&s, "M6_MN_HOME_ADDR"));
    assert_eq!(key(&s, "M6_NS_ROUTER"), tb.ns("router"));

    let status = tb.run(&["status"]);
    assert!(status.status.success(), "status: {}", text(&status));
    let status_out = String::from_utf8_lossy(&status.stdout);
    for node in ["client", "router", "ha1", "ha2", "sn1", "sn2", "mn"] {
        assert!(
            status_out.contains(&tb.ns(node)),
            "status does not list {node}:\n{status_out}"
        );
    }

    // Real traffic along the paths the Distributed Servers experiments use.
    tb.assert_ping(
        "client",
        key(&s, "M6_HA1_ADDR"),
        "client -> ha1 (home link)",
    );
    tb.assert_ping("client", key(&s, "M6_SN1_ADDR"), "client -> sn1");
    tb.assert_ping("client", key(&s, "M6_SN2_ADDR"), "client -> sn2");
    tb.assert_ping("sn1", key(&s, "M6_SN2_ADDR"), "sn1 -> sn2");
    tb.assert_ping("sn1", key(&s, "M6_HA1_ADDR"), "sn1 -> ha1");
    tb.assert_ping("mn", key(&s, "M6_CLIENT_ADDR"), "mn at home -> client");
    tb.assert_ping("client", key(&s, "M6_MN_HOME_ADDR"), "client -> mn at home");

    // A second testbed with another prefix coexists with the first.
    let tb2 = Testbed::up(format!("m6u{pid}"), None);
    let s2 = tb2.state_now();
    tb2.assert_ping("client", key(&s2, "M6_SN2_ADDR"), "second testbed");
    tb.assert_ping("client", key(&s, "M6_SN2_ADDR"), "first testbed, second up");
    let (prefix2, state2) = (tb2.prefix.clone(), tb2.state_file());
    let out = tb2.run(&["down"]);
    assert!(out.status.success(), "down (second): {}", text(&out));
    drop(tb2);
    assert_gone(&prefix2, &state2);

    // Handover: the MN leaves its home link for foreign2.
    let out = tb.run(&["move", "mn", "foreign2"]);
    assert!(out.status.success(), "move: {}", text(&out));
    let s = tb.state_now();
    assert_eq!(key(&s, "M6_MN_LINK"), "foreign2");
    let coa = key(&s, "M6_MN_COA_FOREIGN2");
    assert_eq!(key(&s, "M6_MN_ADDR"), coa);
    let route = tb.exec(
        "mn",
        &["ip", "-6", "route", "get", key(&s, "M6_CLIENT_ADDR")],
    );
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("dev foreign2"),
        "mn does not route via foreign2: {}",
        text(&route)
    );
    let home = tb.exec("mn", &["ip", "-o", "link", "show", "home1"]);
    assert!(
        !String::from_utf8_lossy(&home.stdout).contains(",UP"),
        "mn's home1 interface is still up after move: {}",
        text(&home)
    );
    let out = tb.ping("mn", key(&s, "M6_CLIENT_ADDR"), &["-I", coa]);
    assert!(
        out.status.success(),
        "mn on foreign2 -> client: {}\n{}",
        text(&out),
        tb.status_text()
    );
    tb.assert_ping("client", coa, "client -> mn's care-of address");
    // Nothing answers for the home address any more: the MN really left the home link.
    let out = tb.ping("client", key(&s, "M6_MN_HOME_ADDR"), &["-W1"]);
    assert!(
        !out.status.success(),
        "home address still answers after move"
    );

    // Foreign to foreign, and back home.
    let out = tb.run(&["move", "mn", "foreign1"]);
    assert!(out.status.success(), "move foreign1: {}", text(&out));
    tb.assert_ping("mn", key(&s, "M6_CLIENT_ADDR"), "mn on foreign1 -> client");
    let out = tb.run(&["move", "mn", "home1"]);
    assert!(out.status.success(), "move home1: {}", text(&out));
    tb.assert_ping(
        "client",
        key(&s, "M6_MN_HOME_ADDR"),
        "client -> mn back home",
    );

    // down removes everything, and repeating it is harmless.
    let (prefix, state_file) = (tb.prefix.clone(), tb.state_file());
    let out = tb.run(&["down"]);
    assert!(out.status.success(), "down: {}", text(&out));
    let out = tb.run(&["down"]);
    assert!(out.status.success(), "second down: {}", text(&out));
    let out = tb.run(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "status after down: {}",
        text(&out)
    );
    drop(tb);
    assert_gone(&prefix, &state_file);
    eprintln!("testbed test took {:?}", started.elapsed());
}
