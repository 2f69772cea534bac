//! The namespace testbed (`testbed/run`) from a test's side: the environment checks every
//! root test makes, and a [`Testbed`] guard whose drop runs `down`, so that a failed
//! assertion still removes every namespace it created.
//!
//! Included with `#[path = "support/testbed.rs"] mod testbed;` by the tests (and by
//! `examples/rr_client.rs` for the helpers `mn_stub` uses).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A finished command, exit status and both streams, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` inside namespace `ns` (`ip netns exec`); its stdout, or an error with all
/// it said.
pub fn ip_netns(ns: &str, cmd: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .map_err(|e| format!("spawn ip netns exec: {e}"))?;
    if !out.status.success() {
        return Err(format!("{ns}: {cmd:?}:\n{}", text(&out)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The testbed's state file (`testbed/README.md`, "State file"): `KEY=value` lines.
pub fn read_state(path: &Path) -> Result<HashMap<String, String>, String> {
    let body =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(body
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn tool_runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What a root test needs besides root.
#[derive(Clone, Copy)]
pub enum Tool {
    Ip,
    Ip6tables,
    Ping,
    Ipset,
    Strace,
}

/// Fails — never skips — naming what to install when the test cannot run here: a silently
/// skipped network test is indistinguishable from a passing one.
pub fn require(test: &str, tools: &[Tool]) {
    let mut missing = Vec::new();
    if effective_uid() != Some(0) {
        missing.push(format!(
            "root (namespaces, netfilter queues and raw sockets need it): run `sudo -E cargo test --test {test}`"
        ));
    }
    for t in tools {
        let (cmd, arg, package) = match t {
            Tool::Ip => ("ip", "-V", "iproute2"),
            Tool::Ip6tables => ("ip6tables", "-V", "iptables"),
            Tool::Ping => ("ping", "-V", "iputils-ping"),
            Tool::Ipset => ("ipset", "version", "ipset"),
            Tool::Strace => ("strace", "-V", "strace"),
        };
        if !tool_runs(cmd, arg) {
            missing.push(format!("the `{cmd}` command: apt-get install {package}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{test} cannot run; it needs:\n  - {}",
        missing.join("\n  - ")
    );
}

/// Names of the host's network namespaces that belong to testbed `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mine = format!("{prefix}-");
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&mine))
        .map(str::to_string)
        .collect()
}

/// Fails, naming the Debian package, when one of `cmds` (command, package) is missing.
pub fn require_commands(test: &str, cmds: &[(&str, &str)]) {
    for (cmd, package) in cmds {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{test} needs `{cmd}`: apt-get install {package} (scripts/setup does)"
        );
    }
}

/// A finished `testbed/run` scenario (`mipv6`, `dhaad`, `bench-datapath`, ...).
pub struct ScenarioRun {
    pub out: Output,
    pub stdout: String,
    /// The `*.log` and `*.diff` files of its run directory, for assertion messages.
    pub logs: String,
    /// Namespaces it left (removed by now; a scenario must not leave any).
    pub left: Vec<String>,
    state: PathBuf,
}

impl ScenarioRun {
    /// `PASS` lines printed.
    pub fn passes(&self) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("PASS "))
            .count()
    }

    /// The scenario's state directory (its run directories are inside).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Removes the state directory (keep it when the run failed: it has the logs).
    pub fn remove_state(&self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Runs `testbed/run --prefix PREFIX ARGS...` with `env` (the test's own binaries, e.g.
/// `M6_MIP6D`), in a state directory of its own, then removes whatever namespace of that
/// prefix is left, so that a failed scenario cannot leak into the next test. `run_dir`
/// names the run directory under the state directory whose logs are collected.
pub fn run_scenario(
    prefix: &str,
    args: &[&str],
    env: &[(&str, String)],
    run_dir: &str,
) -> ScenarioRun {
    let state = std::env::temp_dir().join(format!("mip6d-testbed-{prefix}"));
    std::fs::create_dir_all(&state).unwrap();
    let run = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/run");
    let mut cmd = Command::new(run);
    cmd.args(["--prefix", prefix])
        .args(args)
        .env("M6_STATE_DIR", &state)
        .env("M6_QUIET", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn testbed/run");
    let left = namespaces_with_prefix(prefix);
    if !left.is_empty() {
        let _ = Command::new(run)
            .args(["--prefix", prefix, "down"])
            .env("M6_STATE_DIR", &state)
            .output();
        for ns in namespaces_with_prefix(prefix) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
    let logs = std::fs::read_dir(state.join(run_dir))
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
    ScenarioRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        out,
        logs,
        left,
        state,
    }
}

/// One testbed instance with its own prefix and state directory.
pub struct Testbed {
    pub prefix: String,
    pub state_dir: PathBuf,
    pub state: HashMap<String, String>,
}

impl Testbed {
    /// `testbed/run up`, then, with `mn_link`, `move mn <link>`.
    pub fn up(prefix: String, mn_link: Option<&str>) -> Testbed {
        Testbed::up_with(prefix, &[], mn_link)
    }

    /// `testbed/run up UP_ARGS...` (e.g. `--emulator user`), then as [`Testbed::up`].
    pub fn up_with(prefix: String, up_args: &[&str], mn_link: Option<&str>) -> Testbed {
        let state_dir = std::env::temp_dir().join(format!("mip6d-testbed-{prefix}"));
        std::fs::create_dir_all(&state_dir).expect("create state dir");
        let mut tb = Testbed {
            prefix,
            state_dir,
            state: HashMap::new(),
        };
        let out = tb.run(&[&["up"], up_args].concat());
        assert!(out.status.success(), "testbed/run up:\n{}", text(&out));
        if let Some(link) = mn_link {
            let out = tb.run(&["move", "mn", link]);
            assert!(out.status.success(), "testbed/run move:\n{}", text(&out));
        }
        tb.reload_state();
        tb
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed/run"))
            .arg("--prefix")
            .arg(&self.prefix)
            .args(args)
            .env("M6_STATE_DIR", &self.state_dir)
            .env("M6_QUIET", "1")
            .output()
            .expect("spawn testbed/run")
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join(format!("{}.env", self.prefix))
    }

    /// Re-reads the state file (`move` updates it).
    pub fn reload_state(&mut self) {
        self.state = read_state(&self.state_file()).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn addr(&self, key: &str) -> Ipv6Addr {
        self.state
            .get(key)
            .unwrap_or_else(|| panic!("state file has no {key}: {:?}", self.state.keys()))
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Away from home, the mobile node must still own its home address: it goes on the
    /// MN's `lo` (the user data path's tests and the stub MN rely on it).
    pub fn give_mn_its_home_address(&self, hoa: Ipv6Addr) {
        self.sh(
            "mn",
            &[
                "ip",
                "addr",
                "add",
                &format!("{hoa}/128"),
                "dev",
                "lo",
                "nodad",
            ],
        );
    }

    /// Runs a command in `node`'s namespace and insists it succeeds.
    pub fn sh(&self, node: &str, cmd: &[&str]) -> String {
        ip_netns(&self.ns(node), cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The members of IP set `set` in `node` (`ipset list`), sorted; `None` when the set
    /// does not exist.
    pub fn set_members(&self, node: &str, set: &str) -> Option<Vec<String>> {
        let listed = ip_netns(&self.ns(node), &["ipset", "list", set]).ok()?;
        let mut m: Vec<String> = listed
            .lines()
            .skip_while(|l| !l.starts_with("Members:"))
            .skip(1)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        m.sort();
        Some(m)
    }

    /// The names of the IP sets in `node`.
    pub fn set_names(&self, node: &str) -> Vec<String> {
        self.sh(node, &["ipset", "list", "-n"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
        let _ = std::fs::remove_dir_all(&self.state_dir);
        if !std::thread::panicking() {
            let left = namespaces_with_prefix(&self.prefix);
            assert!(left.is_empty(), "namespaces left behind: {left:?}");
        }
    }
}

/// Whether the running kernel has `CONFIG_IPV6_MIP6`, for the tests that take another
/// branch on a MIP6 kernel. Under `scripts/vm-test` (`M6_EXPECT_MIP6=1`) the answer must
/// be yes: a VM kernel whose configuration cannot be read, or says no, would otherwise let
/// those tests pass on their "refused" branch and prove nothing.
pub fn mip6_kernel(test: &str) -> Option<bool> {
    let mip6 = mip6d::datapath::probe::kernel_config_option("CONFIG_IPV6_MIP6");
    if std::env::var_os("M6_EXPECT_MIP6").is_some() {
        assert_eq!(
            mip6,
            Some(true),
            "{test}: M6_EXPECT_MIP6 is set, yet the kernel configuration (/proc/config.gz, \
             /boot/config-$(uname -r)) does not show CONFIG_IPV6_MIP6"
        );
    }
    mip6
}

/// Marks, on stderr, that a test ran the branch of a kernel with MIP6 (or ip6_tunnel).
/// `scripts/vm-test` requires these lines: inside its VM the supported branches must run.
pub fn ran_supported_branch(test: &str) {
    eprintln!("M6-SUPPORTED-BRANCH {test}");
}

/// The Tcp and TcpExt counters of namespace `ns` (/proc/net/snmp, /proc/net/netstat).
pub fn tcp_counters(ns: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for file in ["/proc/net/snmp", "/proc/net/netstat"] {
        let text = ip_netns(ns, &["cat", file]).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            if let [head, vals] = pair {
                let proto = head.split(':').next().unwrap_or("");
                for (k, v) in head.split_whitespace().zip(vals.split_whitespace()).skip(1) {
                    if let Ok(v) = v.parse() {
                        m.insert(format!("{proto}{k}"), v);
                    }
                }
            }
        }
    }
    m
}
