//! Finding the sample data (`../shared/data` next to the project, or `U2AD_DATA`, or the download
//! cache that `u2ad demo` and the tests fill when neither is there).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Written in the data folder once every file is there with its hash (by the download,
/// [`crate::fetch`]).
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

/// The sample data directory ([`sample_data_dir`]) for tests: when it is nowhere, it is downloaded
/// into the cache ([`cached_data_dir`]) with the sha256 checks of [`crate::fetch`], once per
/// process, saying so in one line on stderr; a failed download panics with one line saying where
/// to put the data instead.
pub fn sample_data_dir_for_tests() -> PathBuf {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // Straight to stderr, so that the test harness does not hold the line back.
        let say = |line: &str| {
            let _ = writeln!(std::io::stderr(), "{line}");
        };
        found_or_downloaded(sample_data_dir(), cached_data_dir(), crate::fetch::RAW_GITHUB, &crate::fetch::sample_sources(), &say)
    })
    .clone()
    .unwrap_or_else(|message| panic!("{message}"))
}

/// `found`, else `cache` once complete, downloading `files` from `base` into it (and marking it
/// complete) when it is not, which `say` is told in one line; the error is the one line
/// [`sample_data_dir_for_tests`] panics with.
pub(crate) fn found_or_downloaded(
    found: Option<PathBuf>,
    cache: Option<PathBuf>,
    base: &str,
    files: &[crate::fetch::SourceFile],
    say: &dyn Fn(&str),
) -> Result<PathBuf, String> {
    const INSTEAD: &str = "put the shared data at ../shared/data beside the project, or set U2AD_DATA to its folder";
    if let Some(dir) = found {
        return Ok(dir);
    }
    let Some(dest) = cache else {
        return Err(format!("sample data not found, and no cache folder to download it to (set U2AD_CACHE or HOME): {INSTEAD}"));
    };
    if is_complete(&dest) {
        return Ok(dest);
    }
    say(&format!("sample data not found: downloading its {} files (sha256-checked) into {}", files.len(), dest.display()));
    match crate::fetch::fetch_listed(&dest, base, files, &|_, _, _| {}) {
        Ok(_) => Ok(dest),
        Err(error) => Err(format!("sample data not found and its download failed ({error}): {INSTEAD}").replace('\n', " ")),
    }
}

/// `path` relative to the sample data directory (tests).
pub fn sample_file(relative: impl AsRef<Path>) -> PathBuf {
    sample_data_dir_for_tests().join(relative)
}
