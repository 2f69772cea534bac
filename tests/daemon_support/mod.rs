//! Runs the real `mip6d` binary in the foreground with its own configuration, control
//! socket and pid file in a fresh directory, and talks to it like an operator would.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine, short enough that a hang fails the test.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mip6d-t{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `f` until it returns Some, or panics after [`PATIENCE`] with `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `mip6d` command with an environment that does not depend on where the tests run,
/// with `--no-datapath`: these daemons run side by side in the test host's network
/// namespace, where the user data path would add netfilter rules and bind one queue
/// number for all of them. `tests/cn_daemon.rs` runs the data path, in the testbed.
pub fn mip6d_command() -> Command {
    let mut c = mip6d_command_with_datapath();
    c.arg("--no-datapath");
    c
}

/// As [`mip6d_command`], with the data path on.
pub fn mip6d_command_with_datapath() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mip6d"));
    for v in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
    c
}

pub fn mip6ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mip6ctl"))
        .args(args)
        .output()
        .unwrap()
}

/// `mip6ctl WHAT --json --socket SOCKET`, parsed; fails the test if it does not succeed.
pub fn mip6ctl_json(socket: &std::path::Path, what: &str) -> serde_json::Value {
    let out = mip6ctl(&[what, "--json", "--socket", socket.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "mip6ctl {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mip6ctl --json prints JSON")
}

pub fn send_signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we started; no memory is involved.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

pub struct Daemon {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    /// Paths in a fresh directory; the daemon is not started.
    pub fn new(name: &str, config: &str) -> Daemon {
        let dir = temp_dir(name);
        let d = Daemon {
            config: dir.join("mip6d.conf"),
            socket: dir.join("mip6d.sock"),
            pid_file: dir.join("mip6d.pid"),
            log: dir.join("stderr.log"),
            dir,
            child: None,
        };
        d.write_config(config);
        d
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// The command that starts this daemon in the foreground.
    pub fn command(&self) -> Command {
        let mut c = mip6d_command();
        c.arg("-f")
            .arg("-c")
            .arg(&self.config)
            .arg("--control-socket")
            .arg(&self.socket)
            .arg("--pid-file")
            .arg(&self.pid_file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap());
        c
    }

    /// Starts (or restarts, with the same files) this daemon with its data path inside
    /// network namespace `ns` (`ip netns exec` execs it: same pid), and waits until its
    /// socket answers.
    pub fn spawn_in_netns(&mut self, ns: &str) {
        self.spawn_in_netns_with(ns, &[]);
    }

    /// As [`spawn_in_netns`](Self::spawn_in_netns), with more command-line arguments.
    pub fn spawn_in_netns_with(&mut self, ns: &str, args: &[&str]) {
        self.spawn_in_netns_with_env(ns, args, &[]);
    }

    /// As [`spawn_in_netns_with`](Self::spawn_in_netns_with), with environment variables.
    pub fn spawn_in_netns_with_env(&mut self, ns: &str, args: &[&str], env: &[(&str, &str)]) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(env!("CARGO_BIN_EXE_mip6d"))
            .args(args)
            .arg("-f")
            .arg("-c")
            .arg(&self.config)
            .arg("--control-socket")
            .arg(&self.socket)
            .arg("--pid-file")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap());
        for v in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "JOURNAL_STREAM",
            "RUST_LOG",
        ] {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        self.spawn(cmd);
    }

    pub fn spawn(&mut self, mut cmd: Command) {
        self.child = Some(cmd.spawn().unwrap());
        self.wait_ready();
    }

    /// Starts the daemon and waits until its socket answers.
    pub fn start(name: &str, config: &str) -> Daemon {
        let mut d = Daemon::new(name, config);
        let cmd = d.command();
        d.spawn(cmd);
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Readiness as a client sees it: the socket answers `status`.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if self.try_request(r#"{"cmd":"status"}"#).is_some() {
                return;
            }
            if let Some(child) = &mut self.child {
                if let Some(st) = child.try_wait().unwrap() {
                    panic!(
                        "mip6d exited with {st} before it was ready:\n{}",
                        self.stderr()
                    );
                }
            }
            assert!(
                start.elapsed() < PATIENCE,
                "mip6d did not answer on {} within {PATIENCE:?}:\n{}",
                self.socket.display(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_request(&self, line: &str) -> Option<Value> {
        let s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        (&s).write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        BufReader::new(&s).read_line(&mut answer).ok()?;
        serde_json::from_str(&answer).ok()
    }

    /// One raw request line and its parsed answer.
    pub fn request(&self, line: &str) -> Value {
        self.try_request(line)
            .unwrap_or_else(|| panic!("no answer to {line}:\n{}", self.stderr()))
    }

    /// `data` of a successful command.
    pub fn data(&self, cmd: &str) -> Value {
        let v = self.request(&format!(r#"{{"cmd":"{cmd}"}}"#));
        assert_eq!(v["ok"], Value::Bool(true), "{cmd}: {v}");
        v["data"].clone()
    }

    pub fn status(&self) -> Value {
        self.data("status")
    }

    pub fn signal(&self, sig: libc::c_int) {
        send_signal(self.pid(), sig);
    }

    /// Sends SIGHUP and waits until the daemon has counted reload number `n`.
    pub fn reload(&self, n: u64) -> Value {
        self.signal(libc::SIGHUP);
        wait_for("the reload to be counted", || {
            let s = self.status();
            (s["reloads"].as_u64() == Some(n)).then_some(s)
        })
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("started");
        let st = wait_for("mip6d to exit", || child.try_wait().unwrap());
        self.child = None;
        st
    }

    pub fn socket_arg(&self) -> &str {
        self.socket.to_str().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
