//! Helpers shared by the cross-check tests: finding the independent tools and comparing
//! their view of a packet with ours.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn crosscheck_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/crosscheck")
}

/// Debian's python3 (where python3-scapy installs), else whatever python3 is on PATH.
/// Fails the test, naming the package to install, when scapy cannot be imported.
pub fn python_with_scapy() -> PathBuf {
    let candidates = [PathBuf::from("/usr/bin/python3"), PathBuf::from("python3")];
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import scapy.layers.inet6"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return py;
        }
    }
    panic!("scapy is not installed: run scripts/setup (apt-get install python3-scapy)");
}

pub fn tshark() -> PathBuf {
    let ok = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tshark is not installed: run scripts/setup (apt-get install tshark)"
    );
    PathBuf::from("tshark")
}

/// Asserts that every key and value in `expected` is present and equal in `actual`
/// (objects compared key by key, arrays element by element with equal lengths).
pub fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k}: missing in ours: {actual}"));
                assert_subset(ev, av, &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(
                e.len(),
                a.len(),
                "{path}: lengths differ: {expected} vs {actual}"
            );
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

/// A classic pcap file (link type 101, raw IP) holding `packets`.
pub fn pcap_raw(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        v.extend_from_slice(&(i as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(p.len() as u32).to_le_bytes());
        v.extend_from_slice(&(p.len() as u32).to_le_bytes());
        v.extend_from_slice(p);
    }
    v
}
pub mod samples;
