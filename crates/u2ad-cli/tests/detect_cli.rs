//! `u2ad detect` as a user runs it, with a tiny random model on the real shared cohort: the
//! files it writes, their grid and values, the tables, calls with and without calibration, reuse
//! of a previous run, a failing subject, and bad input.

use std::path::Path;

use u2ad_core::detect_outputs::SubjectMaps;
use u2ad_core::scoring::{smoothed_reconstruction, PlaneShape};
use u2ad_data::sample_file;
use u2ad_io::volume::Volume;
use u2ad_model::model_file;

mod common;
use common::{errsm30, relative_files, s, text, tiny_model, u2ad};

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

const LEVEL_HEADER: [&str; 14] = [
    "subject",
    "level",
    "score",
    "threshold",
    "z",
    "z_threshold",
    "call",
    "reason",
    "peak_position_mm",
    "extent_mm",
    "peak_signal_ratio",
    "mean_eu",
    "eu_limit",
    "group",
];

#[test]
fn detects_the_shared_cohort_writes_every_output_and_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("detect");
    let cohort = sample_file("spine-t2");
    // The paper's two-sided AU (a random model reconstructs the cord too bright, so the default
    // hyperintense-only map would be nearly empty); the default is checked at the end.
    let args = ["detect", s(&cohort), "--model", s(&model), "--out", s(&out), "--pooling", "pooled", "--jobs", "2", "--polarity", "both"];
    let output = u2ad(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("5 subjects done (0 reused), 0 failed"), "{stderr}");
    assert!(!stderr.contains("not calibrated"), "pooled: 24 reference scores per level: {stderr}");
    let table = text(&output.stdout);
    assert_eq!(table.lines().filter(|l| l.starts_with("sub-errsm")).count(), 5, "{table}");

    // Every file of one subject.
    let files = relative_files(&out.join("sub-errsm11"));
    let stem = "sub-errsm11_T2w";
    let expected: Vec<String> = [
        "anat/{}_desc-anomaly.json",
        "anat/{}_desc-anomaly.nii.gz",
        "anat/{}_desc-curve_scores.csv",
        "anat/{}_desc-curve_scores.json",
        "anat/{}_desc-levels_scores.csv",
        "anat/{}_desc-levels_scores.json",
        "anat/{}_desc-mc_samples.json",
        "anat/{}_desc-mc_samples.safetensors",
        "anat/{}_desc-patient_scores.json",
        "anat/{}_desc-reconstruction.json",
        "anat/{}_desc-reconstruction.nii.gz",
        "anat/{}_desc-uncertainty.json",
        "anat/{}_desc-uncertainty.nii.gz",
        "anat/{}_label-candidates_mask.json",
        "anat/{}_label-candidates_mask.nii.gz",
        "figures/{}_desc-curve_qc.json",
        "figures/{}_desc-curve_qc.png",
        "figures/{}_desc-maps_qc.json",
        "figures/{}_desc-maps_qc.png",
    ]
    .iter()
    .map(|f| f.replace("{}", stem))
    .collect();
    assert_eq!(files, expected);
    for top in ["dataset_description.json", "levels.csv", "levels.json", "patients.csv", "patients.json", "qc_report.html"] {
        assert!(out.join(top).is_file(), "{top}");
    }
    let anat = out.join("sub-errsm11/anat");

    // Maps: float32 on the input's grid; zero off the sampled slices; AU only near the cord.
    let input = Volume::read(cohort.join("sub-errsm11/anat/sub-errsm11_T2w.nii.gz")).unwrap();
    let cord = Volume::read(cohort.join("derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_label-SC_seg.nii.gz")).unwrap();
    let maps = SubjectMaps::read(&anat.join(format!("{stem}_desc-mc_samples.safetensors"))).unwrap();
    assert_eq!(maps.samples.len(), 17, "17 sagittal slices hold cord (as u2ad prepare reports)");
    let sampled: Vec<usize> = maps.samples.iter().map(|s| s.meta.native_slice).collect();
    let anomaly = Volume::read(anat.join(format!("{stem}_desc-anomaly.nii.gz"))).unwrap();
    let uncertainty = Volume::read(anat.join(format!("{stem}_desc-uncertainty.nii.gz"))).unwrap();
    let reconstruction = Volume::read(anat.join(format!("{stem}_desc-reconstruction.nii.gz"))).unwrap();
    let candidates = Volume::read(anat.join(format!("{stem}_label-candidates_mask.nii.gz"))).unwrap();
    for map in [&anomaly, &uncertainty, &reconstruction, &candidates] {
        assert_eq!(map.shape(), input.shape());
        assert!(map.affine.max_abs_difference(&input.affine) < 1e-6);
    }
    assert_eq!(anomaly.header.datatype, 16, "float32");
    assert_eq!(candidates.header.datatype, 2, "uint8 mask");
    let shape = input.shape();
    // PSR: sagittal slices run along axis 2.
    for k in 0..shape[2] {
        let plane_sum: f32 = anomaly.data.index_axis(ndarray::Axis(2), k).iter().map(|v| v.abs()).sum::<f32>()
            + reconstruction.data.index_axis(ndarray::Axis(2), k).iter().map(|v| v.abs()).sum::<f32>();
        assert_eq!(plane_sum > 0.0, sampled.contains(&k), "slice {k}: maps only on sampled slices");
    }
    let mut au_voxels = 0;
    for ((i, j, k), &v) in anomaly.data.indexed_iter() {
        if v > 0.0 {
            au_voxels += 1;
            let near_cord = (i.saturating_sub(1)..=(i + 1).min(shape[0] - 1))
                .any(|a| (j.saturating_sub(1)..=(j + 1).min(shape[1] - 1)).any(|b| cord.data[[a, b, k]] > 0.5));
            assert!(near_cord, "AU at ({i}, {j}, {k}) away from the cord");
        }
        assert!(uncertainty.data[[i, j, k]] >= 0.0);
    }
    assert!(au_voxels > 1000, "{au_voxels} AU voxels");
    assert!(candidates.data.iter().filter(|&&v| v == 1.0).count() > 0);
    assert!(candidates.data.iter().all(|&v| v == 0.0 || v == 1.0));
    // The reconstruction is in the input's units: away from the cord (outside the ROI) it is the
    // clipped input, resampled twice.
    let (low, high) = (maps.subject.intensity_low as f32, maps.subject.intensity_high as f32);
    let mid = sampled[sampled.len() / 2];
    let mut differences: Vec<f32> = Vec::new();
    for i in 0..shape[0] {
        for j in 0..shape[1] {
            let r = reconstruction.data[[i, j, mid]];
            let near_cord = (i.saturating_sub(15)..(i + 15).min(shape[0])).any(|a| cord.data[[a, j, mid]] > 0.5);
            if r != 0.0 && !near_cord {
                differences.push((r - input.data[[i, j, mid]].clamp(low, high)).abs() / (high - low));
            }
        }
    }
    differences.sort_by(f32::total_cmp);
    assert!(differences.len() > 10_000, "{}", differences.len());
    let median = differences[differences.len() / 2];
    assert!(median < 0.03, "median |reconstruction - input| off the cord: {median} of the intensity range");

    // Sidecars.
    let sidecar = json(&anat.join(format!("{stem}_desc-anomaly.json")));
    assert_eq!(sidecar["GeneratedBy"][0]["Name"], "u2ad");
    assert!(sidecar["GeneratedBy"][0]["Command"].as_str().unwrap().contains("detect"));
    assert_eq!(sidecar["ModelHash"], model_file::read_model_info(&model).unwrap().hash.as_str());
    assert_eq!(sidecar["ConfigHash"].as_str().unwrap().len(), 16);
    assert_eq!(sidecar["Seed"], 0);
    assert_eq!(sidecar["MonteCarlo"]["samples_per_patch"], 10);
    assert_eq!(sidecar["Units"], "[0, 1] intensity scale");

    // Per-level CSV.
    let (header, rows) = read_csv(&anat.join(format!("{stem}_desc-levels_scores.csv")));
    assert_eq!(header, LEVEL_HEADER);
    let levels: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(levels, ["C2/C3", "C3/C4", "C4/C5", "C5/C6", "C6/C7", "C7/T1"]);
    let mut previous_peak = f64::NEG_INFINITY;
    for row in &rows {
        assert_eq!(row[0], "sub-errsm11");
        assert!(["positive", "negative", "indeterminate"].contains(&row[6].as_str()), "{row:?}");
        let score: f64 = row[2].parse().unwrap();
        let threshold: f64 = row[3].parse().unwrap();
        assert!(score >= 0.0 && threshold >= 0.0);
        if row[6] == "positive" {
            assert!(score > threshold);
        }
        if row[6] == "negative" {
            assert!(score <= threshold);
        }
        let peak: f64 = row[8].parse().unwrap();
        assert!(peak >= previous_peak, "peaks follow the levels down the cord: {rows:?}");
        previous_peak = peak;
        let ratio: f64 = row[10].parse().unwrap();
        assert!(ratio > 0.2 && ratio < 5.0, "{ratio}");
    }
    assert!((0.0..40.0).contains(&rows[0][8].parse::<f64>().unwrap()), "C2/C3 peak within 40 mm of C2's centre");

    // Patient JSON agrees with the table.
    let patient = json(&anat.join(format!("{stem}_desc-patient_scores.json")));
    // The highest score of the levels and of the cord above and below them.
    let outside = patient["OutsideLevels"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap());
    let best = rows.iter().map(|r| r[2].parse::<f64>().unwrap()).chain(outside).fold(f64::NEG_INFINITY, f64::max);
    assert!((patient["PatientScore"].as_f64().unwrap() - best).abs() <= 1e-12 * best.max(1.0));
    let positives: Vec<&str> = rows.iter().filter(|r| r[6] == "positive").map(|r| r[1].as_str()).collect();
    assert_eq!(patient["PositiveLevels"], serde_json::json!(positives));
    let call = patient["Call"].as_str().unwrap();
    assert_eq!(call == "positive", !positives.is_empty(), "{call}");

    // sub-errsm30 covers C2 to C5 only.
    let (_, rows30) = read_csv(&out.join("sub-errsm30/anat/sub-errsm30_T2w_desc-levels_scores.csv"));
    let calls30: Vec<&str> = rows30.iter().map(|r| r[6].as_str()).collect();
    assert_eq!(&calls30[4..], ["out_of_fov", "out_of_fov"], "{rows30:?}");
    assert!(rows30[4][2].is_empty() && rows30[4][8].is_empty(), "no score out of the field of view");

    // Cohort tables and figures.
    let (cohort_header, cohort_rows) = read_csv(&out.join("levels.csv"));
    assert_eq!(cohort_header, LEVEL_HEADER);
    assert_eq!(cohort_rows.len(), 30);
    let (_, patients) = read_csv(&out.join("patients.csv"));
    assert_eq!(patients.len(), 5);
    let description = json(&out.join("dataset_description.json"));
    assert_eq!(description["DatasetType"], "derivative");
    let figure = image::open(out.join("sub-errsm11/figures/sub-errsm11_T2w_desc-maps_qc.png")).unwrap();
    assert_eq!((figure.width(), figure.height()), (1064, 582));
    let html = std::fs::read_to_string(out.join("qc_report.html")).unwrap();
    assert_eq!(html.matches("<section class=\"subject\"").count(), 5);
    // The figures are the PNG files beside the report, loaded when shown.
    assert_eq!(html.matches("data:image/png;base64,").count(), 0);
    assert_eq!(html.matches("loading=\"lazy\" src=\"sub-errsm").count(), 10);
    assert!(html.contains("src=\"sub-errsm11/figures/sub-errsm11_T2w_desc-maps_qc.png\""));

    // A second run reuses every subject and writes the same tables; asked for, the report holds
    // its figures.
    let levels_before = std::fs::read(out.join("levels.csv")).unwrap();
    let mut self_contained = args.to_vec();
    self_contained.push("--self-contained-report");
    let again = u2ad(&self_contained);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("5 subjects done (5 reused)"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(out.join("levels.csv")).unwrap(), levels_before);
    let html = std::fs::read_to_string(out.join("qc_report.html")).unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), 10);
    // The default polarity keeps the hyperintense side only: the same maps, zero where the image
    // is not brighter than its reconstruction, so never above the two-sided map.
    let hyper_out = dir.path().join("hyperintense");
    let hyper = u2ad(&["detect", s(&cohort), "--model", s(&model), "--out", s(&hyper_out), "--include", "sub-errsm30"]);
    assert!(hyper.status.success(), "{}", text(&hyper.stderr));
    let anomaly_of = |root: &Path| Volume::read(root.join("sub-errsm30/anat/sub-errsm30_T2w_desc-anomaly.nii.gz")).unwrap().data;
    let (both, hyper) = (anomaly_of(&out), anomaly_of(&hyper_out));
    assert!(both.iter().zip(hyper.iter()).all(|(b, h)| *h <= *b + 1e-6));
    let nonzero = |a: &ndarray::Array3<f32>| a.iter().filter(|&&v| v > 0.0).count();
    assert!(nonzero(&hyper) < nonzero(&both), "{} of {}", nonzero(&hyper), nonzero(&both));
    // Exactly, on the sample grid (same model and seed, so the same reconstructions): the
    // two-sided map where the image is brighter than the reconstruction smoothed by a Gaussian
    // of 1.2 mm (the default), 0 elsewhere.
    let samples_of = |root: &Path| SubjectMaps::read(&root.join("sub-errsm30/anat/sub-errsm30_T2w_desc-mc_samples.safetensors")).unwrap();
    let (both_maps, hyper_maps) = (samples_of(&out), samples_of(&hyper_out));
    let mut brighter = 0;
    let mut smoothing_moves = 0;
    for (b, h) in both_maps.samples.iter().zip(&hyper_maps.samples) {
        assert_eq!(b.mean, h.mean);
        let expected_image = smoothed_reconstruction(&b.mean, PlaneShape::SAMPLE, 1.2 / b.meta.pixel_mm);
        let eroded = b.eroded_cord();
        for j in 0..b.image.len() {
            let expected = if b.image[j] > expected_image[j] { b.aleatoric[j] } else { 0.0 };
            assert_eq!(h.aleatoric[j], expected, "pixel {j}");
            if eroded[j] != 0 {
                assert!((b.aleatoric[j] - (b.image[j] - expected_image[j]).abs()).abs() < 1e-6, "pixel {j}");
                smoothing_moves += usize::from((expected_image[j] - b.mean[j]).abs() > 1e-3);
            }
            brighter += usize::from(expected > 0.0);
        }
    }
    assert!(brighter < both_maps.samples.iter().map(|s| s.aleatoric.iter().filter(|&&v| v > 0.0).count()).sum::<usize>());
    assert!(smoothing_moves > 100, "the smoothing moves the expected signal of the cord: {smoothing_moves} pixels");
    let sidecar = json(&hyper_out.join("sub-errsm30/anat/sub-errsm30_T2w_desc-anomaly.json"));
    let description = sidecar["Description"].as_str().unwrap();
    assert!(description.contains("smoothed in-plane by a Gaussian of sigma 1.2 mm") && description.contains("hyperintense side only"), "{description}");
    assert_eq!(sidecar["ReconstructionSmoothingMm"], 1.2);
    // `--reconstruction-smoothing-mm 0` is the paper's map: the raw mean (a new configuration).
    let raw_out = dir.path().join("raw");
    let raw = u2ad(&[
        "detect", s(&cohort), "--model", s(&model), "--out", s(&raw_out), "--include", "sub-errsm30", "--polarity", "both",
        "--reconstruction-smoothing-mm", "0",
    ]);
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    for r in &samples_of(&raw_out).samples {
        let eroded = r.eroded_cord();
        assert!((0..r.image.len()).all(|j| eroded[j] == 0 || (r.aleatoric[j] - (r.image[j] - r.mean[j]).abs()).abs() < 1e-6));
    }
    let bad = u2ad(&["detect", s(&cohort), "--model", s(&model), "--out", s(&raw_out), "--reconstruction-smoothing-mm=-1"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("is not a sigma in mm"), "{}", text(&bad.stderr));
    // Another seed changes the configuration hash: recomputed.
    let mut reseeded = args.to_vec();
    reseeded.extend(["--seed", "3", "--include", "sub-errsm30"]);
    let third = u2ad(&reseeded);
    assert!(third.status.success(), "{}", text(&third.stderr));
    assert!(text(&third.stderr).contains("1 subjects done (0 reused)"), "{}", text(&third.stderr));
}

