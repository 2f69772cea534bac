//! The daemon as a sysadmin runs it: start, status, reload, refuse a second instance,
//! stop cleanly.

mod daemon_support;

use daemon_support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

const CN: &str = "NodeConfig CN;\nDebugLevel 0;\nDoRouteOptimizationCN enabled;\n";

#[test]
fn status_reports_role_pid_and_configuration() {
    let d = Daemon::start("status", CN);
    let out = mip6ctl(&["status", "--json", "--socket", d.socket_arg()]);
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["role"], "CN");
    assert_eq!(s["pid"].as_u64(), Some(u64::from(d.pid())));
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["config_file"], d.config.to_str().unwrap());
    assert_eq!(s["datapath"], "auto");
    assert_eq!(s["reloads"], 0);
    assert_eq!(s["last_reload"], Value::Null);
    assert_eq!(s["machines"], serde_json::json!([]));
    let installed = s["installed"].as_array().unwrap();
    assert_eq!(installed.len(), 2, "{installed:?}");
    assert!(installed[0].as_str().unwrap().starts_with("pid file"));
    assert!(installed[1].as_str().unwrap().starts_with("control socket"));

    // The human form says the same.
    let out = mip6ctl(&["status", "--socket", d.socket_arg()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        text.contains(&format!("pid             {}\n", d.pid())),
        "{text}"
    );
    assert!(text.contains("role            CN\n"), "{text}");

    // The pid file names the daemon; the socket is for its owner only.
    let pid = std::fs::read_to_string(&d.pid_file).unwrap();
    assert_eq!(pid.trim(), d.pid().to_string());
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
}

#[test]
fn role_from_the_command_line() {
    let mut d = Daemon::new("role", CN);
    let mut cmd = d.command();
    cmd.args(["-M", "--datapath", "user"]);
    // An MN needs a home link; the check must pass for the daemon to start.
    d.write_config(
        "NodeConfig CN;\nInterface \"lo\";\nMnHomeLink \"lo\" {\n\tHomeAgentAddress 2001:db8::1;\n\tHomeAddress 2001:db8::2/64;\n}\nUseMnHaIPsec disabled;\n",
    );
    d.spawn(cmd);
    let s = d.status();
    assert_eq!(s["role"], "MN", "{s}");
    assert_eq!(s["datapath"], "user");
    // A reload re-applies -M: no spurious "NodeConfig needs a restart".
    let s = d.reload(1);
    assert_eq!(s["role"], "MN");
    assert_eq!(s["restart_needed"], serde_json::json!([]), "{s}");
}

