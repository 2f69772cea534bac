//! The registry of everything the daemon installed outside its own memory: kernel objects
//! (routes, XFRM states and policies, tunnels, once the roles install them) and the
//! filesystem objects it creates (the pid file, the control socket).
//!
//! One ordered record with an undo per entry, so that shutdown is a single walk in reverse
//! order of installation: later objects may depend on earlier ones (a route through a tunnel
//! must go before the tunnel), so the reverse order is the safe one. Error paths during
//! start-up use the same walk, which is what keeps a failed start from leaving a pid file
//! or a socket behind.

use std::fmt;
use std::io;

/// Identifies one entry, so an object removed early (a binding that expired) can be
/// undone and forgotten without waiting for shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(u64);

type Undo = Box<dyn FnOnce() -> io::Result<()>>;

struct Entry {
    id: EntryId,
    what: String,
    undo: Undo,
}

/// What went wrong while undoing one entry. Undo keeps going after a failure: one object
/// that cannot be removed must not leave all the others installed.
#[derive(Debug)]
pub struct UndoError {
    pub what: String,
    pub error: io::Error,
}

impl fmt::Display for UndoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "removing {}: {}", self.what, self.error)
    }
}

pub struct Registry {
    entries: Vec<Entry>,
    next: u64,
    /// The process that installed the objects. A forked child inherits the registry's
    /// memory but not the right to tear down its parent's objects.
    owner: u32,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            entries: Vec::new(),
            next: 0,
            owner: std::process::id(),
        }
    }

    /// Records an object that has just been installed, with the closure that removes it.
    /// Record it right after the install succeeds, never before: an undo for something
    /// that is not there would remove someone else's object of the same name.
    pub fn record(
        &mut self,
        what: impl Into<String>,
        undo: impl FnOnce() -> io::Result<()> + 'static,
    ) -> EntryId {
        let id = EntryId(self.next);
        self.next += 1;
        let what = what.into();
        tracing::debug!("installed {what}");
        self.entries.push(Entry {
            id,
            what,
            undo: Box::new(undo),
        });
        id
    }

    /// Removes one object now.
    pub fn undo(&mut self, id: EntryId) -> Result<(), UndoError> {
        let Some(pos) = self.entries.iter().position(|e| e.id == id) else {
            return Ok(());
        };
        let e = self.entries.remove(pos);
        run(e)
    }

    /// Forgets an object without removing it (someone else took it over).
    pub fn forget(&mut self, id: EntryId) {
        self.entries.retain(|e| e.id != id);
    }

    /// What is installed, oldest first.
    pub fn installed(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.what.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes everything, newest first, and returns what could not be removed.
    pub fn undo_all(&mut self) -> Vec<UndoError> {
        let mut errors = Vec::new();
        if self.owner != std::process::id() {
            // A child of ours must not remove the parent's objects.
            self.entries.clear();
            return errors;
        }
        while let Some(e) = self.entries.pop() {
            if let Err(err) = run(e) {
                tracing::warn!("{err}");
                errors.push(err);
            }
        }
        errors
    }
}

fn run(e: Entry) -> Result<(), UndoError> {
    let what = e.what;
    match (e.undo)() {
        Ok(()) => {
            tracing::debug!("removed {what}");
            Ok(())
        }
        Err(error) => Err(UndoError { what, error }),
    }
}

/// The last line of defence: a panic that unwinds out of the event loop still removes what
/// was installed.
impl Drop for Registry {
    fn drop(&mut self) {
        self.undo_all();
    }
}

/// An undo for a file the daemon created: removing it is done if it is already gone
/// (an operator may have removed it by hand).
pub fn remove_file_undo(path: std::path::PathBuf) -> impl FnOnce() -> io::Result<()> {
    move || match std::fs::remove_file(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn logger() -> (
        Rc<RefCell<Vec<&'static str>>>,
        impl Fn(&'static str) -> Undo,
    ) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let make = move |name: &'static str| -> Undo {
            let l = l.clone();
            Box::new(move || {
                l.borrow_mut().push(name);
                Ok(())
            })
        };
        (log, make)
    }

    #[test]
    fn undo_all_runs_in_reverse_order_of_installation() {
        let (log, make) = logger();
        let mut r = Registry::new();
        r.record("tunnel", make("tunnel"));
        r.record("route via tunnel", make("route"));
        r.record("xfrm state", make("xfrm"));
        assert_eq!(r.installed(), ["tunnel", "route via tunnel", "xfrm state"]);
        assert!(r.undo_all().is_empty());
        assert_eq!(*log.borrow(), ["xfrm", "route", "tunnel"]);
        assert!(r.is_empty());
        // A second walk has nothing left to do.
        r.undo_all();
        assert_eq!(log.borrow().len(), 3);
    }

    #[test]
    fn early_undo_and_forget_take_the_entry_out() {
        let (log, make) = logger();
        let mut r = Registry::new();
        let a = r.record("a", make("a"));
        let b = r.record("b", make("b"));
        r.record("c", make("c"));
        r.undo(b).unwrap();
        r.forget(a);
        assert_eq!(*log.borrow(), ["b"]);
        drop(r);
        assert_eq!(*log.borrow(), ["b", "c"]);
    }

    #[test]
    fn a_failing_undo_does_not_stop_the_others() {
        let (log, make) = logger();
        let mut r = Registry::new();
        r.record("first", make("first"));
        r.record("broken", || Err(io::Error::other("busy")));
        r.record("last", make("last"));
        let errors = r.undo_all();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].to_string(), "removing broken: busy");
        assert_eq!(*log.borrow(), ["last", "first"]);
    }

    #[test]
    fn removing_a_file_that_is_already_gone_is_fine() {
        let dir = std::env::temp_dir().join(format!("mip6d-reg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x");
        std::fs::write(&f, b"1").unwrap();
        let mut r = Registry::new();
        r.record("file", remove_file_undo(f.clone()));
        r.record("file again", remove_file_undo(f.clone()));
        assert!(r.undo_all().is_empty());
        assert!(!f.exists());
        std::fs::remove_dir(&dir).unwrap();
    }
}