#[test]
fn one_image_is_not_calibrated_unless_given_a_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("one");
    let mut args: Vec<String> =
        vec!["detect".into(), "--model".into(), s(&model).into(), "--out".into(), s(&out).into(), "--polarity".into(), "both".into()];
    args.extend(errsm30());
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = u2ad(&args_ref);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("warning: not calibrated: a cohort of one subject cannot calibrate thresholds"), "{stderr}");
    let csv = out.join("sub-errsm30/anat/sub-errsm30_T2w_desc-levels_scores.csv");
    let (_, rows) = read_csv(&csv);
    let calls: Vec<(&str, &str)> = rows.iter().map(|r| (r[6].as_str(), r[7].as_str())).collect();
    assert_eq!(
        calls,
        [
            ("indeterminate", "too_few_reference_values"),
            ("indeterminate", "too_few_reference_values"),
            ("indeterminate", "too_few_reference_values"),
            ("indeterminate", "too_few_reference_values"),
            ("out_of_fov", ""),
            ("out_of_fov", ""),
        ]
    );
    assert!(rows.iter().all(|r| r[3].is_empty()), "no threshold");
    let patient = json(&out.join("sub-errsm30/anat/sub-errsm30_T2w_desc-patient_scores.json"));
    assert_eq!(patient["Call"], "not_assessed");
    let html = std::fs::read_to_string(out.join("qc_report.html")).unwrap();
    assert!(html.contains("<div class=\"warn\">not calibrated: a cohort of one subject"));

    // With a fixed threshold the same maps are reused and called.
    let scores: Vec<f64> = rows[..4].iter().map(|r| r[2].parse().unwrap()).collect();
    let middle = {
        let mut sorted = scores.clone();
        sorted.sort_by(f64::total_cmp);
        (sorted[1] + sorted[2]) / 2.0
    };
    let mut fixed = args_ref.clone();
    let threshold = format!("{middle}");
    fixed.extend(["--threshold", threshold.as_str()]);
    let output = u2ad(&fixed);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains("not calibrated"));
    assert!(text(&output.stderr).contains("(1 reused)"));
    let (_, rows) = read_csv(&csv);
    for (row, score) in rows[..4].iter().zip(&scores) {
        assert_eq!(row[3].parse::<f64>().unwrap(), middle);
        assert_eq!(row[6], if *score > middle { "positive" } else { "negative" }, "{row:?}");
    }
    let patient = json(&out.join("sub-errsm30/anat/sub-errsm30_T2w_desc-patient_scores.json"));
    assert_eq!(patient["Call"], "positive");
    assert_eq!(patient["PositiveLevels"].as_array().unwrap().len(), 2);
}

