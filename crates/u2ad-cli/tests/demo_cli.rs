//! `u2ad demo` as a user runs it: the whole chain (prepare, pretrain, synth, adapt, detect,
//! baseline, evaluate, report) with a tiny model so that the test stays short, and its refusal to
//! overwrite a folder it did not make.

mod common;
use common::{relative_files, s, u2ad};

/// A model and schedule small enough for a test: one epoch of each stage.
const TINY: &str = "seed = 0
[model]
patch_size = 16
encoder_dim = 16
encoder_depth = 1
encoder_heads = 2
decoder_dim = 16
decoder_depth = 1
decoder_heads = 2
[training]
batch_size = 16
[pretraining]
epochs = 1
[adaptation]
eu_epochs = 1
au_epochs = 1
refresh_every = 1
[adaptation.mc]
samples_per_patch = 2
";

#[test]
fn the_demo_runs_end_to_end_and_reports_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = dir.path().join("demo");
    let data = u2ad_data::sample_data_dir_for_tests();
    let output = u2ad(&["demo", "--out", s(&out), "--config", s(&config), "--copies", "2", "--data", s(&data), "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("| method | group | pixel AUPRC | segment AUROC | segment AUPRC | segment F1 | patient F1 | patient FPR | indeterminate |"), "{printed}");
    assert!(printed.contains("| u2ad | all |") && printed.contains("| intensity | all |"), "{printed}");
    assert!(printed.contains("not clinical accuracy"));
    assert!(printed.contains(&format!("report: {}", out.join("report.html").display())), "{printed}");

    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("detect/u2ad/qc_report.html") && report.contains("detect/intensity/qc_report.html"));
    for path in ["detect/u2ad/qc_report.html", "detect/intensity/qc_report.html", "evaluation/evaluation.csv", "synth/synth_manifest.tsv", "runs/adapt/model.safetensors"] {
        assert!(out.join(path).is_file(), "{path}");
    }
    // The baseline's folder has exactly the detect layout: the same files, the same columns.
    let u2ad_files = relative_files(&out.join("detect/u2ad"));
    assert!(u2ad_files.len() > 40, "{u2ad_files:?}");
    assert_eq!(relative_files(&out.join("detect/intensity")), u2ad_files);
    let header = |path: &str| std::fs::read_to_string(out.join(path)).unwrap().lines().next().unwrap().to_string();
    assert_eq!(header("detect/intensity/levels.csv"), header("detect/u2ad/levels.csv"));
    assert_eq!(header("detect/intensity/patients.csv"), header("detect/u2ad/patients.csv"));

    // 3 sources x 2 copies; 30 % of 6 rounds to 2 lesion-free subjects.
    let subjects = std::fs::read_to_string(out.join("evaluation/evaluation_subjects.csv")).unwrap();
    assert_eq!(subjects.lines().filter(|l| l.starts_with("u2ad,")).count(), 6);
    assert_eq!(subjects.lines().filter(|l| l.starts_with("u2ad,") && l.contains(",0,0,")).count(), 2, "{subjects}");
    // Every subject is calibrated against the other hosts only: its participant is its source.
    let levels = std::fs::read_to_string(out.join("detect/u2ad/levels.csv")).unwrap();
    assert!(levels.lines().next().unwrap().ends_with(",group"), "{levels}");
    assert!(levels.lines().skip(1).all(|l| l.ends_with(",sub-errsm21") || l.ends_with(",sub-errsm23") || l.ends_with(",sub-errsm30")));

    // A second run refuses the folder without --force, and any folder that is not a demo's.
    let again = u2ad(&["demo", "--out", s(&out), "--config", s(&config), "--data", s(&data)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let other = dir.path().join("mine");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep").unwrap();
    let refused = u2ad(&["demo", "--out", s(&other), "--force", "--config", s(&config), "--data", s(&data)]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a u2ad demo folder"));
    assert_eq!(std::fs::read_to_string(other.join("notes.txt")).unwrap(), "keep");
}