#[test]
fn binding_cache_and_update_list_are_empty_tables() {
    let d = Daemon::start("tables", CN);
    for cmd in ["bc", "bul"] {
        let out = mip6ctl(&[cmd, "--json", "--socket", d.socket_arg()]);
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v, serde_json::json!({"entries": []}), "{cmd}");
        let out = mip6ctl(&[cmd, "--socket", d.socket_arg()]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{cmd}: only the header:\n{text}");
        assert!(text.contains("HOME ADDRESS") && text.contains("CARE-OF ADDRESS"));
    }
    let stats = d.data("stats");
    let mh = stats["mobility_header"].as_array().unwrap();
    assert_eq!(mh.len(), 8);
    assert!(mh.iter().all(|m| m["received"] == 0 && m["sent"] == 0));
    assert!(stats["control_requests"].as_u64().unwrap() >= 5, "{stats}");
    let out = mip6ctl(&["stats", "--socket", d.socket_arg()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("BU (5)") && text.contains("control requests"),
        "{text}"
    );
}

#[test]
fn garbage_gets_an_error_and_the_daemon_keeps_serving() {
    let d = Daemon::start("garbage", CN);
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut r = BufReader::new(&s);
    let mut ask = |line: &[u8]| -> Value {
        (&s).write_all(line).unwrap();
        let mut a = String::new();
        r.read_line(&mut a).unwrap();
        serde_json::from_str(&a).unwrap_or_else(|e| panic!("{a:?}: {e}"))
    };
    for bad in [
        &b"hello\n"[..],
        b"\xff\xfe\x00\x01\n",
        b"[]\n",
        b"{\"cmd\":\"reboot\"}\n",
        b"{\"cmd\":null}\n",
        b"{\"nope\":1}\n",
    ] {
        let a = ask(bad);
        assert_eq!(a["ok"], false, "{bad:?}: {a}");
        assert!(a["error"].as_str().is_some_and(|e| !e.is_empty()), "{a}");
    }
    // Same connection, still in step.
    let a = ask(b"{\"cmd\":\"status\"}\r\n");
    assert_eq!(a["ok"], true, "{a}");

    // An endless line: an error, then the connection is closed.
    let t = UnixStream::connect(&d.socket).unwrap();
    t.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = (&t).write_all(&vec![b'x'; 100_000]);
    let mut all = String::new();
    (&t).read_to_string(&mut all).unwrap();
    assert!(all.contains("longer than 4096 bytes"), "{all}");

    // A client that asks and leaves without reading (EPIPE, not SIGPIPE).
    for _ in 0..20 {
        let u = UnixStream::connect(&d.socket).unwrap();
        let _ = (&u).write_all("{\"cmd\":\"stats\"}\n".repeat(500).as_bytes());
    }
    // More clients at once than the daemon keeps: the extra ones are told so.
    let many: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let last = many.last().unwrap();
    last.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut refused = String::new();
    let _ = (&*last).read_to_string(&mut refused);
    assert!(refused.contains("too many clients"), "{refused:?}");
    drop(many);

    let stats = wait_for("the daemon to serve again", || {
        let v = d.request(r#"{"cmd":"stats"}"#);
        (v["ok"] == true).then_some(v)
    });
    assert!(
        stats["data"]["control_bad_requests"].as_u64().unwrap() >= 7,
        "{stats}"
    );
    assert_eq!(d.status()["pid"].as_u64(), Some(u64::from(d.pid())));
}

#[test]
fn sighup_applies_a_good_changed_configuration() {
    let d = Daemon::start("reload-good", CN);
    assert_eq!(d.status()["do_route_optimization_cn"], true);
    d.write_config("NodeConfig CN;\nDebugLevel 1;\nDoRouteOptimizationCN disabled;\n");
    let s = d.reload(1);
    assert_eq!(s["do_route_optimization_cn"], false, "{s}");
    assert_eq!(s["debug_level"], 1);
    let last = &s["last_reload"];
    assert_eq!(last["ok"], true);
    assert_eq!(
        last["applied"],
        serde_json::json!(["DebugLevel", "DoRouteOptimizationCN"])
    );

    // A role change is reported, not applied.
    d.write_config(
        "NodeConfig HA;\nInterface \"lo\";\nDebugLevel 1;\nDoRouteOptimizationCN disabled;\n",
    );
    let s = d.reload(2);
    assert_eq!(s["role"], "CN", "{s}");
    assert_eq!(
        s["restart_needed"],
        serde_json::json!(["NodeConfig (running CN, file says HA)"])
    );
    let out = mip6ctl(&["status", "--socket", d.socket_arg()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("restart needed  NodeConfig (running CN, file says HA)"),
        "{text}"
    );
    assert!(d
        .stderr()
        .contains("NodeConfig (running CN, file says HA) needs a restart"));
}

#[test]
fn sighup_with_a_broken_configuration_keeps_the_old_one() {
    let d = Daemon::start("reload-bad", CN);
    d.write_config("NodeConfig CN;\nDoRouteOptimizationCN maybe;\n");
    let s = d.reload(1);
    let last = &s["last_reload"];
    assert_eq!(last["ok"], false, "{s}");
    let err = last["error"].as_str().unwrap();
    let at = format!("{}:2:", d.config.display());
    assert!(
        err.starts_with(&at),
        "error {err:?} should start with {at:?}"
    );
    assert_eq!(s["do_route_optimization_cn"], true);
    assert_eq!(s["role"], "CN");
    assert!(d.stderr().contains(&at), "{}", d.stderr());
    assert_eq!(d.data("stats")["reloads_failed"], 1);
    let out = mip6ctl(&["status", "--socket", d.socket_arg()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAILED") && text.contains(&at), "{text}");

    // Fixing the file recovers.
    d.write_config("NodeConfig CN;\nDoRouteOptimizationCN disabled;\n");
    let s = d.reload(2);
    assert_eq!(s["last_reload"]["ok"], true);
    assert_eq!(s["do_route_optimization_cn"], false);
}

#[test]
fn sigterm_exits_zero_and_removes_socket_and_pid_file() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut d = Daemon::start("term", CN);
        assert!(exists(&d.socket) && exists(&d.pid_file));
        d.signal(sig);
        let st = d.wait_exit();
        assert_eq!(st.code(), Some(0), "signal {sig}: {st}\n{}", d.stderr());
        assert!(!exists(&d.socket), "socket left behind");
        assert!(!exists(&d.pid_file), "pid file left behind");
        assert!(d.stderr().contains("shutting down"), "{}", d.stderr());
        let out = mip6ctl(&["status", "--socket", d.socket_arg()]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "mip6ctl status: mip6d is not running (no socket at {})\n",
                d.socket.display()
            )
        );
    }
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses() {
    let first = Daemon::start("first", CN);
    let second = Daemon::new("second", CN);
    let out = mip6d_command()
        .args(["-f", "-c"])
        .arg(&second.config)
        .arg("--control-socket")
        .arg(&first.socket)
        .arg("--pid-file")
        .arg(&second.pid_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "another mip6d (pid {}) is already running on {}",
            first.pid(),
            first.socket.display()
        )),
        "{err}"
    );
    // The refused daemon cleaned up its own pid file and left the first one's socket.
    assert!(!exists(&second.pid_file));
    assert_eq!(first.status()["pid"].as_u64(), Some(u64::from(first.pid())));

    // Same pid file: refused too, naming the pid.
    let out = mip6d_command()
        .args(["-f", "-c"])
        .arg(&second.config)
        .arg("--control-socket")
        .arg(second.dir.join("other.sock"))
        .arg("--pid-file")
        .arg(&first.pid_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    assert!(!exists(&second.dir.join("other.sock")));
}

#[test]
fn a_stale_socket_and_pid_file_are_replaced() {
    let mut d = Daemon::new("stale", CN);
    // A socket nobody listens on, as a crash leaves it.
    drop(std::os::unix::net::UnixListener::bind(&d.socket).unwrap());
    std::fs::write(&d.pid_file, "999999999\n").unwrap();
    let cmd = d.command();
    d.spawn(cmd);
    assert_eq!(d.status()["pid"].as_u64(), Some(u64::from(d.pid())));
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let d = Daemon::new("notsock", CN);
    std::fs::write(&d.socket, "precious").unwrap();
    let out = d
        .command()
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&d.socket).unwrap(), "precious");
    assert!(!exists(&d.pid_file));
}

