//! Finding the sample data (`../shared/data` next to the project, or `U2AD_DATA`).

use std::path::{Path, PathBuf};

/// The directory holding `spine-t2/`, `templates/`, `fixtures/` and `clinical-slices/`.
///
/// Looks in `$U2AD_DATA`, then for `shared/data` beside any ancestor of the current
/// directory and of this crate's source directory, then in the download cache
/// ([`crate::fetch::cached_data_dir`], when a fetch completed there).
pub fn sample_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("U2AD_DATA") {
        let dir = PathBuf::from(dir);
        if dir.join("spine-t2").is_dir() {
            return Some(dir);
        }
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join("shared").join("data");
            if candidate.join("spine-t2").is_dir() {
                return Some(candidate);
            }
        }
    }
    crate::fetch::cached_data_dir().filter(|dir| crate::fetch::is_complete(dir))
}

/// The sample data directory, downloaded into the cache when it is not found (so that the tests
/// of a fresh clone with network access find it), or a panic saying how to provide it (for tests).
pub fn sample_data_dir_for_tests() -> PathBuf {
    static DIR: std::sync::OnceLock<std::result::Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| crate::fetch::locate_or_fetch_sample_data(&|_, _, _| {}).map_err(|e| e.to_string()))
        .clone()
        .unwrap_or_else(|e| {
            panic!("sample data not found ({e}): put the shared data at ../shared/data beside the project or set U2AD_DATA")
        })
}

/// `path` relative to the sample data directory (tests).
pub fn sample_file(relative: impl AsRef<Path>) -> PathBuf {
    sample_data_dir_for_tests().join(relative)
}
