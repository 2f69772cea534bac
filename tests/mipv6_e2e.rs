//! `testbed/run mipv6`: the six Mobile IPv6 end-to-end checks of the real `mip6d` as home
//! agent, mobile node and correspondent node on the namespace testbed, with router
//! advertisements (radvd) on the mobile node's links. Each check prints a PASS/FAIL line;
//! this test insists on six PASS lines and exit status 0.
//!
//! Needs root, iproute2, ip6tables, radvd, tshark and python3; without them it fails and
//! says which package to install.

#[path = "support/testbed.rs"]
mod testbed;

use testbed::{run_scenario, text, Tool};

/// The test's own binaries for `testbed/run`.
fn binaries() -> Vec<(&'static str, String)> {
    let mip6ctl = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d")).with_file_name("mip6ctl");
    vec![
        ("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d").to_string()),
        ("M6_MIP6CTL", mip6ctl.display().to_string()),
    ]
}

#[test]
fn mipv6_end_to_end_checks_all_pass() {
    testbed::require(
        "mipv6_e2e",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    testbed::require_commands(
        "mipv6_e2e",
        &[
            ("radvd", "radvd"),
            ("tshark", "tshark"),
            ("python3", "python3"),
        ],
    );
    let prefix = format!("e2e{}", std::process::id());
    let run = run_scenario(
        &prefix,
        &["mipv6", "--datapath", "user"],
        &binaries(),
        &format!("{prefix}-mipv6"),
    );
    let ok = run.out.status.success() && run.passes() == 6;
    if ok {
        run.remove_state();
    }
    assert!(ok, "testbed/run mipv6:\n{}\n{}", text(&run.out), run.logs);
    assert!(
        run.left.is_empty(),
        "namespaces left behind: {:?}",
        run.left
    );
    for n in 1..=6 {
        assert!(
            run.stdout.contains(&format!("PASS {n} ")),
            "check {n} did not pass:\n{}",
            run.stdout
        );
    }
}