#[test]
fn an_impossible_socket_path_says_why() {
    let d = Daemon::new("nodir", CN);
    let out = mip6d_command()
        .args(["-f", "-c"])
        .arg(&d.config)
        .arg("--control-socket")
        .arg(d.dir.join("missing/dir/mip6d.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create the control socket") && err.contains("does not exist"),
        "{err}"
    );
}

/// Both refusals come before the data path touches the network (no queue, no rule), so
/// these daemons may run in the test host's namespace.
fn start_with_datapath(name: &str, config: &str, path: Option<&std::path::Path>) -> (i32, String) {
    let d = Daemon::new(name, config);
    let mut c = mip6d_command_with_datapath();
    c.args(["-f", "-c"])
        .arg(&d.config)
        .arg("--control-socket")
        .arg(&d.socket)
        .arg("--pid-file")
        .arg(&d.pid_file);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    let out = c.output().unwrap();
    assert!(!exists(&d.socket), "the control socket was removed again");
    assert!(!exists(&d.pid_file), "the pid file was removed again");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_kernel_data_path_is_refused_on_a_kernel_without_mip6() {
    // The probe's objects use a documentation prefix and are deleted at once, so this
    // daemon may probe the test host's namespace.
    let (code, err) = start_with_datapath("kernel", "NodeConfig CN;\nDatapath kernel;\n", None);
    assert_eq!(code, 1, "{err}");
    if mip6d::datapath::probe::kernel_config_option("CONFIG_IPV6_MIP6") == Some(false) {
        assert!(
            err.contains("Datapath kernel")
                && err.contains("CONFIG_IPV6_MIP6")
                && err.contains("Requested type not found"),
            "{err}"
        );
    } else {
        assert!(err.contains("Datapath kernel"), "{err}");
    }
}

#[test]
fn the_user_data_path_without_ip6tables_says_what_to_install() {
    // An empty PATH: ip6tables cannot be found, whatever the machine has.
    let d = daemon_support::temp_dir("nopath");
    let (code, err) = start_with_datapath("noipt", "NodeConfig CN;\nDatapath user;\n", Some(&d));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("install iptables"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn mip6ctl_without_a_daemon_fails_clearly() {
    let dir = temp_dir("nodaemon");
    let sock = dir.join("mip6d.sock");
    for cmd in ["status", "bc", "bul", "stats"] {
        let out = mip6ctl(&[cmd, "--socket", sock.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "mip6ctl {cmd}: mip6d is not running (no socket at {})\n",
                sock.display()
            )
        );
    }
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let out = mip6ctl(&["status", "--socket", sock.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left over from an earlier run"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_file_gets_the_log() {
    let mut d = Daemon::new("logfile", CN);
    let log = d.dir.join("mip6d.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    let mut cmd = d.command();
    cmd.arg("-l").arg(&log);
    d.spawn(cmd);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("earlier line\n"), "appends: {text}");
    assert!(
        text.contains("started: CN role") && text.contains("shutting down"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colours in a file");
}

#[test]
fn background_mode_detaches_and_still_cleans_up() {
    let d = Daemon::new("background", CN);
    // Without -f and with DebugLevel 0 the daemon forks; the parent exits 0 once the
    // child serves.
    let out = mip6d_command()
        .arg("-c")
        .arg(&d.config)
        .arg("--control-socket")
        .arg(&d.socket)
        .arg("--pid-file")
        .arg(&d.pid_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = d.status();
    let pid = s["pid"].as_u64().unwrap() as u32;
    assert_eq!(s["foreground"], false);
    assert_eq!(
        std::fs::read_to_string(&d.pid_file).unwrap().trim(),
        pid.to_string()
    );
    send_signal(pid, libc::SIGTERM);
    wait_for("the detached daemon to remove its socket", || {
        (!exists(&d.socket) && !exists(&d.pid_file)).then_some(())
    });
    wait_for("the detached daemon to exit", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
}

#[test]
fn background_start_failure_is_reported_by_the_parent() {
    let first = Daemon::start("bgfirst", CN);
    let out = mip6d_command()
        .arg("-c")
        .arg(&first.config)
        .arg("--control-socket")
        .arg(&first.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may contain spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state field (3).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn an_idle_daemon_sleeps() {
    let d = Daemon::start("idle", CN);
    // An idle client arms the control timer: it must not turn into a zero timeout.
    let _client = UnixStream::connect(&d.socket).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = cpu_ticks(d.pid());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = cpu_ticks(d.pid()) - before;
    // A busy loop burns about 100 ticks a second; a sleeping daemon none.
    assert!(used <= 5, "{used} clock ticks of CPU in one idle second");
}
