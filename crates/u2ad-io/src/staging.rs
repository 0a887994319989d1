//! Atomic writes, the one helper of that kind: a file is written under a temporary name beside
//! its destination and renamed into place once complete ([`write_atomically`]); a set of files
//! that must appear together or not at all is renamed into place only when all of them were
//! written ([`StagedWrites::commit`]). Dropped without a commit (an error, a full disk), the
//! temporary files are removed, so a failed subject or cohort step leaves nothing half-written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{FileError, Result};

/// Files written but not yet in place: (temporary, destination), in the order written.
#[derive(Debug, Default)]
pub struct StagedWrites {
    pending: Mutex<Vec<(PathBuf, PathBuf)>>,
}

/// A temporary name beside `path` that keeps its extension (`.tmp-<pid>-<n>-<name>`).
pub fn temporary_sibling(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    let name = path.file_name().ok_or_else(|| FileError::input(path, "output path has no file name"))?;
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(".tmp-{}-{}-{}", std::process::id(), unique, name.to_string_lossy())))
}

/// Writes a file through `write` into a temporary sibling ([`temporary_sibling`]), then renames
/// it onto `path`, so that a failure never leaves a half-written output. `write`'s own error type
/// passes through unchanged (a caller with its own errors keeps them); the writer's file errors
/// are converted into it.
pub fn write_atomically<E: From<FileError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| FileError::input(dir, format!("cannot create the output folder: {e}")))?;
    let tmp = temporary_sibling(path)?;
    match write(&tmp) {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            FileError::input(path, format!("cannot write file: {e}")).into()
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// [`write_atomically`] of `bytes`; an error names `path`.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| FileError::io(path, e)))
}

impl StagedWrites {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stages `path` with the bytes `write` puts into the temporary file it is given.
    pub fn write_with(&self, path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| FileError::io(dir, e))?;
        }
        let tmp = temporary_sibling(path)?;
        // Registered first, so that a partial temporary file is removed too.
        self.lock().push((tmp.clone(), path.to_path_buf()));
        write(&tmp)
    }

    /// Stages `path` with `bytes`.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.write_with(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| FileError::io(path, e)))
    }

    /// Renames every staged file into place, in the order they were written (so a file written
    /// last, such as a completion marker, lands last).
    pub fn commit(self) -> Result<()> {
        let pending = std::mem::take(&mut *self.lock());
        for (index, (tmp, path)) in pending.iter().enumerate() {
            if let Err(e) = std::fs::rename(tmp, path) {
                for (rest, _) in &pending[index..] {
                    let _ = std::fs::remove_file(rest);
                }
                return Err(FileError::io(path, e));
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PathBuf, PathBuf)>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for StagedWrites {
    fn drop(&mut self) {
        for (tmp, _) in self.lock().drain(..) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = walk(dir).iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
        names.sort();
        names
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flat_map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() { walk(&p) } else { vec![p] }
            })
            .collect()
    }

    #[test]
    fn an_atomic_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        write_file_atomically(&path, b"x\n").unwrap();
        write_file_atomically(&path, b"y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "y\n");
        assert_eq!(names(dir.path()), ["a.csv"]);
        let error = write_atomically(&dir.path().join("b.csv"), |tmp| Err(FileError::input(tmp, "full"))).unwrap_err();
        assert!(error.to_string().contains("full"));
        assert_eq!(names(dir.path()), ["a.csv"], "no temporary file left");
    }

    #[test]
    fn nothing_appears_before_the_commit_and_all_after() {
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedWrites::new();
        staged.write(&dir.path().join("a/x.csv"), b"1").unwrap();
        staged.write(&dir.path().join("b.json"), b"2").unwrap();
        assert!(names(dir.path()).iter().all(|n| n.contains(".tmp-")), "{:?}", names(dir.path()));
        staged.commit().unwrap();
        assert_eq!(names(dir.path()), ["a/x.csv", "b.json"]);
        assert_eq!(std::fs::read(dir.path().join("a/x.csv")).unwrap(), b"1");
    }

    #[test]
    fn a_failed_step_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let staged = StagedWrites::new();
            staged.write(&dir.path().join("a.csv"), b"1").unwrap();
            let error = staged
                .write_with(&dir.path().join("b.nii.gz"), |tmp| {
                    std::fs::write(tmp, b"half").unwrap();
                    Err(FileError::input(tmp, "No space left on device"))
                })
                .unwrap_err();
            assert!(error.to_string().contains("No space left"));
        }
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }
}
