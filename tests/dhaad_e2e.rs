//! `testbed/run dhaad`: home agent discovery and the home agent's neighbour duties live
//! (RFC 6275 §10.4.1, §10.5, §11.4.1). The mobile node's configuration has no
//! `HomeAgentAddress`; a node on home1 first owns the home address, so ha1's real DAD
//! refuses the registration with status 134; then the mobile node registers with the home
//! agent DHAAD found. tshark on ha1 decodes the DHAAD request and reply, the DAD probes
//! from `::`, the proxy Neighbor Advertisement and the BA with 134; a Mobile Prefix
//! Solicitation (built by scapy) is answered with the home prefix through RH2; another
//! home agent's Router Advertisement (scapy) heads ha1's Home Agents List. Seven PASS
//! lines required (about 15 s).
//!
//! Needs root, iproute2, ip6tables, ipset, radvd, tshark and python3-scapy; without them it fails and
//! says which package to install.

mod common;
#[path = "support/testbed.rs"]
mod testbed;

use std::process::Command;
use testbed::{namespaces_with_prefix, text, Tool};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn dhaad_dad_and_proxy_na_on_the_testbed() {
    testbed::require(
        "dhaad_e2e",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    for (cmd, package) in [("radvd", "radvd"), ("tshark", "tshark")] {
        assert!(
            have(cmd),
            "dhaad_e2e needs `{cmd}`: apt-get install {package} (scripts/setup does)"
        );
    }
    let py = common::python_with_scapy();
    let prefix = format!("dhd{}", std::process::id());
    let state = std::env::temp_dir().join(format!("mip6d-testbed-{prefix}"));
    std::fs::create_dir_all(&state).unwrap();
    let mip6ctl = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d"))
        .with_file_name("mip6ctl")
        .display()
        .to_string();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run"))
        .args(["--prefix", &prefix, "dhaad"])
        .env("M6_STATE_DIR", &state)
        .env("M6_QUIET", "1")
        .env("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d"))
        .env("M6_MIP6CTL", mip6ctl)
        .env("M6_PYTHON", py)
        .output()
        .expect("spawn testbed/run");
    let left = namespaces_with_prefix(&prefix);
    if !left.is_empty() {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run"))
            .args(["--prefix", &prefix, "down"])
            .env("M6_STATE_DIR", &state)
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("{prefix}-dup")])
            .output();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = std::fs::read_dir(state.join(format!("{prefix}-mipv6")))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .map(|e| {
                    format!(
                        "--- {}\n{}",
                        e.path().display(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let passes = stdout.lines().filter(|l| l.starts_with("PASS ")).count();
    let ok = out.status.success() && passes == 7;
    if ok {
        let _ = std::fs::remove_dir_all(&state);
    }
    assert!(ok, "testbed/run dhaad:\n{}\n{logs}", text(&out));
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
