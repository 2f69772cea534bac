//! UDP sockets bound to an address this host may not hold yet (`IPV6_FREEBIND`): the
//! Distributed Servers contact node listens on the DSA, which becomes local only while it
//! is the contact (its home address), without rebinding when that changes.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddrV6, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is a socket the caller owns; the option reads one c_int, whose exact
    // size we pass; the kernel copies it and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A non-blocking, IPv6-only UDP socket bound to `addr` whether or not the address is
/// configured here (`IPV6_FREEBIND`). Datagrams to it arrive once the address is local.
pub fn bind_freebind(addr: SocketAddrV6) -> io::Result<UdpSocket> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns; OwnedFd closes it on error.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)?;
    // SAFETY: sockaddr_in6 is plain old data for which all-zero is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = addr.port().to_be();
    sa.sin6_addr.s6_addr = addr.ip().octets();
    sa.sin6_scope_id = addr.scope_id();
    // SAFETY: `sa` is a live sockaddr_in6 and we pass its exact size; the kernel copies it.
    let rc = unsafe {
        libc::bind(
            raw,
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_address_this_host_does_not_hold() {
        // A documentation address no test configures: a plain bind fails with
        // EADDRNOTAVAIL, the free bind succeeds.
        let a: SocketAddrV6 = "[2001:db8:ffff::7]:0".parse().unwrap();
        assert!(UdpSocket::bind(a).is_err());
        let s = bind_freebind(a).expect("IPV6_FREEBIND bind");
        assert_eq!(s.local_addr().unwrap().ip(), std::net::IpAddr::V6(*a.ip()));
    }
}
