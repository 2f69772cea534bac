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
/// `<linux/in6.h>`; the libc crate does not export it.
const IPV6_JOIN_ANYCAST: libc::c_int = 27;
/// `<linux/icmpv6.h>` ICMPV6_FILTER, at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// The kernel's `struct icmp6_filter`: a set bit blocks that type (RFC 3542 §3.2, as
/// Linux implements it).
fn icmp6_filter_pass(types: &[u8]) -> [u32; 8] {
    let mut f = [u32::MAX; 8];
    for t in types {
        f[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    f
}

/// `setsockopt` with a value of type `T` (plain old data).
fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `fd` is an open socket we own; `value` is a live `T` and we pass its exact
    // size, which is what the option reads; the kernel copies it and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

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

    /// Sends `packet` (a whole IPv6 packet on an `IPPROTO_RAW` socket) out of interface
    /// `ifindex`: link-scoped destinations (Neighbour Discovery multicast) need one.
    pub fn send_on(&self, packet: &[u8], dst: Ipv6Addr, ifindex: u32) -> io::Result<usize> {
        let sa = sockaddr_in6(&SocketAddrV6::new(dst, 0, 0, ifindex));
        // SAFETY: as in `send_to`: live slice with its exact length, live sockaddr_in6
        // with its exact size, neither kept by the kernel.
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

    /// Joins the anycast address `addr` on interface `ifindex` (`IPV6_JOIN_ANYCAST`): the
    /// kernel then answers Neighbour Solicitations for it and delivers packets sent to
    /// it. The membership lasts as long as the socket.
    pub fn join_anycast(&self, addr: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: addr.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        setsockopt(&self.fd, libc::IPPROTO_IPV6, IPV6_JOIN_ANYCAST, &mreq)
    }

    /// Whether multicast this socket sends comes back to local listeners
    /// (`IPV6_MULTICAST_LOOP`): off for Neighbour Discovery, so our own DAD probe does not
    /// look like another node's.
    pub fn set_multicast_loop(&self, on: bool) -> io::Result<()> {
        let v: libc::c_int = on.into();
        setsockopt(&self.fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &v)
    }

    /// Lets only the ICMPv6 `types` through to this socket (`ICMP6_FILTER`, RFC 3542
    /// §3.2): a raw ICMPv6 socket otherwise gets a copy of every ICMPv6 packet.
    pub fn set_icmp6_filter(&self, types: &[u8]) -> io::Result<()> {
        setsockopt(
            &self.fd,
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            &icmp6_filter_pass(types),
        )
    }

    /// Receives only what arrives on interface `name` (`SO_BINDTODEVICE`).
    pub fn bind_device(&self, name: &str) -> io::Result<()> {
        let mut ifname = [0u8; libc::IFNAMSIZ];
        let b = name.as_bytes();
        if b.len() >= ifname.len() || b.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad interface name",
            ));
        }
        ifname[..b.len()].copy_from_slice(b);
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &ifname)
    }

    /// Makes `recv_from` return `WouldBlock` instead of waiting (for the event loop).
    pub fn set_nonblocking(&self) -> io::Result<()> {
        set_nonblocking(self.fd.as_raw_fd())
    }

    /// Asks the kernel to report each datagram's hop limit (`IPV6_RECVHOPLIMIT`), read
    /// with [`Self::recv_with_hop_limit`].
    pub fn set_recv_hop_limit(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        setsockopt(&self.fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)
    }

    /// Like [`Self::recv_from`], plus the hop limit the datagram arrived with (`None`
    /// without [`Self::set_recv_hop_limit`]).
    pub fn recv_with_hop_limit(&self, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, Option<u8>)> {
        // SAFETY: all-zero is a valid sockaddr_in6 and msghdr (plain old data).
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        // Room for one int-sized control message, 8-byte aligned as cmsghdr wants.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut sa as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 8]>();
        // SAFETY: every pointer in `msg` (name, one iovec over `buf`, control) points at
        // live memory of the length given beside it, all outliving the call; the kernel
        // writes only within those lengths and keeps no pointer.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut hop_limit = None;
        // SAFETY: `msg` was filled by recvmsg, so CMSG_FIRSTHDR/CMSG_NXTHDR walk headers
        // inside `control` (they return null past `msg_controllen`); CMSG_DATA of an
        // IPV6_HOPLIMIT message holds one int, read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IPV6
                    && (*c).cmsg_type == libc::IPV6_HOPLIMIT
                    && (*c).cmsg_len as usize
                        >= libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize
                {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    hop_limit = u8::try_from(v).ok();
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n as usize, Ipv6Addr::from(sa.sin6_addr.s6_addr), hop_limit))
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
/// Sets `O_NONBLOCK` on `fd`, keeping its other status flags.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments only; a bad descriptor is an error return.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp6_filter_clears_only_the_passed_types() {
        let f = icmp6_filter_pass(&[0, 134, 145, 255]);
        assert_eq!(f[0], !1);
        assert_eq!(f[4], !((1 << (134 - 128)) | (1 << (145 - 128))));
        assert_eq!(f[7], !(1 << 31));
        assert_eq!(f[1], u32::MAX);
    }
}
