//! contrib/mip6d.service: systemd accepts it, and it runs mip6d the way the daemon
//! expects to be run under systemd.

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mip6d.service");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_runs_mip6d_as_a_notify_service() {
    let u = unit();
    assert_eq!(values(&u, "Type"), ["notify"]);
    assert_eq!(values(&u, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    let start = values(&u, "ExecStart");
    assert_eq!(start.len(), 1);
    assert!(start[0].split_whitespace().any(|a| a == "-f"), "{start:?}");
    for cap in ["CAP_NET_ADMIN", "CAP_NET_RAW"] {
        assert!(values(&u, "CapabilityBoundingSet")[0].contains(cap));
        assert!(values(&u, "AmbientCapabilities")[0].contains(cap));
    }
    let families = values(&u, "RestrictAddressFamilies")[0];
    for f in ["AF_UNIX", "AF_INET6", "AF_NETLINK", "AF_PACKET"] {
        assert!(families.contains(f), "{families}");
    }
    assert_eq!(values(&u, "ReadWritePaths"), ["/run"]);
}

#[test]
fn the_command_lines_in_the_unit_are_accepted_by_mip6d() {
    // Every option the unit passes must exist: run each command line with -t (check and
    // exit) on a real configuration.
    let u = unit();
    let dir = std::env::temp_dir().join(format!("mip6d-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mip6d.conf");
    std::fs::write(&conf, "NodeConfig CN;\n").unwrap();
    for line in values(&u, "ExecStart")
        .into_iter()
        .chain(values(&u, "ExecStartPre"))
    {
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(|a| {
                if a == "/etc/mip6d.conf" {
                    conf.display().to_string()
                } else {
                    a.to_string()
                }
            })
            .filter(|a| a != "-f" && a != "-t")
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_mip6d"))
            .args(&args)
            .arg("-t")
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let dir = std::env::temp_dir().join(format!("mip6d-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // verify checks that the binaries exist: point the unit at the one we built.
    let text = unit().replace("/usr/sbin/mip6d", env!("CARGO_BIN_EXE_mip6d"));
    let path = dir.join("mip6d.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed for this test (Debian package systemd)");
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
