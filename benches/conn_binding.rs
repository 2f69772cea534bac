//! Taking one handed-off connection onto the acceptor's per-connection data path, and
//! off again: the way it was (three ip6tables rules naming the connection's five-tuple,
//! one `ip6tables` process per rule and per deletion: the baseline) against the way it
//! is (set elements by netlink on the node's constant rules, `ConnPaths::add` and the
//! path's drop). Both run in a private network namespace in the same invocation; the
//! ratio is what counts. Needs root, ip6tables and ipset support in the kernel.
//!
//!     cargo bench --bench conn_binding

use std::net::SocketAddrV6;
use std::process::Command;
use std::sync::mpsc;

use mip6d::datapath::conn_binding::ConnBinding;
use mip6d::datapath::user::Rule;
use mip6d::dsnode::conn_path::ConnPaths;
use mip6d::sys::netns;

#[path = "support/mod.rs"]
mod support;

const QUEUE: u16 = 7790;

/// The namespace, removed even when the benchmark fails.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The per-connection rules as they were before the sets (one per five-tuple).
fn five_tuple_rules(b: &ConnBinding, queue: u16) -> Vec<Rule> {
    let peer = format!("{}/128", b.peer.ip());
    let coa = format!("{}/128", b.coa);
    let dsa = format!("{}/128", b.local.ip());
    let (pp, lp) = (b.peer.port().to_string(), b.local.port().to_string());
    let (q, q1) = (queue.to_string(), (queue + 1).to_string());
    vec![
        Rule::new(
            "raw",
            "PREROUTING",
            &[
                "-s",
                &peer,
                "-d",
                &coa,
                "-p",
                "135",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
            ],
        ),
        Rule::new(
            "raw",
            "PREROUTING",
            &[
                "-s",
                &peer,
                "-d",
                &coa,
                "-p",
                "tcp",
                "--sport",
                &pp,
                "--dport",
                &lp,
                "-m",
                "rt",
                "--rt-type",
                "2",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
            ],
        ),
        Rule::new(
            "raw",
            "OUTPUT",
            &[
                "-s",
                &dsa,
                "-d",
                &peer,
                "-p",
                "tcp",
                "--sport",
                &lp,
                "--dport",
                &pp,
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q1,
            ],
        ),
    ]
}

fn binding(port: u16) -> ConnBinding {
    ConnBinding {
        local: "[2001:db8:1::200]:8000".parse().unwrap(),
        peer: SocketAddrV6::new("2001:db8:10::2".parse().unwrap(), port, 0, 0),
        coa: "2001:db8:32::2".parse().unwrap(),
    }
}

fn bench() -> Result<(), String> {
    let paths = ConnPaths::open(QUEUE).map_err(|e| format!("open the data path: {e}"))?;
    let mut forks = || {
        let rules = five_tuple_rules(&binding(40000), QUEUE + 2);
        for r in &rules {
            r.add().expect("ip6tables -A");
        }
        for r in &rules {
            r.delete().expect("ip6tables -D");
        }
    };
    let mut port = 40000u16;
    let mut sets = || {
        port = port.wrapping_add(1).max(1024);
        let (tx, _rx) = mpsc::channel();
        drop(paths.add(binding(port), tx).expect("set elements"));
    };
    let cases: Vec<(&str, support::Case)> = vec![
        ("ip6tables: 3 rules add+del", Box::new(&mut forks)),
        ("ip set: 3 elements add+del", Box::new(&mut sets)),
    ];
    println!(
        "{:<30} {:>12} {:>10}",
        "one connection on and off", "us/op", "x baseline"
    );
    let mut baseline = None;
    for (name, mut f) in cases {
        // Forks take milliseconds: a few calls make a round, and a smoke run does one.
        let iters = if support::benching() { 20 } else { 1 };
        let ns = support::measure(iters, &mut f);
        let base = *baseline.get_or_insert(ns);
        println!("{:<30} {:>12.1} {:>10.4}", name, ns / 1e3, ns / base);
    }
    Ok(())
}

fn main() {
    let ns = Netns(format!("m6bench-connbinding-{}", std::process::id()));
    let ok = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "ip netns add {} failed (root and iproute2 needed)",
        ns.0
    );
    match netns::run_in(&ns.0, bench) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e} (needs root, ip6tables: apt-get install iptables)"),
        Err(e) => panic!("namespace {}: {e}", ns.0),
    }
}
