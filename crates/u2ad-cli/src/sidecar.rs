//! JSON sidecars: which command, version and configuration made an output (BIDS `GeneratedBy`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

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

/// Writes the sidecar of `output` atomically: GeneratedBy (name, version, command) and `extra`.
pub fn write_sidecar(output: &Path, extra: Value) -> anyhow::Result<PathBuf> {
    let path = sidecar_path(output);
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
    let text = serde_json::to_string_pretty(&document)?;
    u2ad_core::volume::write_atomically(&path, |tmp| {
        std::fs::write(tmp, &text).map_err(|e| u2ad_core::CoreError::io(tmp, e))
    })?;
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
