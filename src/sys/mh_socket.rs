//! The Mobility Header socket of the `kernel` data path (umip's way, RFC 3542 advanced
//! API): a raw `IPPROTO_MH` socket whose checksum the kernel computes (`IPV6_CHECKSUM` at
//! offset 4), sending with the source address, Home Address option and Type 2 Routing
//! Header as ancillary data, and receiving with the destination address
//! (`IPV6_PKTINFO`), the Destination Options and the Routing Header the packet carried.
//!
//! On a kernel with `CONFIG_IPV6_MIP6` the kernel swaps the Home Address option and
//! processes the Routing Header; on one without it (this project's CI), a Type 2 Routing
//! Header cannot be sent (`EINVAL`) and a received Home Address option is answered with a
//! Parameter Problem before any socket sees it, which is why the `user` data path takes
//! Mobility Headers from a netfilter queue instead.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::wire::ext_header::{DestOption, DestOptsRepr, Type2RoutingRepr};
use crate::wire::proto;

const IPPROTO_MH: i32 = 135;
/// Receive buffer for one Mobility Header (its length field caps it at 2 KiB).
const MAX_MH: usize = 2048;
const CONTROL_LEN: usize = 512;

/// A Mobility Header as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMh {
    pub src: Ipv6Addr,
    /// The destination the packet had (`IPV6_PKTINFO`).
    pub dst: Option<Ipv6Addr>,
    pub ifindex: Option<u32>,
    /// The Home Address option of its Destination Options header, if any.
    pub hao: Option<Ipv6Addr>,
    /// The address in its Type 2 Routing Header, if any: the home address as sent, or, when
    /// a MIP6 kernel processed the header (segments left 0), the care-of address the
    /// packet was sent to, swapped in by the kernel (`dst` is then the home address).
    pub rh2: Option<Ipv6Addr>,
    /// The Mobility Header (checksum already verified by the kernel).
    pub bytes: Vec<u8>,
}

/// What to put around a Mobility Header on send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Source address (`IPV6_PKTINFO`); `None` lets the kernel choose.
    pub src: Option<Ipv6Addr>,
    /// Home Address option (Destination Options after the routing header, RFC 6275 §6.3).
    pub hao: Option<Ipv6Addr>,
    /// Type 2 Routing Header carrying this home address (RFC 6275 §6.4); the packet goes
    /// to `dst`, the care-of address.
    pub rh2: Option<Ipv6Addr>,
}

pub struct MhSocket {
    fd: OwnedFd,
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live i32 and we pass its exact size; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One ancillary data item to send: (type, payload) at level `IPPROTO_IPV6`.
fn control_message(items: &[(i32, Vec<u8>)]) -> Vec<u64> {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let total: usize = items
        .iter()
        .map(|(_, d)| unsafe { libc::CMSG_SPACE(d.len() as u32) } as usize)
        .sum();
    // u64 storage keeps the buffer aligned for cmsghdr.
    let mut buf = vec![0u64; total.div_ceil(8).max(1)];
    if items.is_empty() {
        return Vec::new();
    }
    // SAFETY: a msghdr that only describes `buf` (pointer and exact byte length) for the
    // CMSG_* macros; they stay inside msg_controllen, which we sized with CMSG_SPACE for
    // every item, and write only within it.
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = total as _;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        for (ty, data) in items {
            if c.is_null() {
                break;
            }
            (*c).cmsg_level = libc::IPPROTO_IPV6;
            (*c).cmsg_type = *ty;
            (*c).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
            std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(c), data.len());
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    buf.truncate(total.div_ceil(8));
    buf
}

impl MhSocket {
    /// Opens the socket with kernel checksums and the receive-side ancillary data on.
    pub fn open() -> io::Result<MhSocket> {
        // SAFETY: socket() takes no pointers; a non-negative return is a fresh fd nothing
        // else owns, so OwnedFd may take it over.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                IPPROTO_MH,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        // RFC 6275 §6.1.1: the MH checksum is at offset 4 (bytes 2 and 3 of the header
        // are type and reserved).
        setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, 4)?;
        for opt in [
            libc::IPV6_RECVPKTINFO,
            libc::IPV6_RECVDSTOPTS,
            libc::IPV6_RECVRTHDR,
        ] {
            setsockopt_int(raw, libc::IPPROTO_IPV6, opt, 1)?;
        }
        Ok(MhSocket { fd })
    }

    /// Makes `recv` return `WouldBlock` instead of waiting (for the event loop).
    pub fn set_nonblocking(&self) -> io::Result<()> {
        super::raw::set_nonblocking(self.fd.as_raw_fd())
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        super::raw::set_rcvtimeo(self.fd.as_raw_fd(), timeout)
    }

