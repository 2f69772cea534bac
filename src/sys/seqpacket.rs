//! Unix `SOCK_SEQPACKET` sockets that carry one descriptor per message (`SCM_RIGHTS`):
//! the Distributed Servers application socket, where a server application hands a live
//! TCP connection to mip6d and receives the connections handed to it. Sequenced packets
//! keep each message whole, so a descriptor always arrives with the message it belongs
//! to (a stream socket could merge two messages and their descriptors).

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Largest message either side sends: one JSON object.
pub const MAX_MESSAGE: usize = 64 * 1024;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeros is a valid (empty) value.
    let mut a: libc::sockaddr_un = unsafe { zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // One byte stays zero: the kernel reads the path up to its terminator.
    if bytes.is_empty() || bytes.len() >= a.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a usable socket path", path.display()),
        ));
    }
    for (d, s) in a.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((a, len as libc::socklen_t))
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connected (or accepted) sequenced-packet socket.
#[derive(Debug)]
pub struct SeqPacket(OwnedFd);

/// A listening sequenced-packet socket (non-blocking).
#[derive(Debug)]
pub struct SeqListener(OwnedFd);

impl SeqListener {
    /// Binds `path` (mode 0600, created under a tight umask like the control socket) and
    /// listens; a socket file already there is replaced.
    pub fn bind(path: &Path) -> io::Result<SeqListener> {
        let _ = std::fs::remove_file(path);
        let fd = socket()?;
        let (a, len) = sockaddr(path)?;
        super::process::with_umask(0o177, || {
            // SAFETY: `a` is a valid sockaddr_un of `len` bytes that outlives the call.
            cvt(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })
        })?;
        // SAFETY: listen(2) on a socket we own.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), 16) })?;
        set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(SeqListener(fd))
    }

    /// The next pending connection (non-blocking itself), or `WouldBlock`.
    pub fn accept(&self) -> io::Result<SeqPacket> {
        // SAFETY: accept4(2) without an address buffer; the result is checked.
        let fd = cvt(unsafe {
            libc::accept4(
                self.0.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        })?;
        // SAFETY: `fd` was just returned by accept4 and is owned by nobody else.
        Ok(SeqPacket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

impl AsRawFd for SeqListener {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(2) F_GETFL/F_SETFL on a descriptor the caller owns.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(|_| ())
}

/// Control buffer for exactly one descriptor, aligned for `cmsghdr`.
#[repr(C)]
struct OneFd {
    _align: [u64; 0],
    buf: [u8; 64],
}

impl SeqPacket {
    /// Connects to the listener at `path` (blocking).
    pub fn connect(path: &Path) -> io::Result<SeqPacket> {
        let fd = socket()?;
        let (a, len) = sockaddr(path)?;
        // SAFETY: `a` is a valid sockaddr_un of `len` bytes that outlives the call.
        cvt(unsafe {
            libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len)
        })?;
        Ok(SeqPacket(fd))
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(self.0.as_raw_fd(), on)
    }

    /// Another descriptor of the same socket (one thread reads, another writes).
    pub fn try_clone(&self) -> io::Result<SeqPacket> {
        self.0.try_clone().map(SeqPacket)
    }

    /// Receive timeout of a blocking socket (`None`: wait for ever).
    pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        super::raw::set_rcvtimeo(self.0.as_raw_fd(), t)
    }

    /// Sends one message, with `fd` attached when given. The receiver gets its own
    /// descriptor for the same open file; ours stays open.
    pub fn send(&self, data: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut control = OneFd {
            _align: [],
            buf: [0; 64],
        };
        // SAFETY: msghdr is plain data; zero is a valid start (no name, no control).
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            // SAFETY: CMSG_SPACE is a pure computation on a constant size.
            let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
            msg.msg_control = control.buf.as_mut_ptr().cast();
            msg.msg_controllen = space;
            // SAFETY: msg_control points at `space` (<= 64) writable, aligned bytes, so
            // CMSG_FIRSTHDR returns a header inside them, and CMSG_DATA of that header
            // has room for one descriptor (CMSG_SPACE above reserved it).
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
            }
        }
        loop {
            // SAFETY: `msg` points at live buffers (iov over `data`, `control`) for the
            // duration of the call; MSG_NOSIGNAL: a gone peer is EPIPE, not a signal.
            let rc = unsafe { libc::sendmsg(self.0.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one message into `buf`: its length (0 = the peer closed) and the
    /// descriptor that came with it. A message longer than `buf` is an error (it was cut).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = OneFd {
            _align: [],
            buf: [0; 64],
        };
        // SAFETY: as in `send`.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf.as_mut_ptr().cast();
        msg.msg_controllen = control.buf.len();
        let n = loop {
            // SAFETY: `msg` points at live buffers of the given sizes; MSG_CMSG_CLOEXEC
            // makes any received descriptor close-on-exec.
            let rc = unsafe { libc::recvmsg(self.0.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if rc >= 0 {
                break rc as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut got = None;
        // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR and
        // CMSG_NXTHDR only walk headers inside that length. Every SCM_RIGHTS descriptor
        // is ours now: each is wrapped in an OwnedFd (so extra ones are closed).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c);
                    let len = (*c).cmsg_len - (data as usize - c as usize);
                    for i in 0..len / size_of::<RawFd>() {
                        let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        let owned = OwnedFd::from_raw_fd(fd);
                        if got.is_none() {
                            got = Some(owned);
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message or descriptor cut short",
            ));
        }
        Ok((n, got))
    }
}

impl AsRawFd for SeqPacket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_travels_with_its_message() {
        let dir = std::env::temp_dir().join(format!("mip6d-seqp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let l = SeqListener::bind(&path).unwrap();
        let c = SeqPacket::connect(&path).unwrap();
        let s = l.accept().unwrap();
        s.set_nonblocking(false).unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        c.send(b"first", None).unwrap();
        c.send(b"second", Some(b.as_fd())).unwrap();
        drop(b);
        let mut buf = [0u8; 64];
        let (n, fd) = s.recv(&mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"first"[..], true));
        let (n, fd) = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"second");
        let mut b2 = std::os::unix::net::UnixStream::from(fd.expect("a descriptor"));
        b2.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        a.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        drop(c);
        assert_eq!(s.recv(&mut buf).unwrap().0, 0, "end of the peer");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
