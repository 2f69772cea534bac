//! A TCP connection from a chosen local address. The handoff's control connections must
//! leave from the node's own address (`LocalAddress`): on a kernel with
//! `CONFIG_IPV6_MIP6`, source address selection prefers a home address (RFC 6724 rule
//! 4), and a contact node holds the DSA as one — a connection from the DSA to another
//! server node, which owns the DSA too, would never see its answer.

use std::io;
use std::mem::size_of;
use std::net::{Ipv6Addr, SocketAddrV6, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn sockaddr(a: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain integers and arrays; all-zero is a valid value.
    let mut s: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    s.sin6_port = a.port().to_be();
    s.sin6_addr.s6_addr = a.ip().octets();
    s.sin6_scope_id = a.scope_id();
    s
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Connects to `to` from `local` (any port), giving up after `timeout` with `TimedOut`.
pub fn connect_from(local: Ipv6Addr, to: SocketAddrV6, timeout: Duration) -> io::Result<TcpStream> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new descriptor
    // that nothing else owns.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_TCP,
        )
    };
    check(raw)?;
    // SAFETY: see above.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    let from = sockaddr(&SocketAddrV6::new(local, 0, 0, 0));
    // SAFETY: `from` is a live sockaddr_in6 of exactly `len` bytes; bind only reads it.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&from as *const libc::sockaddr_in6).cast(),
            len,
        )
    })?;
    let dst = sockaddr(&to);
    // SAFETY: as for bind.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&dst as *const libc::sockaddr_in6).cast(),
            len,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one live pollfd, count 1.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        check(n)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ));
        }
        let mut err: libc::c_int = 0;
        let mut elen = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `elen` are live locals of the sizes given; the kernel writes
        // at most `elen` bytes.
        check(unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut elen,
            )
        })?;
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
    }
    let s = TcpStream::from(fd);
    s.set_nonblocking(false)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn connects_from_the_address_asked_for() {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let std::net::SocketAddr::V6(to) = l.local_addr().unwrap() else {
            panic!("not IPv6")
        };
        let mut c = connect_from(Ipv6Addr::LOCALHOST, to, Duration::from_secs(5)).unwrap();
        let (mut s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(c.local_addr().unwrap(), peer);
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        // An address this host does not hold cannot be the source.
        let e = connect_from(
            "2001:db8:ffff::9".parse().unwrap(),
            to,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    }
}
