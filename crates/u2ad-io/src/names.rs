//! Subject names, and the output paths built from them, made safe: a name that could leave the
//! output folder, smuggle a spreadsheet formula or a terminal escape never gets that far.
//!
//! A subject id is BIDS-style, `_`-separated entities: `sub-<label>[_ses-<label>][_<key>-<label>…]`
//! with letters and digits only in each key and label (BIDS). Names that are not BIDS (an image
//! given with `--image`, a `.npy` slice's file stem) may also use `-` inside an entity, and must
//! start with a letter or digit.

use std::path::{Component, Path, PathBuf};

use crate::error::{FileError, Result};

/// The longest subject id accepted (file names stay well under the 255 bytes of most systems).
pub const MAX_SUBJECT_ID_CHARS: usize = 128;

/// Why `id` is not a valid subject id, or `None` when it is.
pub fn subject_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("the subject name is empty".into());
    }
    if id.chars().count() > MAX_SUBJECT_ID_CHARS {
        return Some(format!("the subject name is longer than {MAX_SUBJECT_ID_CHARS} characters"));
    }
    let shown = printable(id);
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Some(format!(
            "subject name '{shown}' holds '{}': use letters and digits (BIDS: sub-<label>[_ses-<label>])",
            printable(&bad.to_string())
        ));
    }
    for entity in id.split('_') {
        if !entity.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Some(format!("subject name '{shown}': each '_'-separated part must start with a letter or digit"));
        }
    }
    if id.starts_with("sub-") {
        let bids_entity = |e: &str| {
            e.split_once('-').is_some_and(|(key, label)| {
                !key.is_empty()
                    && !label.is_empty()
                    && key.chars().all(|c| c.is_ascii_alphanumeric())
                    && label.chars().all(|c| c.is_ascii_alphanumeric())
            })
        };
        if let Some(bad) = id.split('_').find(|e| !bids_entity(e)) {
            return Some(format!(
                "subject name '{shown}': BIDS entity '{bad}' is not <key>-<label> with letters and digits only"
            ));
        }
    }
    None
}

/// Checks a subject id (see the module doc); the error names `source`, where the name came from.
pub fn check_subject_id(id: &str, source: &Path) -> Result<()> {
    match subject_id_problem(id) {
        None => Ok(()),
        Some(problem) => Err(FileError::input(source, problem)),
    }
}

/// `relative` joined under `root`, refused when it could end outside `root`: an absolute path,
/// `..`, or a folder on the way that is a symbolic link out of `root`.
pub fn path_inside(root: &Path, relative: &Path) -> Result<PathBuf> {
    let escapes = relative.components().any(|c| !matches!(c, Component::Normal(_)));
    if escapes {
        return Err(FileError::input(
            root.join(relative),
            "the output path would leave the output folder (absolute or '..')",
        ));
    }
    let joined = root.join(relative);
    ensure_under(root, &joined)?;
    Ok(joined)
}

/// Refuses `path` (lexically under `root`) when the part of it that exists already resolves
/// (through symbolic links) outside `root`. Nothing is created.
fn ensure_under(root: &Path, path: &Path) -> Result<()> {
    let Ok(root_real) = existing_prefix_real(root) else { return Ok(()) };
    let Ok(path_real) = existing_prefix_real(path) else { return Ok(()) };
    if path_real.starts_with(&root_real) {
        return Ok(());
    }
    Err(FileError::input(
        path,
        format!("the output path leads outside the output folder {} (a symbolic link?)", root.display()),
    ))
}

/// The real path of the deepest existing ancestor of `path`, with the rest appended.
fn existing_prefix_real(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |p: PathBuf, part| p.join(part))),
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Err(std::io::Error::other("no existing ancestor")),
            },
        }
    }
}

/// `text` with control characters (escape, newline, …) shown as `\u{…}`, for the terminal.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// A CSV cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`,
/// tab or carriage return gets a leading `'` (OWASP's advice), numbers such as `-1.5` stay.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && text.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_and_plain_names_pass() {
        for id in ["sub-errsm11", "sub-01_ses-02", "sub-01_ses-02_acq-sag", "errsm21", "clinical_slice_01", "scan-3"] {
            assert_eq!(subject_id_problem(id), None, "{id}");
        }
    }

    #[test]
    fn names_that_escape_or_inject_are_refused() {
        for id in ["../../x", "/tmp/x", "sub-=1+1", "sub-a b", "sub-a\u{1b}[31m", "sub-a\nb", "", "-x", "sub-a_", "sub-01_ses-", "a.b"] {
            assert!(subject_id_problem(id).is_some(), "{id:?} accepted");
        }
        let long = format!("sub-{}", "a".repeat(200));
        assert!(subject_id_problem(&long).unwrap().contains("longer than 128"));
        assert!(subject_id_problem("sub-a\u{1b}").unwrap().contains("\\u{1b}"), "the message itself is printable");
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        assert_eq!(path_inside(&out, Path::new("sub-a/anat")).unwrap(), out.join("sub-a/anat"));
        assert!(path_inside(&out, Path::new("../x")).is_err());
        assert!(path_inside(&out, Path::new("/tmp/x")).is_err());
        std::fs::create_dir_all(&out).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("sub-link")).unwrap();
        let error = path_inside(&out, Path::new("sub-link/anat")).unwrap_err().to_string();
        assert!(error.contains("outside the output folder"), "{error}");
        // A symbolic link to a folder inside the root is fine.
        std::fs::create_dir_all(out.join("real")).unwrap();
        std::os::unix::fs::symlink(out.join("real"), out.join("sub-inner")).unwrap();
        assert!(path_inside(&out, Path::new("sub-inner/anat")).is_ok());
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("sub-a\u{1b}[31m\nb"), "sub-a\\u{1b}[31m\\u{a}b");
        assert_eq!(printable("sub-ä"), "sub-ä");
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("+1+1x"), "'+1+1x");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-cmd"), "'-cmd");
        assert_eq!(csv_cell("-1.5"), "-1.5");
        assert_eq!(csv_cell("1e-3"), "1e-3");
        assert_eq!(csv_cell("sub-01"), "sub-01");
    }
}
