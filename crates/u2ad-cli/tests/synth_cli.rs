//! `u2ad synth` as a user runs it: the BIDS cohort it writes (found by discovery, read by
//! `u2ad prepare`), byte-identical reruns with one seed, and one clear line with a non-zero exit
//! and nothing written for bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use u2ad_data::sample_file;
use u2ad_eval::synth::lesion_label_path;
use u2ad_io::cohort::{discover_bids, DiscoveryOptions};
use u2ad_io::volume::{Volume, VoxelType};

mod common;
use common::{s, u2ad};

fn error_line(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("u2ad: error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, got: {text}");
    errors[0].to_string()
}

/// Every file under `root` (relative path → bytes).
fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    common::relative_files(root).into_iter().map(|name| (PathBuf::from(&name), std::fs::read(root.join(&name)).unwrap())).collect()
}

fn manifest_rows(root: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root.join("synth_manifest.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines.map(|line| header.iter().map(|h| h.to_string()).zip(line.split('\t').map(str::to_string)).collect()).collect()
}

#[test]
fn writes_a_bids_cohort_that_discovery_and_prepare_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth-cohort");
    let output = u2ad(&[
        "synth",
        s(&sample_file("spine-t2")),
        "--out",
        s(&out),
        "--include",
        "sub-errsm11",
        "--include",
        "sub-errsm30",
        "--subjects-per-source",
        "2",
        "--lesion-free-fraction",
        "0.25",
        "--levels",
        "C3/C4,C4/C5",
        "--seed",
        "3",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(table.lines().count(), 5, "{table}");

    // The manifest: one row per subject here (one lesion each, one lesion-free).
    let rows = manifest_rows(&out);
    let subjects: Vec<&str> = rows.iter().map(|r| r["subject"].as_str()).collect();
    assert_eq!(subjects, ["sub-errsm11syn01", "sub-errsm11syn02", "sub-errsm30syn01", "sub-errsm30syn02"]);
    let lesion_free: Vec<&BTreeMap<String, String>> = rows.iter().filter(|r| r["level"] == "n/a").collect();
    assert_eq!(lesion_free.len(), 1);
    for row in rows.iter().filter(|r| r["level"] != "n/a") {
        assert!(["C3/C4", "C4/C5"].contains(&row["level"].as_str()), "{row:?}");
        let length: f64 = row["length_mm"].parse().unwrap();
        let width: f64 = row["width_fraction"].parse().unwrap();
        assert!((3.0..=15.0).contains(&length) && (0.3..=0.7).contains(&width), "{row:?}");
        assert_eq!(row["seed"], "3");
        let contrast: f64 = row["contrast_ratio"].parse().unwrap();
        let requested: f64 = row["contrast_ratio_requested"].parse().unwrap();
        // Equal unless the CSF cap lowered it.
        assert!(
            contrast <= requested + 0.002 && (row["capped_by_csf"] == "true" || (contrast - requested).abs() < 0.01),
            "{row:?}"
        );
    }

    // BIDS: found by discovery with the labels it used, plus the ground truth.
    let found = discover_bids(&out, &DiscoveryOptions::default()).unwrap();
    assert_eq!(found.len(), 4);
    for (files, row) in found.iter().zip(&rows) {
        assert_eq!(files.subject, row["subject"]);
        assert!(files.cord_mask.is_some() && files.levels.is_some(), "{files:?}");
        assert_eq!(files.csf_mask.is_some(), files.subject.starts_with("sub-errsm30"), "{files:?}");
        let source = sample_file(format!("spine-t2/{0}/anat/{0}_T2w.nii.gz", row["source_subject"]));
        let source = Volume::read(source).unwrap();
        let image = Volume::read(&files.image).unwrap();
        source.check_same_grid(&image, 1e-6).unwrap();
        assert_eq!(image.voxel_type, VoxelType::Int16);
        let truth = Volume::read(lesion_label_path(&out, &files.image)).unwrap();
        source.check_same_grid(&truth, 1e-6).unwrap();
        assert_eq!(truth.voxel_type, VoxelType::UInt8);
        let voxels = truth.data.iter().filter(|&&v| v > 0.5).count();
        let expected: usize = row["voxels"].parse().unwrap_or(0);
        assert_eq!(voxels, expected, "{}", files.subject);
        // The cord mask is the source's, byte for byte.
        let source_cord = sample_file(format!(
            "spine-t2/derivatives/labels/{0}/anat/{0}_T2w_label-SC_seg.nii.gz",
            row["source_subject"]
        ));
        assert_eq!(std::fs::read(files.cord_mask.as_ref().unwrap()).unwrap(), std::fs::read(source_cord).unwrap());
    }
    let description: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("dataset_description.json")).unwrap()).unwrap();
    assert_eq!(description["DatasetType"], "raw");
    assert_eq!(description["GeneratedBy"][0]["Name"], "u2ad");
    let labels: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("derivatives/labels/dataset_description.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(labels["DatasetType"], "derivative");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("synth_manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["Seed"], 3);
    assert_eq!(manifest["Subjects"].as_array().unwrap().len(), 4);
    // Nothing but the cohort beside it (the temporary folder is gone).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // u2ad prepare reads it unchanged.
    let prepared = dir.path().join("synth.u2ds");
    let output = u2ad(&["prepare", s(&out), "-o", s(&prepared), "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dataset = u2ad_core::dataset::PreparedDataset::read(&prepared).unwrap();
    assert_eq!(dataset.meta.subjects.len(), 4);
}

#[test]
fn the_same_seed_gives_byte_identical_files_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str, jobs: &str| -> BTreeMap<PathBuf, Vec<u8>> {
        let out = dir.path().join(name);
        let input = sample_file("spine-t2");
        let output = u2ad(&[
            "synth",
            s(&input),
            "--out",
            s(&out),
            "--include",
            "sub-errsm30",
            "--subjects-per-source",
            "3",
            "--seed",
            seed,
            "--jobs",
            jobs,
            "--quiet",
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mut files = files_under(&out);
        // These name the command line, which names the output folder.
        for described in
            ["dataset_description.json", "derivatives/labels/dataset_description.json", "synth_manifest.json"]
        {
            assert!(files.remove(Path::new(described)).is_some(), "{described} missing");
        }
        files
    };
    let a = run("a", "7", "1");
    let b = run("b", "7", "4");
    assert_eq!(a.len(), 3 * 5 + 2, "{:?}", a.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(b.get(path) == Some(bytes), "{} differs between two runs with seed 7", path.display());
    }
    let c = run("c", "8", "1");
    let image = Path::new("sub-errsm30syn01/anat/sub-errsm30syn01_T2w.nii.gz");
    assert_ne!(a[image], c[image]);
}

#[test]
fn bad_input_ends_in_one_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample_file("spine-t2");
    // An output folder that exists is left alone.
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "keep me").unwrap();
    let output = u2ad(&["synth", s(&input), "--out", s(&taken), "--include", "sub-errsm30", "--quiet"]);
    assert!(!output.status.success());
    let line = error_line(&output);
    assert!(line.contains("taken") && line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read_to_string(taken.join("notes.txt")).unwrap(), "keep me");

    // A level outside the cropped scan's view: named, and no cohort (nor temporary folder) left.
    let out = dir.path().join("c67");
    let output =
        u2ad(&["synth", s(&input), "--out", s(&out), "--include", "sub-errsm30", "--levels", "C6/C7", "--quiet"]);
    assert!(!output.status.success());
    let line = error_line(&output);
    assert!(line.contains("sub-errsm30_T2w.nii.gz") && line.contains("C6/C7"), "{line}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the folder made above");

    // Parameters out of range.
    let output = u2ad(&["synth", s(&input), "--out", s(&out), "--width-fraction", "0.3:0.9", "--quiet"]);
    assert!(!output.status.success());
    assert!(error_line(&output).contains("--width-fraction 0.3:0.9 is outside 0.05:0.7"));
    let output = u2ad(&["synth", s(&input), "--out", s(&out), "--contrast", "3:1.3"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("lower bound is above the upper one"));
    let output = u2ad(&["synth", s(&input), "--out", s(&out), "--levels", "C9/C10"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown disc level 'C9/C10'"));

    // A subject without a level file.
    let bids = dir.path().join("bids");
    std::fs::create_dir_all(bids.join("sub-x/anat")).unwrap();
    std::fs::create_dir_all(bids.join("derivatives/labels/sub-x/anat")).unwrap();
    std::fs::copy(input.join("sub-errsm30/anat/sub-errsm30_T2w.nii.gz"), bids.join("sub-x/anat/sub-x_T2w.nii.gz"))
        .unwrap();
    std::fs::copy(
        input.join("derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz"),
        bids.join("derivatives/labels/sub-x/anat/sub-x_T2w_label-SC_seg.nii.gz"),
    )
    .unwrap();
    let out = dir.path().join("nolevels");
    let output = u2ad(&["synth", s(&bids), "--out", s(&out), "--quiet"]);
    assert!(!output.status.success());
    let line = error_line(&output);
    assert!(line.contains("sub-x_T2w.nii.gz") && line.contains("no level file"), "{line}");
    assert!(!out.exists());
}
