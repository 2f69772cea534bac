//! `testbed/run bench-datapath --quick`: the benchmark's smoke round, so the command cannot
//! rot. It measures little (200 round trips, 1 s of TCP, 200 mobile nodes) and judges no
//! number; it insists that every path was measured — the route-optimised one included —
//! that every Binding Update was acknowledged, and that the table was printed.
//!
//! Needs root, iproute2, ip6tables, ipset, radvd and python3.

#[path = "support/testbed.rs"]
mod testbed;

use std::process::Command;
use testbed::{namespaces_with_prefix, text, Tool};

#[test]
fn bench_datapath_quick_measures_every_path() {
    testbed::require(
        "bench_datapath_smoke",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    for (cmd, package) in [("radvd", "radvd"), ("python3", "python3")] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "bench_datapath_smoke needs `{cmd}`: apt-get install {package} (scripts/setup does)"
        );
    }
    let prefix = format!("bds{}", std::process::id() % 100_000);
    let state = std::env::temp_dir().join(format!("mip6d-testbed-{prefix}"));
    std::fs::create_dir_all(&state).unwrap();
    let bin = |name: &str| {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d"))
            .with_file_name(name)
            .display()
            .to_string()
    };
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run"))
        .args(["--prefix", &prefix, "bench-datapath", "--quick"])
        .env("M6_STATE_DIR", &state)
        .env("M6_QUIET", "1")
        .env("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d"))
        .env("M6_MIP6CTL", bin("mip6ctl"))
        .env("M6_NETBENCH", env!("CARGO_BIN_EXE_m6-netbench"))
        .output()
        .expect("spawn testbed/run");
    let left = namespaces_with_prefix(&prefix);
    if !left.is_empty() {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run"))
            .args(["--prefix", &prefix, "down"])
            .env("M6_STATE_DIR", &state)
            .output();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench-datapath --quick:\n{}",
        text(&out)
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
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&state);
}
