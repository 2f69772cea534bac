//! systemd's notification protocol, checked with a datagram socket standing in for
//! systemd: READY=1 once the control socket answers, RELOADING=1 around SIGHUP,
//! WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 at shutdown.

mod daemon_support;

use daemon_support::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

struct FakeSystemd {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl FakeSystemd {
    fn bind(d: &Daemon) -> (FakeSystemd, std::path::PathBuf) {
        let path = d.dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        (
            FakeSystemd {
                sock,
                seen: Vec::new(),
            },
            path,
        )
    }

    /// Waits for a datagram with this `KEY=value` line and returns the datagram.
    fn expect(&mut self, line: &str) -> String {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = self.seen.iter().position(|m| m.lines().any(|l| l == line)) {
                return self.seen.remove(m);
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no {line} from mip6d; got {:?}",
                self.seen
            );
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn count(&mut self, line: &str, within: Duration) -> usize {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < within {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        self.seen
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

#[test]
fn ready_reloading_and_stopping_reach_systemd() {
    let mut d = Daemon::new("notify", "NodeConfig CN;\n");
    let (mut systemd, path) = FakeSystemd::bind(&d);
    let mut cmd = d.command();
    cmd.env("NOTIFY_SOCKET", &path);
    d.spawn(cmd);
    let ready = systemd.expect("READY=1");
    assert!(ready.contains(&format!("MAINPID={}", d.pid())), "{ready}");
    assert!(ready.contains("STATUS=CN role: 0 bindings"), "{ready}");

    d.reload(1);
    let reloading = systemd.expect("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    systemd.expect("READY=1");

    d.signal(libc::SIGTERM);
    systemd.expect("STOPPING=1");
    assert_eq!(d.wait_exit().code(), Some(0));
}

#[test]
fn readiness_comes_after_the_socket_is_up() {
    // Whoever gets READY=1 can talk to the daemon at once: no polling needed.
    let mut d = Daemon::new("notify-order", "NodeConfig CN;\n");
    let (mut systemd, path) = FakeSystemd::bind(&d);
    let mut cmd = d.command();
    cmd.env("NOTIFY_SOCKET", &path);
    d.child = Some(cmd.spawn().unwrap());
    systemd.expect("READY=1");
    assert_eq!(d.status()["pid"].as_u64(), Some(u64::from(d.pid())));
}

#[test]
fn watchdog_is_fed_at_half_the_period() {
    let mut d = Daemon::new("watchdog", "NodeConfig CN;\n");
    let (mut systemd, path) = FakeSystemd::bind(&d);
    let mut cmd = d.command();
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000");
    d.spawn(cmd);
    systemd.expect("READY=1");
    // 100 ms between pings: about 10 in a second; a busy machine may delay some.
    let n = systemd.count("WATCHDOG=1", Duration::from_secs(1));
    assert!((4..=14).contains(&n), "{n} pings in 1 s");
}

#[test]
fn a_watchdog_for_another_process_is_ignored() {
    let mut d = Daemon::new("watchdog-other", "NodeConfig CN;\n");
    let (mut systemd, path) = FakeSystemd::bind(&d);
    let mut cmd = d.command();
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1");
    d.spawn(cmd);
    systemd.expect("READY=1");
    assert_eq!(systemd.count("WATCHDOG=1", Duration::from_millis(400)), 0);
}
