//! Taking a copy of another process's descriptor (`pidfd_open` + `pidfd_getfd`, Linux
//! 5.6): how mip6d gets hold of a connection an application owns when the operator hands
//! it off (`mip6ctl handoff`). Needs the right to ptrace the owner (root has it).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(rc: libc::c_long) -> io::Result<RawFd> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        RawFd::try_from(rc).map_err(|_| io::Error::other("descriptor out of range"))
    }
}

/// A duplicate of descriptor `fd` of process `pid`, close-on-exec, referring to the same
/// open file (the same socket): both copies keep it open.
pub fn take(pid: u32, fd: RawFd) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: pidfd_open(pid, 0) takes plain integers; the result is checked.
    let pidfd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: `pidfd` was just returned and is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: pidfd_getfd(pidfd, fd, 0) takes plain integers; the new descriptor is
    // ours (close-on-exec by the kernel's choice).
    let got = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    // SAFETY: `got` was just returned and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(got) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_copy_of_our_own_descriptor_is_the_same_socket() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let copy = take(std::process::id(), a.as_raw_fd()).unwrap();
        assert_ne!(copy.as_raw_fd(), a.as_raw_fd());
        let mut copy = std::os::unix::net::UnixStream::from(copy);
        copy.write_all(b"y").unwrap();
        let mut one = [0u8; 1];
        b.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"y");
        assert!(take(std::process::id(), 1_000_000).is_err());
    }
}
