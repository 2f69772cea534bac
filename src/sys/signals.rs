//! Signals as events on the poll, through Linux's signalfd.
//!
//! The signals we act on are blocked and read as data from a file descriptor registered
//! with mio, so a signal is handled by the loop like any other event, in ordinary code:
//! there is no asynchronous handler, hence nothing to keep async-signal-safe, and the
//! reader also learns which process sent the signal, which goes into the log.
//!
//! The mask must be set before any thread exists, because threads inherit it and a thread
//! that does not block a signal could take it instead of the signalfd; `Signals::new` is
//! called from the single-threaded start-up for that reason.

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Reload the configuration.
    Hup,
    /// Shut down.
    Term,
    /// Shut down (Ctrl-C in the foreground).
    Int,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Hup => libc::SIGHUP,
            Signal::Term => libc::SIGTERM,
            Signal::Int => libc::SIGINT,
        }
    }

    fn from_number(n: u32) -> Option<Signal> {
        [Signal::Hup, Signal::Term, Signal::Int]
            .into_iter()
            .find(|s| s.number() as u32 == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }
}

/// One signal that arrived, and who sent it (0 for the kernel or the terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: Signal,
    pub sender: u32,
}

pub struct Signals {
    fd: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// SIGPIPE's default action kills the process: a mip6ctl that disconnects before reading
/// its answer must give us EPIPE instead. (Rust's runtime already ignores SIGPIPE in
/// binaries; saying it here keeps that true whoever embeds the daemon.)
pub fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: installing SIG_IGN involves no handler code; signal() has no memory-safety
    // preconditions.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if prev == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Signals {
    /// Blocks SIGHUP, SIGTERM and SIGINT in the calling thread and opens a non-blocking
    /// signalfd for them.
    pub fn new() -> io::Result<Signals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given a valid pointer to;
        // sigaddset then only touches that initialised set; the numbers are valid signals.
        let set = unsafe {
            check(libc::sigemptyset(set.as_mut_ptr()))?;
            for s in [Signal::Hup, Signal::Term, Signal::Int] {
                check(libc::sigaddset(set.as_mut_ptr(), s.number()))?;
            }
            set.assume_init()
        };
        // SAFETY: `set` is an initialised sigset_t and the old-mask pointer may be null.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised; the flags are valid.
        let fd =
            check(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
        // SAFETY: signalfd just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals { fd })
    }

    /// Every signal waiting, oldest first. Standard signals do not queue: two SIGHUPs
    /// sent before we read come out as one, which is what a reload wants anyway.
    pub fn read(&self) -> io::Result<Vec<Received>> {
        let mut out = Vec::new();
        loop {
            let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
            let want = size_of::<libc::signalfd_siginfo>();
            // SAFETY: the buffer is `want` writable bytes owned by `info`; the fd is ours.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), want) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(out),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if n as usize != want {
                // signalfd reads whole records only; anything else means no more data.
                return Ok(out);
            }
            // SAFETY: the kernel filled the whole record (n == want above), and every bit
            // pattern is valid for this plain-integer struct.
            let info = unsafe { info.assume_init() };
            if let Some(signal) = Signal::from_number(info.ssi_signo) {
                out.push(Received {
                    signal,
                    sender: info.ssi_pid,
                });
            }
        }
    }
}

impl Source for Signals {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).deregister(registry)
    }
}
