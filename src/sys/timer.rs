//! Nanosecond timers for the poll loop: `CLOCK_MONOTONIC` readings and a timerfd armed at
//! absolute times of that clock. mio's own poll timeout is in whole milliseconds, too
//! coarse for a link emulator whose delays must hold to well under a millisecond.

use std::io;
use std::mem::zeroed;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `CLOCK_MONOTONIC` in nanoseconds: the clock timerfd deadlines are given in.
pub fn monotonic_ns() -> u64 {
    // SAFETY: all-zero is a valid timespec (two integers).
    let mut ts: libc::timespec = unsafe { zeroed() };
    // SAFETY: `ts` is a live timespec the call fills; CLOCK_MONOTONIC always exists, so
    // the call cannot fail with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets this thread's timer slack: how late the kernel may fire our timers to batch
/// wakeups (50 µs by default).
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A non-blocking timerfd on `CLOCK_MONOTONIC`.
pub struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes no pointers; a non-negative return is a fresh fd
        // that nothing else owns.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above.
        Ok(TimerFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Fires once at `at_ns` on [`monotonic_ns`]'s clock (at once if that has passed);
    /// `None` disarms.
    pub fn set_at(&self, at_ns: Option<u64>) -> io::Result<()> {
        // An all-zero it_value disarms, so a deadline of exactly 0 becomes 1 ns.
        let at = at_ns.map_or(0, |t| t.max(1));
        // SAFETY: all-zero is a valid itimerspec (integers only).
        let mut spec: libc::itimerspec = unsafe { zeroed() };
        spec.it_value.tv_sec = (at / 1_000_000_000) as libc::time_t;
        spec.it_value.tv_nsec = (at % 1_000_000_000) as libc::c_long;
        // SAFETY: `spec` is a live itimerspec the kernel only reads; the old-value pointer
        // is null, which timerfd_settime allows.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes the expiration count so the fd stops being readable.
    pub fn drain(&self) {
        let mut n = [0u8; 8];
        // SAFETY: `n` is a live 8-byte buffer, the size a timerfd read needs; a
        // non-blocking read with nothing pending returns EAGAIN, which we ignore.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), n.as_mut_ptr().cast(), n.len()) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Runs the calling thread under `SCHED_FIFO` at `priority` (1–99): its wakeups then
/// preempt every ordinary process, so a timer deadline is met on a loaded machine too.
/// The kernel's real-time throttling (95 % of each second by default) still bounds what a
/// runaway loop could take.
pub fn set_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a live sched_param the kernel only reads; pid 0 is this thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