#[test]
fn a_patient_positive_through_the_cord_above_the_levels_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("above");
    let cohort = sample_file("spine-t2");
    let run = |threshold: &str| {
        let args = ["detect", s(&cohort), "--model", s(&model), "--out", s(&out), "--include", "sub-errsm23", "--polarity", "both", "--threshold", threshold, "--quiet"];
        let output = u2ad(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
    };
    run("1000");
    let patient_json = out.join("sub-errsm23/anat/sub-errsm23_T2w_desc-patient_scores.json");
    let patient = json(&patient_json);
    assert_eq!(patient["Call"], "negative");
    let above = patient["OutsideLevels"].as_array().unwrap().iter().find(|r| r["region"] == "above_levels").expect("sub-errsm23 has cord above C2/C3").clone();
    let above_score = above["score"].as_f64().unwrap();
    assert!(above_score > 0.0);
    assert!(patient["PatientScore"].as_f64().unwrap() >= above_score, "the patient score counts the cord above the levels");

    // A threshold just below the cord above the levels (maps reused): that region is positive.
    let threshold = format!("{}", above_score * 0.999);
    run(&threshold);
    let patient = json(&patient_json);
    assert_eq!(patient["Call"], "positive");
    assert_eq!(patient["OutsideLevels"][0]["call"]["call"], "positive");
    let positive_outside: Vec<&str> = patient["OutsideLevels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["call"]["call"] == "positive")
        .map(|r| if r["region"] == "above_levels" { "above levels" } else { "below levels" })
        .collect();
    assert_eq!(positive_outside[0], "above levels");
    let (header, rows) = read_csv(&out.join("patients.csv"));
    let column = header.iter().position(|h| h == "positive_outside_levels").unwrap();
    assert_eq!(rows[0][column], positive_outside.join("; "));
    // The report says where the call comes from: the positive levels, then the cord outside them.
    let html = std::fs::read_to_string(out.join("qc_report.html")).unwrap();
    let note = format!("the cord above levels is positive: score {}", u2ad_report::figures::format_value(above_score));
    assert!(html.contains(&note), "{note}");
    let mut places: Vec<&str> = patient["PositiveLevels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    places.extend(&positive_outside);
    let summary = format!("positive levels: <b>{}</b>", places.join(", "));
    assert!(html.contains(&summary), "{summary}");
}

#[test]
fn a_prepared_dataset_gives_the_same_maps_as_the_scans() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let dataset = dir.path().join("one.u2ds");
    let mut prepare: Vec<String> = vec!["prepare".into(), "-o".into(), s(&dataset).into(), "--quiet".into()];
    prepare.extend(errsm30());
    let output = u2ad(&prepare.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", text(&output.stderr));

    let from_dataset = dir.path().join("a");
    let output = u2ad(&["detect", s(&dataset), "--model", s(&model), "--out", s(&from_dataset), "--threshold", "0.001"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let from_scans = dir.path().join("b");
    let mut args: Vec<String> =
        vec!["detect".into(), "--model".into(), s(&model).into(), "--out".into(), s(&from_scans).into(), "--threshold".into(), "0.001".into()];
    args.extend(errsm30());
    let output = u2ad(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let anomaly = |root: &Path| Volume::read(root.join("sub-errsm30/anat/sub-errsm30_T2w_desc-anomaly.nii.gz")).unwrap().data;
    assert_eq!(anomaly(&from_dataset), anomaly(&from_scans));
    let table = |root: &Path| std::fs::read_to_string(root.join("sub-errsm30/anat/sub-errsm30_T2w_desc-levels_scores.csv")).unwrap();
    assert_eq!(table(&from_dataset), table(&from_scans));
}

#[cfg(unix)]
#[test]
fn a_failing_subject_is_reported_and_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let root = dir.path().join("bids");
    let source = sample_file("spine-t2");
    for subject in ["sub-a", "sub-b"] {
        std::fs::create_dir_all(root.join(subject).join("anat")).unwrap();
        let labels = root.join("derivatives/labels").join(subject).join("anat");
        std::fs::create_dir_all(&labels).unwrap();
        for suffix in ["_label-SC_seg", "_label-vertebrae_dlabel"] {
            std::os::unix::fs::symlink(
                source.join(format!("derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w{suffix}.nii.gz")),
                labels.join(format!("{subject}_T2w{suffix}.nii.gz")),
            )
            .unwrap();
        }
    }
    std::os::unix::fs::symlink(source.join("sub-errsm30/anat/sub-errsm30_T2w.nii.gz"), root.join("sub-a/anat/sub-a_T2w.nii.gz"))
        .unwrap();
    std::fs::write(root.join("sub-b/anat/sub-b_T2w.nii.gz"), b"not an image").unwrap();
    let out = dir.path().join("out");
    let output = u2ad(&["detect", s(&root), "--model", s(&model), "--out", s(&out)]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("u2ad: sub-b: failed:") && stderr.contains("sub-b_T2w.nii.gz"), "{stderr}");
    assert!(stderr.contains("u2ad: error: 1 of 2 subjects failed (sub-b)"), "{stderr}");
    assert!(out.join("sub-a/anat/sub-a_T2w_desc-anomaly.nii.gz").is_file());
    assert!(!out.join("sub-b").exists(), "nothing written for the failed subject");
    let html = std::fs::read_to_string(out.join("qc_report.html")).unwrap();
    assert!(html.contains("1 subject(s) failed") && html.contains("<b>sub-b</b>"));
    let levels = json(&out.join("levels.json"));
    assert_eq!(levels["FailedSubjects"][0]["subject"], "sub-b");
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_model = dir.path().join("weights.safetensors");
    std::fs::write(&not_a_model, b"garbage").unwrap();
    let out = dir.path().join("out");
    let output = u2ad(&["detect", s(&sample_file("spine-t2")), "--model", s(&not_a_model), "--out", s(&out)]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("u2ad: error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("weights.safetensors") && errors[0].contains("not a safetensors model"), "{stderr}");
    assert!(!out.exists());

    let model = tiny_model(dir.path());
    let output = u2ad(&["detect", s(&sample_file("spine-t2")), "--model", s(&model), "--out", s(&out), "--target-fpr", "1.5"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("u2ad: error: invalid scoring configuration"), "{}", text(&output.stderr));
    assert!(!out.exists());
}

#[test]
fn the_old_batch_flag_sets_the_monte_carlo_batch() {
    // `detect --batch`, the spelling before `--mc-batch` (which no longer sits beside training's
    // `--batch-size`), stays (hidden) for one release.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("slices");
    let output = u2ad(&["detect", s(&sample_file("clinical-slices")), "--model", s(&model), "--out", s(&out), "-k", "2", "--batch", "3", "--threshold", "0.001", "--quiet"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let sidecar = json(&out.join("slice-1/anat/slice-1_desc-anomaly.json"));
    assert_eq!(sidecar["MonteCarlo"]["passes_per_batch"], 3, "{sidecar}");
    assert!(!text(&u2ad(&["detect", "--help"]).stdout).contains("--batch "), "hidden from --help");
}

#[test]
fn detects_the_reference_npy_slices_on_their_own_grid() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("slices");
    let output = u2ad(&["detect", s(&sample_file("clinical-slices")), "--model", s(&model), "--out", s(&out), "--pooling", "pooled", "--min-reference", "2", "--polarity", "both"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Maps on the slice's 256 x 256 grid, named after the slice without `.npy`.
    let anomaly = Volume::read(out.join("slice-1/anat/slice-1_desc-anomaly.nii.gz")).unwrap();
    assert_eq!(anomaly.shape(), [256, 256, 1]);
    assert!(anomaly.spacing_mm().iter().zip([0.78125, 0.78125, 1.0]).all(|(a, b)| (a - b).abs() < 1e-6), "{:?}", anomaly.spacing_mm());
    assert!(anomaly.data.iter().any(|&v| v > 0.0) && anomaly.data.iter().all(|v| v.is_finite()));
    // The maps are the sample maps themselves, pixel for pixel.
    let maps = SubjectMaps::read(&out.join("slice-1/anat/slice-1_desc-mc_samples.safetensors")).unwrap();
    let sample = &maps.samples[0];
    for (index, &value) in sample.aleatoric.iter().enumerate().step_by(97) {
        assert!((anomaly.data[[index / 256, index % 256, 0]] - value).abs() < 1e-6, "pixel {index}");
    }
    // Levels from the vertebral bodies of the label channel: slice-1 shows C2/C3 to C7/T1,
    // slice-3 (32 mm of cord) C2/C3 and C3/C4.
    let (header, rows) = read_csv(&out.join("levels.csv"));
    assert_eq!(header, LEVEL_HEADER);
    let scored = |subject: &str| -> Vec<String> {
        rows.iter().filter(|r| r[0] == subject && !r[2].is_empty()).map(|r| r[1].clone()).collect()
    };
    assert_eq!(scored("slice-1"), ["C2/C3", "C3/C4", "C4/C5", "C5/C6", "C6/C7", "C7/T1"]);
    assert_eq!(scored("slice-3"), ["C2/C3", "C3/C4"]);
}
