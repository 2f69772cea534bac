//! Which process owns a TCP connection: the connection's socket inode from
//! `/proc/net/tcp6` (this network namespace's table), then the `/proc/PID/fd` links that
//! name `socket:[INODE]`. Read-only; no system call beyond reading files.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::RawFd;

/// `TCP_ESTABLISHED` in the table's `st` column.
const ESTABLISHED: u8 = 1;

/// One row of `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddrV6,
    pub peer: SocketAddrV6,
    pub state: u8,
    pub inode: u64,
}

impl TcpRow {
    pub fn established(&self) -> bool {
        self.state == ESTABLISHED
    }
}

/// `ADDR:PORT` as the kernel prints it: four 32-bit words in host byte order, each as 8
/// hex digits, then the port as 4 hex digits.
fn endpoint(s: &str) -> Option<SocketAddrV6> {
    let (addr, port) = s.split_once(':')?;
    if addr.len() != 32 || !addr.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
        let word = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV6::new(Ipv6Addr::from(bytes), port, 0, 0))
}

/// Parses the table; lines that do not parse are skipped.
pub fn parse_tcp6(text: &str) -> Vec<TcpRow> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(TcpRow {
                local: endpoint(f.get(1)?)?,
                peer: endpoint(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The TCP connections of this network namespace.
pub fn tcp6() -> io::Result<Vec<TcpRow>> {
    Ok(parse_tcp6(&std::fs::read_to_string("/proc/net/tcp6")?))
}

/// Every (pid, descriptor) that holds socket `inode`, the calling process included.
pub fn owners(inode: u64) -> Vec<(u32, RawFd)> {
    let want = format!("socket:[{inode}]");
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // Processes come and go while we look, and some are not ours to read.
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for f in fds.flatten() {
            let Some(fd) = f.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else {
                continue;
            };
            if std::fs::read_link(f.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                out.push((pid, fd));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_the_kernel_table_parse() {
        // [::1]:8000 <- [::1]:40000, established, inode 12345 (little-endian words).
        let text = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:1F40 00000000000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n garbage line\n   1: 0000:0050 x 0A\n";
        let rows = parse_tcp6(text);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = rows[0];
        if cfg!(target_endian = "little") {
            assert_eq!(r.local, "[::1]:8000".parse().unwrap());
            assert_eq!(r.peer, "[::1]:40000".parse().unwrap());
        }
        assert!(r.established());
        assert_eq!(r.inode, 12345);
    }

    #[test]
    fn a_live_connection_is_found_with_its_owner() {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let (std::net::SocketAddr::V6(local), std::net::SocketAddr::V6(peer)) =
            (s.local_addr().unwrap(), s.peer_addr().unwrap())
        else {
            panic!("not IPv6")
        };
        let row = tcp6()
            .unwrap()
            .into_iter()
            .find(|r| r.local == local && r.peer == peer)
            .expect("the accepted connection is in the table");
        let mine = owners(row.inode);
        use std::os::fd::AsRawFd;
        assert!(
            mine.contains(&(std::process::id(), s.as_raw_fd())),
            "{mine:?}"
        );
        drop(c);
    }
}
