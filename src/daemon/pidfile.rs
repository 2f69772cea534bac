//! The pid file: written atomically, refused when a live daemon holds it, removed on exit
//! through the registry.

use std::fs;
use std::io::{self, Write};

use crate::sys::process::process_alive;
use std::path::{Path, PathBuf};

fn read_pid(path: &Path) -> io::Result<Option<u32>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes our pid to `path`. The content is written to a temporary file beside it and then
/// hard-linked into place: link(2) fails when the name exists, so two daemons starting at
/// once cannot both win, and a reader never sees a half-written file.
pub fn create(path: &Path) -> Result<(), String> {
    let me = std::process::id();
    let shown = path.display();
    let tmp = PathBuf::from(format!("{}.tmp.{me}", path.display()));
    let write_tmp = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{me}")?;
        f.sync_all()
    };
    write_tmp().map_err(|e| format!("cannot write the pid file {}: {e}", tmp.display()))?;
    let result = (|| {
        for _ in 0..2 {
            match fs::hard_link(&tmp, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_pid(path) {
                    Ok(Some(pid)) if pid != me && process_alive(pid) => {
                        return Err(format!(
                            "another mip6d is running (pid {pid}, from the pid file {shown})"
                        ));
                    }
                    Ok(_) => {
                        tracing::info!("removing stale pid file {shown}");
                        match fs::remove_file(path) {
                            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                                return Err(format!(
                                    "cannot remove the stale pid file {shown}: {e}"
                                ))
                            }
                            _ => {}
                        }
                    }
                    Err(e) => return Err(format!("cannot read the pid file {shown}: {e}")),
                },
                Err(e) => return Err(format!("cannot create the pid file {shown}: {e}")),
            }
        }
        Err(format!(
            "cannot create the pid file {shown}: another process keeps recreating it"
        ))
    })();
    let _ = fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mip6d-pid-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("mip6d.pid")
    }

    #[test]
    fn writes_our_pid_and_leaves_no_temporary_file() {
        let p = temp("ok");
        create(&p).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    #[test]
    fn refuses_a_live_holder_and_names_it() {
        let p = temp("live");
        // pid 1 always exists.
        fs::write(&p, "1\n").unwrap();
        let e = create(&p).unwrap_err();
        assert!(e.contains("pid 1"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "1\n");
        fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    #[test]
    fn replaces_a_stale_or_garbage_file() {
        for content in ["999999999\n", "not a pid", ""] {
            let p = temp("stale");
            fs::write(&p, content).unwrap();
            create(&p).unwrap();
            assert_eq!(
                fs::read_to_string(&p).unwrap().trim(),
                std::process::id().to_string()
            );
            fs::remove_dir_all(p.parent().unwrap()).unwrap();
        }
    }
}
