//! A scratch network namespace for one test, with a guard that removes it (also when the
//! test fails), and iproute2 inside it as an independent witness.
//!
//! Included with `#[path = "support/scratch_ns.rs"] mod scratch_ns;` next to `testbed`.
#![allow(dead_code)]

use std::process::Command;

use mip6d::sys::netns;
use serde_json::Value;

use super::testbed::ip_netns;

/// A network namespace for one test, removed on drop (also when the test fails).
pub struct Ns(pub String);

impl Ns {
    pub fn new(tag: &str) -> Ns {
        let name = format!("rtnl-{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("spawn ip")
            .success();
        assert!(ok, "ip netns add {name}");
        Ns(name)
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        netns::run_in(&self.0, f).expect("enter namespace")
    }

    /// Runs `cmd` in the namespace; its stdout.
    pub fn sh(&self, cmd: &[&str]) -> String {
        ip_netns(&self.0, cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut cmd = vec!["ip"];
        cmd.extend_from_slice(args);
        ip_netns(&self.0, &cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -N -j ARGS` parsed (numeric, so protocol 16 is "16" whatever rt_protos says).
    pub fn ip_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["-N", "-j"];
        all.extend_from_slice(args);
        let out = self.ip(&all);
        if out.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str(&out) {
            Ok(Value::Array(v)) => v,
            other => panic!("ip {all:?}: not a JSON array: {other:?}\n{out}"),
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A field of iproute2's JSON as text, whether it printed a string or a number.
pub fn json_field(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("{key} missing in {v}: {other:?}"),
    }
}
