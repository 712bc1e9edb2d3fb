//! An import job's run lock on SQLite, where the database has no lock between processes (on
//! PostgreSQL it is a session advisory lock, see `imports::run_lock`): a file beside the
//! database, `<database>-import-<job>.lock`, locked (`flock`) by the process that runs the job and
//! let go by the system if that process dies. A service that starts beside a running
//! `tavana import` thus leaves that job to it, as on PostgreSQL. The lock is exclusive between
//! the open files, so within one process too: a runner holds it, and anyone else is refused.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};

/// The locks this process holds, by lock file: closing the file would let the lock go.
static HELD: LazyLock<Mutex<HashMap<PathBuf, File>>> = LazyLock::new(Mutex::default);

/// The lock file of `job` of the database at `database` (SQLite's full path of its file).
pub(crate) fn path(database: &str, job: &str) -> PathBuf {
    PathBuf::from(format!("{database}-import-{job}.lock"))
}

/// Takes the lock at `path` without waiting; whether it could.
pub(crate) fn take(path: &Path) -> io::Result<bool> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(error)) => return Err(error),
        }
        // The holder before may have removed the file between our open and our lock: the lock
        // is ours only if that file is still the one at `path`; if not, try the new one.
        if is_at(&file, path)? {
            HELD.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(path.to_owned(), file);
            return Ok(true);
        }
    }
}

/// Gives back the lock at `path` if this process holds it, and removes its file.
pub(crate) fn give_back(path: &Path) -> io::Result<()> {
    let held = HELD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(path);
    if let Some(file) = held {
        // Removed while still locked, so that whoever opened it meanwhile finds it gone.
        let removed = std::fs::remove_file(path);
        drop(file);
        removed?;
    }
    Ok(())
}

#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let opened = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok((now.dev(), now.ino()) == (opened.dev(), opened.ino())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Elsewhere an open file cannot be removed, so the file at `path` is the one locked.
#[cfg(not(unix))]
fn is_at(_: &File, _: &Path) -> io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_file_goes_with_the_lock() {
        let dir = tempfile::tempdir().expect("folder");
        let database = dir.path().join("tavana.db");
        let lock = path(&database.to_string_lossy(), "job-1");
        assert!(take(&lock).expect("taken"));
        assert!(lock.exists());
        // Refused while held, from another open file of this process too.
        assert!(!take(&lock).expect("refused"));
        give_back(&lock).expect("given back");
        assert!(!lock.exists());
        assert!(take(&lock).expect("taken again"));
        give_back(&lock).expect("given back");
        // Giving back a lock not held is nothing.
        give_back(&lock).expect("nothing");
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken() {
        let dir = tempfile::tempdir().expect("folder");
        let lock = path(&dir.path().join("tavana.db").to_string_lossy(), "job-2");
        std::fs::write(&lock, "").expect("left behind");
        assert!(take(&lock).expect("taken"));
        give_back(&lock).expect("given back");
        assert!(!lock.exists());
    }
}
