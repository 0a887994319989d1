//! A cohort spread over machines: `u2ad detect --shard I/N` on each, then `u2ad calibrate` once,
//! gives the calls of one `u2ad detect` run of the whole cohort, file for file.

use std::process::Output;

use u2ad_data::sample_file;

mod common;
use common::{s, text, tiny_model, u2ad};

fn ok(output: &Output) {
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn shards_then_calibrate_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let cohort = sample_file("spine-t2");
    let common = ["--model", s(&model), "--pooling", "pooled", "--polarity", "both", "--min-reference", "3"];

    let single = dir.path().join("single");
    ok(&u2ad(&[&["detect", s(&cohort), "--out", s(&single)][..], &common].concat()));

    let sharded = dir.path().join("sharded");
    ok(&u2ad(&[&["detect", s(&cohort), "--out", s(&sharded), "--shard", "1/2"][..], &common].concat()));
    // Calls need every shard.
    let early = u2ad(&["calibrate", s(&sharded), "--pooling", "pooled", "--min-reference", "3"]);
    assert!(!early.status.success());
    assert!(text(&early.stderr).contains("shard 0/2 not done yet"), "{}", text(&early.stderr));
    assert!(!sharded.join("levels.csv").exists(), "a shard writes no calls");
    let shard = u2ad(&[&["detect", s(&cohort), "--out", s(&sharded), "--shard", "0/2"][..], &common].concat());
    ok(&shard);
    assert!(text(&shard.stderr).contains("shard 0/2: 3 subjects done"), "{}", text(&shard.stderr));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sharded.join("shards/shard-1-of-2.json")).unwrap()).unwrap();
    let names: Vec<&str> = record["subjects"].as_array().unwrap().iter().map(|s| s["subject"].as_str().unwrap()).collect();
    assert_eq!(names, ["sub-errsm18", "sub-errsm23"], "every second subject from the second");

    let calibrated = u2ad(&["calibrate", s(&sharded), "--pooling", "pooled", "--min-reference", "3"]);
    ok(&calibrated);
    assert!(text(&calibrated.stderr).contains("5 subjects from 2 shards, 0 failed"), "{}", text(&calibrated.stderr));
    for table in ["levels.csv", "patients.csv", "sub-errsm23/anat/sub-errsm23_T2w_desc-levels_scores.csv", "sub-errsm11/anat/sub-errsm11_T2w_desc-curve_scores.csv"] {
        let (a, b) = (std::fs::read_to_string(single.join(table)).unwrap(), std::fs::read_to_string(sharded.join(table)).unwrap());
        assert_eq!(a, b, "{table}");
    }
    let (a, b) = (
        std::fs::read_to_string(single.join("sub-errsm30/anat/sub-errsm30_T2w_desc-patient_scores.json")).unwrap(),
        std::fs::read_to_string(sharded.join("sub-errsm30/anat/sub-errsm30_T2w_desc-patient_scores.json")).unwrap(),
    );
    let strip = |t: &str| t.lines().filter(|l| !l.contains("\"Command\"")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&a), strip(&b), "the same patient record but for the command line");
    assert!(sharded.join("qc_report.html").is_file());

    // A shard made with other settings is refused.
    ok(&u2ad(&[&["detect", s(&cohort), "--out", s(&sharded), "--shard", "0/2", "--seed", "5"][..], &common].concat()));
    let mixed = u2ad(&["calibrate", s(&sharded)]);
    assert!(!mixed.status.success());
    assert!(text(&mixed.stderr).contains("another model or settings"), "{}", text(&mixed.stderr));
}
