//! Raw IPv6 sockets: `IPPROTO_RAW` to send whole packets we built (IPv6 header included,
//! as the `user` data path must once it adds or strips Mobile IPv6 headers itself), and
//! per-protocol raw sockets (ICMPv6, Mobility Header) to receive.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// `IPPROTO_RAW`: on an `AF_INET6` raw socket, sends carry their own IPv6 header.
pub const IPPROTO_RAW: i32 = 255;
pub const IPPROTO_ICMPV6: i32 = 58;

/// An `AF_INET6`/`SOCK_RAW` socket.
pub struct RawSocket {
    fd: OwnedFd,
}

fn sockaddr_in6(addr: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data (integers and byte arrays) for which the
    // all-zero bit pattern is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = addr.port().to_be();
    sa.sin6_flowinfo = addr.flowinfo().to_be();
    sa.sin6_addr.s6_addr = addr.ip().octets();
    sa.sin6_scope_id = addr.scope_id();
    sa
}

impl RawSocket {
    /// Opens a raw socket for `protocol` (needs `CAP_NET_RAW`).
    pub fn new(protocol: i32) -> io::Result<RawSocket> {
        // SAFETY: socket() takes no pointers; a non-negative return is a fresh fd that
        // nothing else owns, so OwnedFd may take it over (and close it once).
        let fd = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above: `fd` is valid and exclusively ours.
        Ok(RawSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sends `packet`. With `IPPROTO_RAW` it is a whole IPv6 packet and `dst` only picks
    /// the route (it should be the packet's destination); otherwise the kernel prepends
    /// the IPv6 header.
    pub fn send_to(&self, packet: &[u8], dst: Ipv6Addr) -> io::Result<usize> {
        let sa = sockaddr_in6(&SocketAddrV6::new(dst, 0, 0, 0));
        // SAFETY: `packet` is a live slice and we pass its exact length; `sa` is a live
        // sockaddr_in6 and we pass its exact size. sendto does not keep either pointer.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Receives one datagram into `buf`: its length and its source address. For an IPv6
    /// raw socket the data starts *after* the IPv6 header (RFC 3542 §3).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr)> {
        // SAFETY: all-zero is a valid sockaddr_in6 (plain old data).
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: `buf` is a live, writable slice and we pass its length, so the kernel
        // writes only inside it; `sa`/`len` are live and `len` holds `sa`'s size, which
        // bounds what the kernel writes there. Nothing is retained after the call.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sa as *mut libc::sockaddr_in6).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize, Ipv6Addr::from(sa.sin6_addr.s6_addr)))
    }

    /// Bounds how long `recv_from` blocks (`None`: forever); a timeout is `WouldBlock`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_rcvtimeo(self.fd.as_raw_fd(), timeout)
    }
}

impl AsRawFd for RawSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `SO_RCVTIMEO` on any socket fd.
pub(crate) fn set_rcvtimeo(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let tv = match timeout {
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        Some(d) => libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            // Zero means "forever" to the kernel; round a sub-microsecond timeout up.
            tv_usec: d.subsec_micros().max(u32::from(d.as_secs() == 0)) as libc::suseconds_t,
        },
    };
    // SAFETY: `fd` is a socket the caller keeps open for the call; `tv` is a live
    // `timeval` and we pass its exact size, which is what SO_RCVTIMEO reads. The kernel
    // copies the value and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
