//! Finding the sample data (`../shared/data` next to the project, or `U2AD_DATA`, or the download
//! cache that `u2ad demo` and the tests fill when neither is there).

use std::path::{Path, PathBuf};

/// Written in the data folder once every file is there with its hash (by the download in
/// `fetch.rs`).
pub const COMPLETE_MARKER: &str = ".complete";

/// The directory holding `spine-t2/`, `templates/`, `fixtures/` and `clinical-slices/`.
///
/// Looks in `$U2AD_DATA`, then for `shared/data` beside any ancestor of the current
/// directory and of this crate's source directory, then in the download cache
/// ([`cached_data_dir`], when a fetch completed there).
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
    cached_data_dir().filter(|dir| is_complete(dir))
}

/// The cache folder: `$U2AD_CACHE`, else `$XDG_CACHE_HOME/u2ad`, else `~/.cache/u2ad`.
pub fn cache_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("U2AD_CACHE")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("u2ad")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".cache").join("u2ad")))
}

/// Where the downloaded sample data lives: `<cache>/data`.
pub fn cached_data_dir() -> Option<PathBuf> {
    cache_dir().map(|d| d.join("data"))
}

/// Whether `dir` holds the complete sample data (its marker, [`COMPLETE_MARKER`], is written
/// once the download has put every file in place).
pub fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file() && dir.join("spine-t2").is_dir()
}
