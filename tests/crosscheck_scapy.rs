//! Our decoder against scapy's encoder, and scapy's dissector against our encoder.
//! scapy is an implementation we did not write; agreement in both directions is evidence
//! that we read and write the RFC's wire format, not merely our own.

mod common;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

use mip6d::ctl::decode;
use mip6d::hex;
use mip6d::wire::packet;

#[test]
fn scapy_built_packets_decode_to_scapys_fields() {
    let py = common::python_with_scapy();
    let out = Command::new(py)
        .arg(common::crosscheck_dir().join("scapy_build.py"))
        .output()
        .expect("run scapy_build.py");
    assert!(
        out.status.success(),
        "scapy_build.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let raw = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let p = packet::parse(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = decode::render_json(1, &raw, &p, &[]);
        common::assert_subset(&case["expect"], &ours, name);
        seen += 1;
    }
    assert!(seen >= 18, "scapy produced only {seen} packets");
}

#[test]
fn scapy_dissects_our_packets_as_we_meant_them() {
    let py = common::python_with_scapy();
    let packets = common::samples::all();
    let mut child = Command::new(py)
        .arg(common::crosscheck_dir().join("scapy_dissect.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scapy_dissect.py");
    {
        let mut stdin = child.stdin.take().unwrap();
        for (_, bytes) in &packets {
            writeln!(stdin, "{}", hex::encode(bytes)).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "scapy_dissect.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), packets.len());
    for ((name, bytes), line) in packets.iter().zip(lines) {
        let theirs: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            theirs["checksum_matches"], true,
            "{name}: scapy computes another checksum"
        );
        assert_eq!(
            theirs["reencoded_same"], true,
            "{name}: scapy re-encodes differently"
        );
        let p = packet::parse(bytes).unwrap();
        let ours = decode::render_json(1, bytes, &p, &[]);
        common::assert_subset(&theirs["view"], &ours, name);
    }
}
