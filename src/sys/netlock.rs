//! The donor's network lock: an nftables set of frozen connections whose packets are
//! dropped in both directions. It goes on *before* the socket is frozen and comes off only
//! after the client's route points at the acceptor: otherwise the client's ACKs reach the
//! donor's listener once the frozen socket is closed, and its RST (whose sequence number
//! matches exactly) resets the client's connection (tcp-repair.md, pitfall 3).
//!
//! nftables rather than ip6tables: one set lookup for any number of frozen connections,
//! and adding an element does not rewrite a chain. Through the `nft` command for now (a
//! few ms of fork and exec on the critical path, pitfall 16; nf_tables netlink is the
//! later, faster way).

use std::io::{self, Write};
use std::net::SocketAddrV6;
use std::process::{Command, Stdio};

/// The table and its set, installed in the current network namespace.
#[derive(Debug)]
pub struct NetLock {
    table: String,
}

/// Runs `nft -f -` with `script` on standard input.
fn nft(script: &str) -> io::Result<()> {
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::process::unblock_signals_in_child(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("nft: {e} (the network lock needs nftables: apt-get install nftables)"),
        )
    })?;
    child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("nft: no stdin"))?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft: {}: {}: {}",
            script.trim(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn element(local: &SocketAddrV6, peer: &SocketAddrV6) -> String {
    format!("{} . {} . {}", peer.ip(), peer.port(), local.port())
}

impl NetLock {
    /// Creates (or replaces) table `inet TABLE` with set `frozen` of (client address,
    /// client port, local port) and two chains that drop the set's packets before
    /// anything else sees them (priority -300: before conntrack and any filter). The
    /// table is per network namespace; `TABLE` must be a plain nft identifier.
    pub fn install(table: &str) -> io::Result<NetLock> {
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("network lock table name {table:?}: letters, digits and _ only"),
            ));
        }
        // `add table` then `delete table` makes the script idempotent: a table left by a
        // crashed daemon is replaced, not duplicated.
        nft(&format!(
            "add table inet {table}
delete table inet {table}
table inet {table} {{
  set frozen {{ type ipv6_addr . inet_service . inet_service; }}
  chain input {{
    type filter hook input priority -300; policy accept;
    ip6 saddr . tcp sport . tcp dport @frozen drop
  }}
  chain output {{
    type filter hook output priority -300; policy accept;
    ip6 daddr . tcp dport . tcp sport @frozen drop
  }}
}}
"
        ))?;
        Ok(NetLock {
            table: table.to_string(),
        })
    }

    /// Blocks the connection between `local` (the service address and port) and `peer`.
    pub fn lock(&self, local: &SocketAddrV6, peer: &SocketAddrV6) -> io::Result<()> {
        nft(&format!(
            "add element inet {} frozen {{ {} }}\n",
            self.table,
            element(local, peer)
        ))
    }

    /// Lets the connection's packets through again.
    pub fn unlock(&self, local: &SocketAddrV6, peer: &SocketAddrV6) -> io::Result<()> {
        nft(&format!(
            "delete element inet {} frozen {{ {} }}\n",
            self.table,
            element(local, peer)
        ))
    }

    /// Removes the table and every lock in it.
    pub fn remove(self) -> io::Result<()> {
        nft(&format!("delete table inet {}\n", self.table))
    }
}
