//! Socket buffer knobs for bulk transfers over a stream socket (the handoff's control
//! channel): a send buffer that takes a whole message in one write, and a receive low-water
//! mark that wakes the reader once for a whole message instead of once per segment.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn set_int(fd: BorrowedFd<'_>, name: libc::c_int, val: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(val).unwrap_or(libc::c_int::MAX);
    // SAFETY: `v` is a live c_int and the length passed is its size; the kernel only
    // reads it. A bad fd or option comes back as an error.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
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
}
