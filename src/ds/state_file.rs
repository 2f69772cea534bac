//! The membership protocol's durable state on disk (`StateFile`): read once at start,
//! replaced atomically on every `Action::Persist`.
//!
//! A promise the node made must outlive a crash of the daemon, or two views can commit in
//! one epoch (the simulation's `Amnesia` plant), so a write is complete — data and rename
//! synced — before the caller carries out any later action, and a crash in the middle
//! leaves the old file whole.

use super::membership::Durable;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// Creates the directory (owner only) if it is missing.
    pub fn open(path: &Path) -> Result<StateFile, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create the directory of {}: {e}", path.display()))?;
        }
        Ok(StateFile {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `None` when there is no file yet (first start). A file that does not decode is an
    /// error: starting afresh would forget promises, which is exactly what must not happen.
    pub fn load(&self) -> Result<Option<Durable>, String> {
        let shown = self.path.display();
        match fs::read(&self.path) {
            Ok(bytes) => Durable::decode(&bytes).map(Some).map_err(|e| {
                format!(
                    "{shown}: not a membership state file ({e}); if this node's membership \
                     state is really lost, remove the file and start it as a new node with a \
                     NodeId no one has used"
                )
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{shown}: {e}")),
        }
    }

    /// Writes beside the file, syncs, renames over it and syncs the directory.
    pub fn store(&self, d: &Durable) -> Result<(), String> {
        let shown = self.path.display();
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".new");
        let tmp = PathBuf::from(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&d.encode())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("cannot write {shown}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ds::membership::View;

    #[test]
    fn stores_and_loads_and_refuses_garbage() {
        let dir = std::env::temp_dir().join(format!("mip6d-statefile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let f = StateFile::open(&dir.join("sub/m.state")).unwrap();
        assert_eq!(f.load().unwrap(), None);
        let d = Durable {
            committed: View::genesis(&[1, 2, 3]),
            promised: 7 << 32 | 2,
            accepted: None,
            registered_seq: Some(9),
        };
        f.store(&d).unwrap();
        assert_eq!(f.load().unwrap(), Some(d.clone()));
        let mut d2 = d;
        d2.promised += 1;
        f.store(&d2).unwrap();
        assert_eq!(f.load().unwrap(), Some(d2));
        fs::write(f.path(), b"DSM").unwrap();
        assert!(f
            .load()
            .unwrap_err()
            .contains("not a membership state file"));
        let _ = fs::remove_dir_all(&dir);
    }
}
