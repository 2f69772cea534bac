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

use testbed::{run_scenario, text, Tool};

#[test]
fn dhaad_dad_and_proxy_na_on_the_testbed() {
    testbed::require(
        "dhaad_e2e",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    testbed::require_commands("dhaad_e2e", &[("radvd", "radvd"), ("tshark", "tshark")]);
    let py = common::python_with_scapy();
    let prefix = format!("dhd{}", std::process::id());
    let mip6ctl = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d")).with_file_name("mip6ctl");
    let run = run_scenario(
        &prefix,
        &["dhaad"],
        &[
            ("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d").to_string()),
            ("M6_MIP6CTL", mip6ctl.display().to_string()),
            ("M6_PYTHON", py.display().to_string()),
        ],
        &format!("{prefix}-mipv6"),
    );
    let ok = run.out.status.success() && run.passes() == 7;
    if ok {
        run.remove_state();
    }
    assert!(ok, "testbed/run dhaad:\n{}\n{}", text(&run.out), run.logs);
    assert!(
        run.left.is_empty(),
        "namespaces left behind: {:?}",
        run.left
    );
}
