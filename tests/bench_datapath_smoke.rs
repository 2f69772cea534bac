//! `testbed/run bench-datapath --quick`: the benchmark's smoke round, so the command cannot
//! rot. It measures little (200 round trips, 1 s of TCP, 200 mobile nodes) and judges no
//! number; it insists that every path was measured — the route-optimised one included —
//! that every Binding Update was acknowledged, and that the table was printed.
//!
//! Needs root, iproute2, ip6tables, ipset, radvd and python3.

#[path = "support/testbed.rs"]
mod testbed;

use testbed::{run_scenario, text, Tool};

#[test]
fn bench_datapath_quick_measures_every_path() {
    testbed::require(
        "bench_datapath_smoke",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    testbed::require_commands(
        "bench_datapath_smoke",
        &[("radvd", "radvd"), ("python3", "python3")],
    );
    let prefix = format!("bds{}", std::process::id() % 100_000);
    let mip6ctl = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d")).with_file_name("mip6ctl");
    let run = run_scenario(
        &prefix,
        &["bench-datapath", "--quick"],
        &[
            ("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d").to_string()),
            ("M6_MIP6CTL", mip6ctl.display().to_string()),
            ("M6_NETBENCH", env!("CARGO_BIN_EXE_m6-netbench").to_string()),
        ],
        &format!("{prefix}-mipv6"),
    );
    let stdout = &run.stdout;
    assert!(
        run.out.status.success(),
        "bench-datapath --quick:\n{}",
        text(&run.out)
    );
    for row in [
        "direct (client -> CoA",
        "HA tunnel (client -> HoA",
        "route optimised (client -> HoA",
        "first registration",
        "refresh",
        "deregistration",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(row));
        assert!(
            line.is_some_and(|l| !l.contains('?')),
            "no measured row '{row}':\n{stdout}"
        );
    }
    assert!(
        run.left.is_empty(),
        "namespaces left behind: {:?}",
        run.left
    );
    run.remove_state();
}
