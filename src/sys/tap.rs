//! TAP devices: Ethernet frames in and out of a virtual interface through a file
//! descriptor. The link emulator holds the two ends of each emulated link this way.
//!
//! A TAP opened without `IFF_VNET_HDR` and without offloads hands out and takes whole,
//! checksummed frames of at most the MTU: the kernel segments and checksums what its stack
//! built before the frame reaches us, so no frame needs fixing in userspace.

use std::io;
use std::mem::zeroed;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An open TAP queue, non-blocking.
pub struct Tap {
    fd: OwnedFd,
}

impl Tap {
    /// Attaches to the TAP interface `name` in the calling thread's network namespace,
    /// creating it (non-persistent) if it does not exist. The fd stays attached if the
    /// thread later moves to another namespace.
    pub fn open(name: &str) -> io::Result<Tap> {
        // IFNAMSIZ counts the terminating NUL.
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name '{name}'"),
            ));
        }
        // SAFETY: the path is a NUL-terminated static string; open() keeps no pointer. A
        // non-negative return is a fresh fd owned by nobody else, so OwnedFd may take it.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain old data (a name array and a union of integers and
        // addresses), for which all-zero is valid.
        let mut ifr: libc::ifreq = unsafe { zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads an ifreq (and writes the final name back into it); `ifr`
        // is live, properly sized and NUL-terminated (zeroed, name shorter than IFNAMSIZ),
        // and the kernel keeps no pointer after the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tap { fd })
    }

    /// Reads one frame; `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a live, writable slice and we pass its length, so the kernel
        // writes only inside it; nothing is retained after the call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one whole frame (`EIO` while the interface is down).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is a live slice and we pass its exact length; write() keeps no
        // pointer.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
