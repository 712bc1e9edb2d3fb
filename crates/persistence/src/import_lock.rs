//! An import job's run lock on SQLite, where the database has no lock between processes (on
//! PostgreSQL it is a session advisory lock, see `imports::pg_run_lock`): a file beside the
//! database, `<database>-import-<job>.lock`, locked (`flock`) by the process that runs the job and
//! let go by the system if that process dies. A service that starts beside a running
//! `tavana import` thus leaves that job to it, as on PostgreSQL. Within one process the lock is
//! exclusive too: a runner holds it, and anyone else is refused.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};

/// The lock files this process holds. `flock` alone would refuse a second open file of this
/// process, but not where the system emulates it with per-process locks (NFS).
static HELD: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Mutex::default);

/// The lock file of `job` of the database at `database` (SQLite's full path of its file).
pub(crate) fn path(database: &str, job: &str) -> PathBuf {
    PathBuf::from(format!("{database}-import-{job}.lock"))
}

/// A held lock: given back, and its file removed, when dropped (a panic too).
#[derive(Debug)]
pub(crate) struct Held {
    path: PathBuf,
    file: Option<File>,
}

/// Takes the lock at `path` without waiting; `None` if someone holds it.
pub(crate) fn take(path: &Path) -> io::Result<Option<Held>> {
    if !held().insert(path.to_owned()) {
        return Ok(None);
    }
    // From here a `Held` gives the path back to `HELD`, whatever happens.
    let mut held = Held {
        path: path.to_owned(),
        file: None,
    };
    loop {
        // A file left by a process that died is locked again; read-only, in case that process
        // ran as another user (`flock` does not need to write).
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?,
            Err(error) => return Err(error),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(error)) => return Err(error),
        }
        // The holder before may have removed the file between our open and our lock: the lock
        // is ours only if that file is still the one at `path`; if not, try the new one.
        if is_at(&file, path)? {
            held.file = Some(file);
            return Ok(Some(held));
        }
    }
}

fn held() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Removed while still locked, so that whoever opened it meanwhile finds it gone; not
            // if someone removed it by hand and another process locks a new file there now.
            #[cfg(unix)]
            match is_at(&file, &self.path) {
                Ok(true) => {
                    if let Err(error) = std::fs::remove_file(&self.path) {
                        tracing::warn!(path = %self.path.display(), error = %error, "import lock file not removed");
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), error = %error, "import lock file not checked");
                }
            }
            drop(file);
        }
        held().remove(&self.path);
    }
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

/// Elsewhere the lock file is never removed, so the file at `path` is the one locked.
#[cfg(not(unix))]
fn is_at(_: &File, _: &Path) -> io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_in(dir: &tempfile::TempDir, job: &str) -> PathBuf {
        path(&dir.path().join("tavana.db").to_string_lossy(), job)
    }

    #[test]
    fn one_holder_at_a_time_and_the_file_goes_with_the_lock() {
        let dir = tempfile::tempdir().expect("folder");
        let lock = lock_in(&dir, "job-1");
        let held = take(&lock).expect("taken").expect("free");
        assert!(lock.exists());
        // Refused while held, in this process too.
        assert!(take(&lock).expect("refused").is_none());
        drop(held);
        assert!(!lock.exists());
        let again = take(&lock).expect("taken again");
        assert!(again.is_some());
    }

    #[test]
    fn refused_to_another_open_file_whatever_this_process_holds() {
        let dir = tempfile::tempdir().expect("folder");
        let lock = lock_in(&dir, "job-2");
        let _held = take(&lock).expect("taken").expect("free");
        // Another process's open file (flock is per open file, as for another process).
        let other = File::open(&lock).expect("opened");
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_and_removed() {
        let dir = tempfile::tempdir().expect("folder");
        let lock = lock_in(&dir, "job-3");
        std::fs::write(&lock, "").expect("left behind");
        drop(take(&lock).expect("taken").expect("free"));
        assert!(!lock.exists());
    }

    #[test]
    fn a_file_put_in_its_place_by_hand_is_not_removed() {
        let dir = tempfile::tempdir().expect("folder");
        let lock = lock_in(&dir, "job-4");
        let held = take(&lock).expect("taken").expect("free");
        std::fs::remove_file(&lock).expect("removed by hand");
        std::fs::write(&lock, "").expect("another file");
        drop(held);
        assert!(lock.exists());
    }

    #[test]
    fn an_unusable_folder_is_an_error_not_a_refusal() {
        let dir = tempfile::tempdir().expect("folder");
        let lock = dir.path().join("gone").join("tavana.db-import-job-5.lock");
        assert!(take(&lock).is_err());
        // Nothing is left held after the error.
        std::fs::create_dir(dir.path().join("gone")).expect("folder");
        assert!(take(&lock).expect("taken").is_some());
    }
}
