//! The donor's network lock must stop a frozen connection's segments before the raw
//! table, where the user data paths queue a node's outgoing segments to mip6d (which
//! tunnels them: the tunnelled packet no longer matches the lock). Hooks of equal
//! priority run newest first, so a raw OUTPUT chain created after the lock table would
//! see the segments first if the lock shared its priority (-300): the VM's handoffs
//! then leaked the frozen socket's transmissions to the client (issue 9).

#[path = "support/scratch_ns.rs"]
mod scratch_ns;
#[path = "support/testbed.rs"]
mod testbed;

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::time::Duration;

use mip6d::sys::netlock::NetLock;
use scratch_ns::Ns;
use testbed::Tool;

/// Packets the raw OUTPUT rule matching `spec` counted.
fn raw_output_packets(ns: &Ns, spec: &str) -> u64 {
    let out = ns.sh(&["ip6tables", "-t", "raw", "-L", "OUTPUT", "-v", "-n", "-x"]);
    let line = out
        .lines()
        .find(|l| l.contains(spec))
        .unwrap_or_else(|| panic!("no raw OUTPUT rule with {spec:?}:\n{out}"));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {line:?}"))
}

#[test]
fn lock_drops_before_a_raw_output_chain_created_after_it() {
    testbed::require("netlock_order", &[Tool::Ip, Tool::Ip6tables]);
    testbed::require_commands("netlock_order", &[("nft", "nftables")]);
    let ns = Ns::new("lockorder");
    ns.ip(&["link", "set", "lo", "up"]);
    let (mut lock, server, client) = ns.run(|| {
        let lock = NetLock::install("hovm_lock").expect("install the network lock");
        let l = TcpListener::bind(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0)).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (lock, s, c)
    });
    let (local, peer) = match (server.local_addr().unwrap(), server.peer_addr().unwrap()) {
        (std::net::SocketAddr::V6(l), std::net::SocketAddr::V6(p)) => (l, p),
        other => panic!("not IPv6: {other:?}"),
    };
    // Created after the lock table, as mip6d's reverse-tunnel queue rule is when the
    // contact node finds itself away after its handoff machine started.
    let spec = format!("tcp spt:{} dpt:{}", local.port(), peer.port());
    ns.sh(&[
        "ip6tables",
        "-t",
        "raw",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "--sport",
        &local.port().to_string(),
        "--dport",
        &peer.port().to_string(),
        "-j",
        "ACCEPT",
    ]);
    let mut server = server;
    server.write_all(b"before the lock").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let before = raw_output_packets(&ns, &spec);
    assert!(
        before >= 1,
        "the raw rule counts the connection's segments ({before})"
    );

    lock.lock(&local, &peer).expect("lock");
    server.write_all(&[7u8; 20_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = raw_output_packets(&ns, &spec);
    lock.unlock(&local, &peer).expect("unlock");
    drop(client);
    assert_eq!(
        after, before,
        "segments of the locked connection reached the raw table (priority -300): \
         the lock must drop them first"
    );
}
