//! Socket buffer knobs for bulk transfers over a stream socket (the handoff's control
//! channel): a send buffer that takes a whole message in one write, and a receive low-water
//! mark that wakes the reader once for a whole message instead of once per segment; and
//! for a served connection, an unsent low-water mark that keeps what the peer has not
//! been sent yet in the application rather than in the kernel.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn set_int(fd: BorrowedFd<'_>, name: libc::c_int, val: usize) -> io::Result<()> {
    set_int_at(fd, libc::SOL_SOCKET, name, val)
}

fn set_int_at(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: usize,
) -> io::Result<()> {
    let v = libc::c_int::try_from(val).unwrap_or(libc::c_int::MAX);
    // SAFETY: `v` is a live c_int and the length passed is its size; the kernel only
    // reads it. A bad fd or option comes back as an error.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes room for `bytes` in the send buffer (`SO_SNDBUF`; the kernel doubles the value
/// for its bookkeeping, which the skb overhead of a bulk write roughly uses up), so a
/// write of that size does not sleep until the peer acknowledges. Fixes the size: the
/// kernel's autotuning no longer changes it.
pub fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    set_int(fd, libc::SO_SNDBUF, bytes)
}

/// A read returns only once `bytes` are there (or the stream ends, or the read times
/// out) — `SO_RCVLOWAT`; for TCP the kernel also grows the receive buffer to hold them
/// (up to half of `tcp_rmem`'s maximum, which is also where it caps the mark). A read
/// asking for less than the mark still returns as soon as what it asked for is there.
pub fn set_recv_lowat(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    set_int(fd, libc::SO_RCVLOWAT, bytes.max(1))
}

/// A write waits (or comes back short, non-blocking) while more than `bytes` of what
/// was written have not been transmitted (`TCP_NOTSENT_LOWAT`). On a connection that may
/// be handed off this keeps the kernel's send queue to what is in flight plus `bytes`:
/// the state a handoff ships shrinks from the whole send buffer (hundreds of kB) to
/// about that, and the rest stays with the application, which sends it from wherever
/// the connection then lives.
pub fn set_notsent_lowat(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    set_int_at(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn a_large_write_fits_and_a_low_water_read_gets_it_whole() {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        const N: usize = 300_000;
        set_send_buffer(a.as_fd(), N).unwrap();
        set_recv_lowat(b.as_fd(), N).unwrap();
        // Non-blocking: with the default 16 kB buffer this write would come back short.
        a.set_nonblocking(true).unwrap();
        let sent = a.write(&vec![7u8; N]).unwrap();
        assert_eq!(sent, N, "the send buffer took the whole write");
        let mut got = vec![0u8; N];
        b.read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&x| x == 7));
    }

    /// Writes into `a` until it takes no more (the peer reads nothing) and returns the
    /// bytes the kernel holds unsent.
    fn unsent_when_full(lowat: Option<usize>) -> u32 {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_b, _) = l.accept().unwrap();
        if let Some(n) = lowat {
            set_notsent_lowat(a.as_fd(), n).unwrap();
        }
        a.set_nonblocking(true).unwrap();
        let chunk = vec![1u8; 64 * 1024];
        let mut wrote = 0usize;
        while wrote < 64 << 20 {
            match a.write(&chunk) {
                Ok(n) => wrote += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        crate::sys::tcp_repair::unsent_bytes(a.as_fd()).unwrap()
    }

    #[test]
    fn the_unsent_low_water_mark_keeps_unsent_bytes_out_of_the_kernel() {
        let bounded = unsent_when_full(Some(16 * 1024));
        let unbounded = unsent_when_full(None);
        // The kernel may pass the mark by the one write's worth it checks before.
        assert!(bounded <= 16 * 1024 + 64 * 1024, "{bounded}");
        assert!(unbounded > 2 * bounded, "{unbounded} vs {bounded}");
    }
}
