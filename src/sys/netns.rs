//! Network namespaces by name (`ip netns add NAME` creates `/run/netns/NAME`).
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the *calling thread* only, and sockets
//! stay in the namespace they were created in. So a thread that entered a namespace can
//! open sockets there (a netfilter queue, a raw socket) and hand them to any other thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Moves the calling thread into the network namespace `name` (as named by `ip netns`).
pub fn enter(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "namespace name must be a plain file name",
        ));
    }
    let file = File::open(Path::new("/run/netns").join(name))?;
    // SAFETY: `file` is an open fd for a namespace file that outlives the call; setns only
    // reads the fd and changes kernel-side state of this thread. CLONE_NEWNET is allowed
    // in a multi-threaded process (unlike CLONE_NEWNS / CLONE_NEWUSER), and no Rust
    // object's validity depends on which network namespace a thread is in.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a new thread inside namespace `name` and returns its result; the caller's
/// own thread stays where it is.
pub fn run_in<T, F>(name: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let name = name.to_owned();
    std::thread::spawn(move || -> io::Result<T> {
        enter(&name)?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("thread in namespace panicked"))?
}
