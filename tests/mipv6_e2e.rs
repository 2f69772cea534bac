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

/// Runs `testbed/run mipv6` with `env` on top of the binaries; insists on `checks` PASS
/// lines, exit status 0 and no namespace left.
fn run_checks(tag: &str, env: &[(&'static str, String)], checks: &[&str]) -> String {
    testbed::require(tag, &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset]);
    testbed::require_commands(
        tag,
        &[
            ("radvd", "radvd"),
            ("tshark", "tshark"),
            ("python3", "python3"),
            ("nft", "nftables"),
        ],
    );
    let prefix = format!("{tag}{}", std::process::id());
    let mut vars = binaries();
    vars.extend_from_slice(env);
    let run = run_scenario(
        &prefix,
        &["mipv6", "--datapath", "user"],
        &vars,
        &format!("{prefix}-mipv6"),
    );
    let ok = run.out.status.success() && run.passes() == checks.len();
    if ok {
        run.remove_state();
    }
    assert!(ok, "testbed/run mipv6:\n{}\n{}", text(&run.out), run.logs);
    assert!(
        run.left.is_empty(),
        "namespaces left behind: {:?}",
        run.left
    );
    for n in checks {
        assert!(
            run.stdout.contains(&format!("PASS {n} ")),
            "check {n} did not pass:\n{}",
            run.stdout
        );
    }
    run.stdout
}

#[test]
fn mipv6_end_to_end_checks_all_pass() {
    let out = run_checks("e2e", &[], &["1", "2", "3", "4", "5", "6"]);
    assert!(
        !out.contains(" 2b "),
        "no kernel tunnel asked, none checked:\n{out}"
    );
}

/// The home agent's tunnel as SRv6 lwtunnels (`--tunnel seg6`): the same six checks,
/// plus 2b — a reverse-tunnelled packet from a forged care-of address is dropped by the
/// nftables §10.4.5 check while the registered one passes.
#[test]
fn mipv6_checks_pass_with_the_home_agents_tunnel_in_the_kernel() {
    run_checks(
        "e2s",
        &[("M6_TUNNEL", "seg6".to_string())],
        &["1", "2", "2b", "3", "4", "5", "6"],
    );
}
