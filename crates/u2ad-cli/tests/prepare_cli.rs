//! `u2ad prepare` as a user runs it: the table it prints, the files it writes, and one clear
//! line with a non-zero exit and no output for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use u2ad_data::sample_file;

fn u2ad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_u2ad")).args(args).output().expect("u2ad runs")
}

fn stderr_line(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("u2ad: error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, got: {text}");
    errors[0].to_string()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn prepares_the_shared_cohort_and_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("healthy.u2ds");
    let output = u2ad(&["prepare", s(&sample_file("spine-t2")), "--out", s(&out), "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8_lossy(&output.stdout);
    let row = table.lines().find(|l| l.starts_with("sub-errsm11")).expect("a row for sub-errsm11");
    assert!(row.contains(" 17 ") && row.contains("derived") && row.contains("C7/T1"), "{row}");
    let row30 = table.lines().find(|l| l.starts_with("sub-errsm30")).unwrap();
    assert!(row30.contains("given"), "{row30}");
    let dataset = u2ad_core::dataset::PreparedDataset::read(&out).unwrap();
    assert_eq!(dataset.meta.subjects.len(), 5);
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("healthy.json")).unwrap()).unwrap();
    assert_eq!(sidecar["GeneratedBy"][0]["Name"], "u2ad");
    assert_eq!(sidecar["Samples"], dataset.len());
}

#[test]
fn prepares_the_clinical_slices() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clinical.u2ds");
    let output = u2ad(&["prepare", s(&sample_file("clinical-slices")), "-o", s(&out), "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dataset = u2ad_core::dataset::PreparedDataset::read(&out).unwrap();
    assert_eq!(dataset.len(), 2);
    assert_eq!(dataset.meta.subjects[0].subject, "slice-1");
}

#[test]
fn the_old_output_flag_still_writes_the_dataset() {
    // `--output`, prepare's spelling before every verb wrote to -o/--out, stays (hidden) for one release.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clinical.u2ds");
    let output = u2ad(&["prepare", s(&sample_file("clinical-slices")), "--output", s(&out), "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dataset = u2ad_core::dataset::PreparedDataset::read(&out).unwrap();
    assert_eq!(dataset.len(), 2);
    assert!(!String::from_utf8_lossy(&u2ad(&["prepare", "--help"]).stdout).contains("--output"), "hidden from --help");
}

struct BadCase {
    image: PathBuf,
    cord: PathBuf,
    expect: &'static str,
}

fn assert_fails_cleanly(case: BadCase, named: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.u2ds");
    let output = u2ad(&["prepare", "--image", s(&case.image), "--cord", s(&case.cord), "-o", s(&out), "--quiet"]);
    assert!(!output.status.success());
    let line = stderr_line(&output);
    let name = named.file_name().unwrap().to_str().unwrap();
    assert!(line.contains(name) && line.contains(case.expect), "{line}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no output left behind");
}

#[test]
fn bad_input_ends_in_one_line_and_no_output() {
    let image = sample_file("spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz");
    let cord = sample_file("spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz");
    let dir = tempfile::tempdir().unwrap();
    // Missing file.
    let missing = dir.path().join("nope_T2w.nii.gz");
    assert_fails_cleanly(BadCase { image: missing.clone(), cord: cord.clone(), expect: "No such file" }, &missing);
    // Not NIfTI.
    let text = dir.path().join("notes_T2w.nii");
    std::fs::write(&text, "this is not an image, just a note that happens to be long enough to read a header from.".repeat(8)).unwrap();
    assert_fails_cleanly(BadCase { image: text.clone(), cord: cord.clone(), expect: "NIfTI" }, &text);
    // Cord mask on another grid.
    let other = sample_file("spine-t2/derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_label-SC_seg.nii.gz");
    assert_fails_cleanly(BadCase { image: image.clone(), cord: other.clone(), expect: "grid" }, &other);
    // Not sagittal (an axial slab).
    let axial = sample_file("fixtures/ivadomed/sub-unf01/anat/sub-unf01_T2w.nii.gz");
    let axial_cord = sample_file("fixtures/ivadomed/derivatives/labels/sub-unf01/anat/sub-unf01_T2w_seg-manual.nii.gz");
    assert_fails_cleanly(BadCase { image: axial.clone(), cord: axial_cord, expect: "sagittal" }, &axial);
}

#[test]
fn a_cohort_with_a_failing_subject_writes_nothing_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    // A BIDS copy of one subject whose cord mask is empty.
    let anat = dir.path().join("bids/sub-empty/anat");
    let labels = dir.path().join("bids/derivatives/labels/sub-empty/anat");
    std::fs::create_dir_all(&anat).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    let image = u2ad_io::volume::Volume::read(sample_file("spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz")).unwrap();
    std::fs::copy(&image.path, anat.join("sub-empty_T2w.nii.gz")).unwrap();
    let empty = image.data.mapv(|_| 0.0f32);
    let cord_path = labels.join("sub-empty_T2w_label-SC_seg.nii.gz");
    image.write_like(empty.view(), u2ad_io::volume::VoxelType::UInt8, &cord_path).unwrap();
    let out = dir.path().join("out.u2ds");
    let output = u2ad(&["prepare", s(&dir.path().join("bids")), "-o", s(&out), "--quiet"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sub-empty_T2w_label-SC_seg.nii.gz: the cord mask is empty"), "{stderr}");
    assert!(!out.exists());
}