    /// Sends one Mobility Header (checksum field left for the kernel) to `dst`.
    pub fn send(&self, mh: &[u8], dst: Ipv6Addr, opts: SendOptions) -> io::Result<usize> {
        let mut items: Vec<(i32, Vec<u8>)> = Vec::new();
        if let Some(src) = opts.src {
            // struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
            let mut p = src.octets().to_vec();
            p.extend_from_slice(&0i32.to_ne_bytes());
            items.push((libc::IPV6_PKTINFO, p));
        }
        // Linux (fl6_update_dst) sends to the routing header's address and writes the
        // socket's destination into the header, as the RFC 3542 API wants for a source
        // route. So the home address is the socket's destination and the care-of
        // address goes into the header: on the wire it comes out the other way round.
        let mut to = dst;
        if let Some(hoa) = opts.rh2 {
            let rh = Type2RoutingRepr {
                // The kernel fills in Next Header when it builds the chain.
                next_header: proto::MOBILITY,
                segments_left: 1,
                home_address: dst,
            };
            items.push((libc::IPV6_RTHDR, rh.to_bytes()));
            to = hoa;
        }
        if let Some(hoa) = opts.hao {
            let d = DestOptsRepr {
                next_header: proto::MOBILITY,
                options: vec![DestOption::HomeAddress(hoa)],
            };
            items.push((libc::IPV6_DSTOPTS, d.to_bytes()));
        }
        let mut control = control_message(&items);
        let sa = {
            let a = SocketAddrV6::new(to, 0, 0, 0);
            // SAFETY: all-zero is a valid sockaddr_in6 (plain old data).
            let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = a.ip().octets();
            sa
        };
        let mut iov = libc::iovec {
            iov_base: mh.as_ptr() as *mut libc::c_void,
            iov_len: mh.len(),
        };
        // SAFETY: all-zero is a valid msghdr; every pointer we set refers to a live local
        // (`sa`, `iov` → `mh`, `control`) with its exact length, none is kept after the
        // call, and the kernel only reads through them for sendmsg.
        let n = unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&sa as *const libc::sockaddr_in6 as *mut libc::sockaddr_in6).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if !control.is_empty() {
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = (control.len() * 8) as _;
            }
            libc::sendmsg(self.fd.as_raw_fd(), &msg, 0)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Receives one Mobility Header with what the IPv6 layer around it said.
    pub fn recv(&self) -> io::Result<ReceivedMh> {
        let mut data = vec![0u8; MAX_MH];
        let mut control = [0u64; CONTROL_LEN / 8];
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: all-zero is a valid msghdr; its pointers refer to live, writable locals
        // with their exact sizes, which bound what the kernel writes; nothing is retained.
        let (n, msg) = unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&mut sa as *mut libc::sockaddr_in6).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = CONTROL_LEN as _;
            let n = libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0);
            (n, msg)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        data.truncate(n as usize);
        let mut out = ReceivedMh {
            src: Ipv6Addr::from(sa.sin6_addr.s6_addr),
            dst: None,
            ifindex: None,
            hao: None,
            rh2: None,
            bytes: data,
        };
        // SAFETY: `msg` describes `control`, which the kernel filled and which is still
        // live; the CMSG_* macros stay within msg_controllen as the kernel set it, and
        // each item's data is read only up to its own cmsg_len.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                let body = std::slice::from_raw_parts(libc::CMSG_DATA(c), len);
                if (*c).cmsg_level == libc::IPPROTO_IPV6 {
                    parse_control((*c).cmsg_type, body, &mut out);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(out)
    }
}

/// Reads one ancillary item into `out`; malformed items are ignored (they come from the
/// kernel, but the headers inside them came from the network).
fn parse_control(ty: i32, body: &[u8], out: &mut ReceivedMh) {
    match ty {
        libc::IPV6_PKTINFO if body.len() >= 20 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            out.dst = Some(Ipv6Addr::from(a));
            out.ifindex = Some(u32::from_ne_bytes([body[16], body[17], body[18], body[19]]));
        }
        libc::IPV6_DSTOPTS => {
            if let Ok(d) = DestOptsRepr::parse(body) {
                out.hao = d.home_address();
            }
        }
        libc::IPV6_RTHDR => {
            if let Ok(r) = Type2RoutingRepr::parse(body) {
                out.rh2 = Some(r.home_address);
            } else if body.len() >= 24 && body[1] == 2 && body[2] == 2 && body[3] == 0 {
                // A MIP6 kernel hands over the header as it processed it: segments left
                // 0, the address swapped with the destination (so it holds the care-of
                // address; `dst` is the home address). The wire parser rightly refuses
                // that as a received packet, but here the kernel already checked it.
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[8..24]);
                out.rh2 = Some(Ipv6Addr::from(a));
            }
        }
        _ => {}
    }
}

impl AsRawFd for MhSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_items_are_laid_out_as_cmsgs() {
        let c = control_message(&[
            (libc::IPV6_PKTINFO, vec![7; 20]),
            (libc::IPV6_RTHDR, vec![9; 24]),
        ]);
        let bytes: Vec<u8> = c.iter().flat_map(|w| w.to_ne_bytes()).collect();
        // cmsghdr { size_t len; int level; int type; } then data, each padded to 8.
        let hdr = size_of::<libc::cmsghdr>();
        let len0 = usize::from_ne_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(len0, hdr + 20);
        assert_eq!(&bytes[hdr..hdr + 20], &[7; 20]);
        let second = (hdr + 20).div_ceil(8) * 8;
        assert_eq!(
            usize::from_ne_bytes(bytes[second..second + 8].try_into().unwrap()),
            hdr + 24
        );
        assert_eq!(&bytes[second + hdr..second + hdr + 24], &[9; 24]);
        assert!(control_message(&[]).is_empty());
    }

    #[test]
    fn control_parsing_ignores_garbage() {
        let mut out = ReceivedMh {
            src: Ipv6Addr::UNSPECIFIED,
            dst: None,
            ifindex: None,
            hao: None,
            rh2: None,
            bytes: vec![],
        };
        let mut rng = crate::testutil::XorShift(5);
        for _ in 0..5000 {
            let n = (rng.next() % 40) as usize;
            let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            for ty in [libc::IPV6_PKTINFO, libc::IPV6_DSTOPTS, libc::IPV6_RTHDR, 0] {
                parse_control(ty, &b, &mut out);
            }
        }
        let hao = DestOptsRepr {
            next_header: 135,
            options: vec![DestOption::HomeAddress("2001:db8:1::100".parse().unwrap())],
        };
        parse_control(libc::IPV6_DSTOPTS, &hao.to_bytes(), &mut out);
        assert_eq!(out.hao, Some("2001:db8:1::100".parse().unwrap()));
    }
}
