//! One writer per data directory.
//!
//! The register holds an exclusive OS file lock on `<data dir>/kasa.lock` for as long as it
//! runs (`flock` on Linux, `LockFileEx` on Windows, through `std::fs::File::try_lock`). The lock
//! goes with the process: a register that is killed leaves no stale lock behind. Any other
//! process that finds the directory locked never runs start-up recovery or a dispatcher on it:
//! it reads the database read-only, or refuses and says what to do.
//!
//! The owner's process id is written beside it (`kasa.pid`), for the messages: on Windows a
//! locked file can't be read through another handle.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "kasa.lock";
/// The file beside it that names the owner's process id.
pub const PID_FILE: &str = "kasa.pid";

/// The held lock of a data directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// Who writes a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Nobody: no register runs on it.
    Free,
    /// A running register, with its process id when it could be read.
    Running {
        /// The register's process id.
        pid: Option<u32>,
    },
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another register runs on the directory.
    #[error(
        "another Kasa register{} is running on the data directory {}; close it first, or do this from its screen",
        pid.map(|p| format!(" (process {p})")).unwrap_or_default(),
        dir.display()
    )]
    Taken {
        /// The directory.
        dir: PathBuf,
        /// The owner's process id, when known.
        pid: Option<u32>,
    },
    /// The directory or the lock file could not be made or opened.
    #[error("cannot use the data directory {}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

fn read_pid(data_dir: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(data_dir.join(PID_FILE)).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl DirLock {
    /// Takes the lock of `data_dir` (creating the directory, owner-only, if needed). A probe by
    /// another process holds the file only for an instant (even on a loaded machine, far less
    /// than a second), so a refusal is retried for a second before it is believed.
    pub fn acquire(data_dir: &Path) -> Result<DirLock, LockError> {
        let io = |source| LockError::Io { dir: data_dir.to_path_buf(), source };
        create_private_dir(data_dir).map_err(io)?;
        let path = lock_path(data_dir);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Taken { dir: data_dir.to_path_buf(), pid: read_pid(data_dir) });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let mut pid = File::create(data_dir.join(PID_FILE)).map_err(io)?;
        write!(pid, "{}", std::process::id()).map_err(io)?;
        pid.flush().map_err(io)?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who writes `data_dir` now. Looks without taking the lock for longer than an instant and
/// without creating anything.
pub fn owner(data_dir: &Path) -> Owner {
    let file = match OpenOptions::new().read(true).open(lock_path(data_dir)) {
        Ok(f) => f,
        // No lock file: no register has ever run here.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Owner::Free,
        // A lock that cannot even be looked at is treated as held: never guess "free".
        Err(_) => return Owner::Running { pid: read_pid(data_dir) },
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Owner::Free
        }
        Err(TryLockError::WouldBlock) | Err(TryLockError::Error(_)) => Owner::Running { pid: read_pid(data_dir) },
    }
}

/// Creates a directory readable by its owner only (on Unix), with its parents.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        // A directory made by an older Kasa (or by hand) is tightened the same way.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_directory_and_it_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(owner(&data), Owner::Free, "no lock file yet");
        let held = DirLock::acquire(&data).unwrap();
        assert_eq!(owner(&data), Owner::Running { pid: Some(std::process::id()) });
        match DirLock::acquire(&data) {
            Err(LockError::Taken { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("a second lock must be refused, got {other:?}"),
        }
        drop(held);
        assert_eq!(owner(&data), Owner::Free);
        let again = DirLock::acquire(&data).unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "the data directory is the owner's only");
        }
    }
}
