//! JSON sidecars: which command, version and configuration made an output (BIDS `GeneratedBy`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use u2ad_io::staging::StagedWrites;

/// The command line as typed.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `out.ext` -> `out.json` (for `.nii.gz`, the double extension is removed).
pub fn sidecar_path(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name
        .strip_suffix(".nii.gz")
        .or_else(|| name.rsplit_once('.').map(|(stem, _)| stem))
        .unwrap_or(&name)
        .to_string();
    output.with_file_name(format!("{stem}.json"))
}

/// The sidecar of `output`: GeneratedBy (name, version, command) and `extra`.
fn sidecar_text(extra: Value) -> anyhow::Result<String> {
    let mut document = json!({
        "GeneratedBy": [{
            "Name": "u2ad",
            "Version": env!("CARGO_PKG_VERSION"),
            "Command": command_line(),
        }],
    });
    if let (Some(target), Value::Object(extra)) = (document.as_object_mut(), extra) {
        target.extend(extra);
    }
    Ok(serde_json::to_string_pretty(&document)?)
}

/// Writes the sidecar of `output` atomically: GeneratedBy (name, version, command) and `extra`.
pub fn write_sidecar(output: &Path, extra: Value) -> anyhow::Result<PathBuf> {
    let path = sidecar_path(output);
    let text = sidecar_text(extra)?;
    u2ad_io::staging::write_file_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// Stages the sidecar of `output` with the other files of one step (see [`StagedWrites`]).
pub fn stage_sidecar(staged: &StagedWrites, output: &Path, extra: Value) -> anyhow::Result<PathBuf> {
    let path = sidecar_path(output);
    staged.write(&path, sidecar_text(extra)?.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names() {
        assert_eq!(sidecar_path(Path::new("a/sub-1_T2w_anomaly.nii.gz")), Path::new("a/sub-1_T2w_anomaly.json"));
        assert_eq!(sidecar_path(Path::new("cohort.u2ds")), Path::new("cohort.json"));
    }
}
