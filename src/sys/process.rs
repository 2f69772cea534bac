//! Process-level system calls: going to the background (for the operators who start
//! mip6d by hand or from an init script without `-f`), the standard descriptors, process
//! liveness and the file-mode mask.
//!
//! fork(2) in a multi-threaded program leaves the child with only the forking thread and
//! possibly-held locks, so we fork first thing, while the process still has one thread
//! and has opened no socket. One fork and setsid(2) are enough: the child is a session
//! leader without a controlling terminal and never opens a terminal.
//!
//! The parent does not exit at once: it waits on a pipe until the child says it is
//! serving (exit 0) or the child goes away before that (exit 1, with the child's error
//! already printed on the still-shared standard error). So `mip6d && mip6ctl status`
//! works, and a start-up failure is seen by whoever started the daemon.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The child's end of the readiness pipe.
pub struct Ready(File);

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if they were closed), so no
/// socket we open later can land on them and receive stray prints. umip 1.0 had exactly
/// that bug: a netlink socket on fd 2.
pub fn ensure_stdio_open() -> io::Result<()> {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let null = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            // SAFETY: both descriptors are valid; dup2 onto a closed fd just opens it.
            check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
        }
    }
    Ok(())
}

/// Forks. Returns in the child only; the parent waits for the child's readiness and exits.
pub fn daemonize() -> io::Result<Ready> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (mut rd, wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (fork comes before anything that could
    // start a thread), so the child gets a consistent copy of every lock and allocator.
    let pid = check(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(wr);
        let mut byte = [0u8; 1];
        let ok = matches!(rd.read(&mut byte), Ok(1) if byte[0] == b'1');
        std::process::exit(if ok { 0 } else { 1 });
    }
    drop(rd);
    // SAFETY: setsid has no memory-safety preconditions; it fails only for a group leader,
    // which a fresh child is not.
    check(unsafe { libc::setsid() })?;
    // Do not keep the directory we were started in busy (it may be a mount point).
    // Relative include patterns resolve against / from now on; mip6d(8) says so.
    std::env::set_current_dir("/")?;
    Ok(Ready(wr))
}

impl Ready {
    /// The daemon serves: detach from the terminal and let the parent exit 0.
    pub fn done(mut self) -> io::Result<()> {
        let null = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        for fd in 0..3 {
            // SAFETY: `null` is open; dup2 atomically replaces 0, 1 and 2, which stay open
            // (on /dev/null), so no later socket can take their numbers.
            check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
        }
        self.0.write_all(b"1")
    }
}

/// Whether process `pid` exists. EPERM means it exists but belongs to someone else.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Runs `f` with the process file-mode mask set to `mask`, then restores the previous one.
/// Only sound to rely on while the process is single-threaded (the mask is process-wide);
/// the daemon calls it during start-up, before any thread exists.
pub fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps the process's file-mode mask; it cannot fail.
    let old = unsafe { libc::umask(mask) };
    let out = f();
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    out
}

/// Makes `cmd`'s child start with an empty signal mask. The daemon blocks SIGHUP, SIGTERM
/// and SIGINT to read them from a signalfd, and a blocked mask survives fork and exec: a
/// helper such as `ip6tables` would otherwise be unkillable by those signals (and `-w`
/// waits on a lock for a while).
pub fn unblock_signals_in_child(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe functions may be called: sigemptyset and sigprocmask are (POSIX
    // lists both), the set lives on the closure's own stack, and nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            check(libc::sigemptyset(set.as_mut_ptr()))?;
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                set.as_ptr(),
                std::ptr::null_mut(),
            ))?;
            Ok(())
        })
    }
}

/// Kills this process with SIGKILL, as a crash would: no destructor runs, and the kernel
/// closes every descriptor (for the test suite's fault injection).
pub fn kill_self() -> ! {
    // SAFETY: kill() with our own pid and a valid signal number has no memory effects.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    // SIGKILL cannot be caught; should delivery somehow not stop us, abort does.
    std::process::abort()
}
