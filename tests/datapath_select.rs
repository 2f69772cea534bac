//! `--datapath auto` on a live kernel: the daemon probes, picks, and says why in its log.
//! It runs in a scratch namespace because the user data path it falls back to adds
//! netfilter rules and binds a queue.

mod daemon_support;
#[path = "support/testbed.rs"]
mod testbed;

use daemon_support::*;
use std::process::{Command, Stdio};

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn auto_logs_its_choice_and_the_reason() {
    testbed::require(
        "datapath_select",
        &[testbed::Tool::Ip, testbed::Tool::Ip6tables],
    );
    let ns = Ns(format!("xfrm-sel-{}", std::process::id()));
    let out = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", testbed::text(&out));

    let mut d = Daemon::new("xfrm-auto", "NodeConfig CN;\nDatapath auto;\n");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_mip6d")])
        .args(["-f", "-d", "1", "-c"])
        .arg(&d.config)
        .arg("--control-socket")
        .arg(&d.socket)
        .arg("--pid-file")
        .arg(&d.pid_file)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&d.log).unwrap());
    d.spawn(c);
    let log = d.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("Datapath auto:"))
        .unwrap_or_else(|| panic!("no choice logged:\n{log}"));
    match testbed::mip6_kernel("datapath_select") {
        Some(false) => assert!(
            line.contains("Datapath auto: user (no CONFIG_IPV6_MIP6")
                && line.contains("Requested type not found"),
            "{line}"
        ),
        Some(true) => {
            assert!(line.contains("Datapath auto: kernel"), "{line}");
            testbed::ran_supported_branch("datapath_select::auto_picks_kernel");
        }
        None => assert!(line.contains("Datapath auto: "), "{line}"),
    }
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit().success(), "{}", d.stderr());
}
