//! `testbed/run mipv6 --datapath kernel`: the home agent (ha1), the mobile node and the
//! correspondent (client, with `--datapath auto`) on the kernel data path — XFRM route
//! optimisation and ip6ip6 tunnels, no netfilter queue. Six checks of
//! `tests/mipv6_e2e.rs` plus a seventh: umip's XFRM states and sub-policies, the tunnels
//! and the mobile node's table 252 are in the three kernels, none has an NFQUEUE rule,
//! and the client's `auto` chose kernel. The RH2 / HAO counts of check 4 are then the
//! kernel's work, seen on the router; check 6 compares `ip xfrm` and the links before
//! and after SIGTERM.
//!
//! Needs a kernel with CONFIG_IPV6_MIP6 and ip6_tunnel: `scripts/vm-test kernel-roles`.
//! On a kernel without them (this project's CI host) it checks instead that
//! `--datapath kernel` is refused with the missing option named.

#[path = "support/scratch_ns.rs"]
mod scratch_ns;
#[path = "support/testbed.rs"]
mod testbed;

use testbed::{run_scenario, text, Tool};

fn binaries() -> Vec<(&'static str, String)> {
    let mip6ctl = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mip6d")).with_file_name("mip6ctl");
    vec![
        ("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d").to_string()),
        ("M6_MIP6CTL", mip6ctl.display().to_string()),
        ("M6_DATAPATH_CLIENT", "auto".to_string()),
        // The VM runs under software emulation.
        ("M6_WAIT_SCALE", "4".to_string()),
    ]
}

#[test]
fn mipv6_on_the_kernel_data_path() {
    testbed::require("mipv6_kernel_e2e", &[Tool::Ip, Tool::Ip6tables]);
    if testbed::mip6_kernel("mipv6_kernel_e2e") != Some(true) {
        refused_without_mip6();
        return;
    }
    testbed::require(
        "mipv6_kernel_e2e",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    testbed::require_commands(
        "mipv6_kernel_e2e",
        &[
            ("radvd", "radvd"),
            ("tshark", "tshark"),
            ("python3", "python3"),
        ],
    );
    let prefix = format!("kr{}", std::process::id());
    let run_dir = format!("{prefix}-mipv6");
    let run = run_scenario(
        &prefix,
        &["mipv6", "--datapath", "kernel"],
        &binaries(),
        &run_dir,
    );
    // The evidence, for the log: what the kernel held with the MN registered and
    // route-optimised with the client.
    for f in [
        "ha1.xfrm-state",
        "ha1.xfrm-policy",
        "ha1.tunnels",
        "client.xfrm-state",
        "client.xfrm-policy",
        "mn.xfrm-state",
        "mn.xfrm-policy",
        "mn.tunnels",
        "mn.rules",
        "mn.table252",
    ] {
        let body = std::fs::read_to_string(run.state_dir().join(&run_dir).join(f))
            .unwrap_or_else(|e| format!("({e})"));
        for line in body.lines() {
            println!("M6-XFRM {f}: {line}");
        }
    }
    let ok = run.out.status.success() && run.passes() == 7;
    if ok {
        run.remove_state();
    }
    assert!(ok, "testbed/run mipv6:\n{}\n{}", text(&run.out), run.logs);
    assert!(
        run.left.is_empty(),
        "namespaces left behind: {:?}",
        run.left
    );
    for n in 1..=7 {
        assert!(
            run.stdout.contains(&format!("PASS {n} ")),
            "check {n} did not pass:\n{}",
            run.stdout
        );
    }
    print!("{}", run.stdout);
    testbed::ran_supported_branch("mipv6_kernel_e2e::kernel");
}

/// Without MIP6 the daemon must refuse `--datapath kernel` before installing anything,
/// naming what the kernel lacks.
fn refused_without_mip6() {
    let ns = scratch_ns::Ns::new("kroles");
    let dir = std::env::temp_dir().join(format!("mip6d-kroles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("cn.conf");
    std::fs::write(&conf, "NodeConfig CN;\n").unwrap();
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            "ip",
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_mip6d"),
        ])
        .args(["-f", "-d", "1", "--datapath", "kernel", "-c"])
        .arg(&conf)
        .arg("--control-socket")
        .arg(dir.join("sock"))
        .output()
        .expect("run mip6d");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("CONFIG_IPV6_MIP6"), "{}", text(&out));
}
