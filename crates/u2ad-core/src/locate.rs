//! Finding the sample data (`../shared/data` next to the project, or `U2AD_DATA`).

use std::path::{Path, PathBuf};

/// The directory holding `spine-t2/`, `templates/`, `fixtures/` and `clinical-slices/`.
///
/// Looks in `$U2AD_DATA`, then for `shared/data` beside any ancestor of the current
/// directory and of this crate's source directory.
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
    None
}

/// The sample data directory, or a panic with a message saying how to provide it (for tests).
pub fn sample_data_dir_for_tests() -> PathBuf {
    sample_data_dir().expect(
        "sample data not found: put the shared data at ../shared/data beside the project or set U2AD_DATA",
    )
}

/// `path` relative to the sample data directory (tests).
pub fn sample_file(relative: impl AsRef<Path>) -> PathBuf {
    sample_data_dir_for_tests().join(relative)
}
