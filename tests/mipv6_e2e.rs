//! `testbed/run mipv6`: the six Mobile IPv6 end-to-end checks of the real `mip6d` as home
//! agent, mobile node and correspondent node on the namespace testbed, with router
//! advertisements (radvd) on the mobile node's links. Each check prints a PASS/FAIL line;
//! this test insists on six PASS lines and exit status 0.
//!
//! Needs root, iproute2, ip6tables, radvd, tshark and python3; without them it fails and
//! says which package to install.

#[path = "support/testbed.rs"]
mod testbed;

use std::process::Command;
use testbed::{namespaces_with_prefix, text, Tool};

/// Whether `cmd` is on the PATH (radvd's `--version` exits 1, so running it proves
/// nothing).
fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn mipv6_end_to_end_checks_all_pass() {
    testbed::require(
        "mipv6_e2e",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    for (cmd, package) in [
        ("radvd", "radvd"),
        ("tshark", "tshark"),
        ("python3", "python3"),
    ] {
        assert!(
            have(cmd),
            "mipv6_e2e needs `{cmd}`: apt-get install {package} (scripts/setup does)"
        );
    }
    let prefix = format!("e2e{}", std::process::id());
    let state = std::env::temp_dir().join(format!("mip6d-testbed-{prefix}"));
    std::fs::create_dir_all(&state).unwrap();
    let bin = |name: &str| {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d"))
            .with_file_name(name)
            .display()
            .to_string()
    };
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run"))
        .args(["--prefix", &prefix, "mipv6", "--datapath", "user"])
        .env("M6_STATE_DIR", &state)
        .env("M6_QUIET", "1")
        .env("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d"))
        .env("M6_MIP6CTL", bin("mip6ctl"))
        .output()
        .expect("spawn testbed/run");
    // Whatever happened, no namespace of ours may stay.
    let left = namespaces_with_prefix(&prefix);
    if !left.is_empty() {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run"))
            .args(["--prefix", &prefix, "down"])
            .env("M6_STATE_DIR", &state)
            .output();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = std::fs::read_dir(state.join(format!("{prefix}-mipv6")))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == "log" || x == "diff")
                })
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
    let ok = out.status.success() && passes == 6;
    if ok {
        let _ = std::fs::remove_dir_all(&state);
    }
    assert!(ok, "testbed/run mipv6:\n{}\n{logs}", text(&out));
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    for n in 1..=6 {
        assert!(
            stdout.contains(&format!("PASS {n} ")),
            "check {n} did not pass:\n{stdout}"
        );
    }
}
