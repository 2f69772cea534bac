//! The donor's network lock: an nftables set of frozen connections whose packets are
//! dropped in both directions. It goes on *before* the socket is frozen and comes off only
//! after the client's route points at the acceptor: otherwise the client's ACKs reach the
//! donor's listener once the frozen socket is closed, and its RST (whose sequence number
//! matches exactly) resets the client's connection (tcp-repair.md, pitfall 3).
//!
//! nftables rather than ip6tables: one set lookup for any number of frozen connections,
//! and adding an element does not rewrite a chain. The table is created once with the
//! `nft` command; locking and unlocking — on the handoff's critical path — are one
//! nf_tables netlink batch each (a fork and exec of `nft` costs 3–25 ms here, pitfall 16),
//! built by [`super::nft_sets::element_batch`]:
//!
//! ```text
//! batch begin   type NFNL_MSG_BATCH_BEGIN (16), nfgenmsg { AF_UNSPEC, 0, be16 NFNL_SUBSYS_NFTABLES }
//! element       type NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM (12) / DELSETELEM (14)
//!               nfgenmsg { NFPROTO_INET, 0, 0 }
//!               NFTA_SET_ELEM_LIST_TABLE "name\0", NFTA_SET_ELEM_LIST_SET "frozen\0",
//!               NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY {
//!                 NFTA_DATA_VALUE: client address (16) | client port (2) 0 0 | local port (2) 0 0 }}}
//! batch end     type NFNL_MSG_BATCH_END (17)
//! ```
//! (each field of a concatenated key fills whole 32-bit registers, hence the padding).

use std::io::{self, Write};
use std::net::SocketAddrV6;
use std::process::{Command, Stdio};

use netlink_sys::protocols::NETLINK_NETFILTER;

use super::netlink::Requester;

const SET: &str = "frozen";

/// The lock's chains run before the raw table (-300), where the user data paths queue
/// the node's outgoing segments to mip6d, which tunnels them or gives them a Home Address
/// option: a rewritten segment no longer matches the set, so a lock behind the queue
/// lets the frozen socket's transmissions through to the client, which then holds data
/// the dump calls unsent — and the acceptor, never having sent it, drops every ACK for
/// it. Hooks of equal priority run newest first, so at -300 the order would depend on
/// whether mip6d or ip6tables created its chain last.
pub const PRIORITY: i32 = -310;

/// The table and its set, installed in the network namespace the thread that called
/// [`NetLock::install`] was in; the lock works on that namespace from any thread.
pub struct NetLock {
    table: String,
    nl: Requester,
}

impl std::fmt::Debug for NetLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetLock")
            .field("table", &self.table)
            .finish()
    }
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

/// The set key of a connection: (client address, client port, local port).
fn key(local: &SocketAddrV6, peer: &SocketAddrV6) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&peer.ip().octets());
    k[16..18].copy_from_slice(&peer.port().to_be_bytes());
    k[20..22].copy_from_slice(&local.port().to_be_bytes());
    k
}

/// One batch adding (`add`) or deleting an element of `table`'s set; the element
/// message, numbered `seq`, asks for an acknowledgement.
fn element_batch(seq: u32, add: bool, table: &str, key: &[u8; 24]) -> io::Result<Vec<u8>> {
    super::nft_sets::element_batch(seq, add, super::nft_sets::NFPROTO_INET, table, SET, key)
}

impl NetLock {
    /// Creates (or replaces) table `inet TABLE` with set `frozen` of (client address,
    /// client port, local port) and two chains that drop the set's packets before
    /// anything else sees them ([`PRIORITY`]). The table is per network namespace;
    /// `TABLE` must be a plain nft identifier.
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
    type filter hook input priority {PRIORITY}; policy accept;
    ip6 saddr . tcp sport . tcp dport @frozen drop
  }}
  chain output {{
    type filter hook output priority {PRIORITY}; policy accept;
    ip6 daddr . tcp dport . tcp sport @frozen drop
  }}
}}
"
        ))?;
        Ok(NetLock {
            table: table.to_string(),
            nl: Requester::open(NETLINK_NETFILTER)?,
        })
    }

    /// Blocks the connection between `local` (the service address and port) and `peer`.
    pub fn lock(&mut self, local: &SocketAddrV6, peer: &SocketAddrV6) -> io::Result<()> {
        self.element(true, local, peer)
            .map_err(|e| io::Error::new(e.kind(), format!("network lock {peer}: {e}")))
    }

    /// Lets the connection's packets through again.
    pub fn unlock(&mut self, local: &SocketAddrV6, peer: &SocketAddrV6) -> io::Result<()> {
        self.element(false, local, peer)
            .map_err(|e| io::Error::new(e.kind(), format!("network unlock {peer}: {e}")))
    }

    fn element(&mut self, add: bool, local: &SocketAddrV6, peer: &SocketAddrV6) -> io::Result<()> {
        // Three numbers per batch: begin, element, end; the element's is acknowledged.
        let seq = self.nl.next_seq();
        self.nl.next_seq();
        self.nl.next_seq();
        let batch = element_batch(seq, add, &self.table, &key(local, peer))?;
        self.nl.transact(seq, &batch, |_| Ok(()))
    }

    /// Removes the table and every lock in it.
    pub fn remove(self) -> io::Result<()> {
        nft(&format!("delete table inet {}\n", self.table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pads_each_field_to_whole_registers() {
        let local: SocketAddrV6 = "[fd00:5e::1]:8000".parse().unwrap();
        let peer: SocketAddrV6 = "[fd00:c::1]:41234".parse().unwrap();
        let k = key(&local, &peer);
        assert_eq!(&k[..16], &peer.ip().octets());
        assert_eq!(&k[16..20], &[0xa1, 0x12, 0, 0]);
        assert_eq!(&k[20..24], &[0x1f, 0x40, 0, 0]);
    }

    #[test]
    fn batch_is_begin_element_end_with_the_ack_on_the_element() {
        use crate::sys::netlink::{NLM_F_ACK, NLM_F_CREATE};
        use crate::sys::nft_sets::NFPROTO_INET;
        let b = element_batch(10, true, "t", &[7; 24]).unwrap();
        let len0 = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        assert_eq!(len0, 20);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 16);
        let m = &b[len0..];
        let len1 = u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize;
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            (10 << 8) | 12
        );
        let flags = u16::from_ne_bytes(m[6..8].try_into().unwrap());
        assert_eq!(
            flags,
            crate::sys::netlink::NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 10);
        assert_eq!(m[16], NFPROTO_INET);
        // The key travels whole, innermost.
        assert!(m[..len1].windows(24).any(|w| w == [7; 24]));
        let end = &m[len1..];
        assert_eq!(end.len(), 20);
        assert_eq!(u16::from_ne_bytes(end[4..6].try_into().unwrap()), 17);
        assert_eq!(&end[16..20], &[0, 0, 0, 10]);
    }
}
