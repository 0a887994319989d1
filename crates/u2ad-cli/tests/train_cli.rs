//! `u2ad pretrain` and `u2ad adapt` as a user runs them: the run folder they write, one clear
//! error line for bad input, and a run killed with SIGKILL then resumed that ends with exactly
//! the weights of the same run left alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use u2ad_core::dataset::{PreparedDataset, PreparedSample, SampleMeta, SubjectMeta, SAMPLE_PIXELS, SAMPLE_SIZE};

fn u2ad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_u2ad")).args(args).output().expect("u2ad runs")
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn ok(output: &Output) {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn stderr_line(output: &Output) -> String {
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("u2ad: error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, got: {text}");
    errors[0].to_string()
}

/// A sagittal-looking slice: a cord band with CSF on both sides over `rows`; `lesion` adds a
/// bright spot in the cord.
fn sample(variant: usize, lesion: bool) -> PreparedSample {
    let n = SAMPLE_SIZE;
    let mut image = vec![0f32; SAMPLE_PIXELS];
    let (mut cord, mut csf, mut roi) = (vec![0u8; SAMPLE_PIXELS], vec![0u8; SAMPLE_PIXELS], vec![0u8; SAMPLE_PIXELS]);
    let shift = variant % 3;
    for r in 0..n {
        for c in 0..n {
            let j = r * n + c;
            image[j] = 0.2 + 0.05 * (((r + 5 * variant) as f32) / 9.0).sin() * ((c as f32) / 13.0).cos();
            if (40..220).contains(&r) {
                let c = c as isize - shift as isize;
                if (120..136).contains(&c) {
                    cord[j] = 1;
                    image[j] = if lesion && (120..130).contains(&r) { 0.75 } else { 0.35 + 0.02 * ((r as f32) / 7.0).sin() };
                } else if (112..120).contains(&c) || (136..144).contains(&c) {
                    csf[j] = 1;
                    image[j] = 0.9;
                }
            }
        }
    }
    for r in 1..n - 1 {
        for c in 1..n - 1 {
            let near = (r - 1..=r + 1).any(|rr| (c - 1..=c + 1).any(|cc| cord[rr * n + cc] + csf[rr * n + cc] > 0));
            roi[r * n + c] = u8::from(near);
        }
    }
    PreparedSample {
        meta: SampleMeta {
            subject_index: 0,
            native_slice: variant,
            pixel_to_native: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, variant as f64]],
            pixel_mm: 0.78125,
            offset_from_mid_mm: variant as f64 - 1.0,
        },
        image,
        roi,
        cord,
        csf,
        row_segment: vec![0; n],
    }
}

fn write_dataset(path: &Path, samples: usize) {
    let mut ds = PreparedDataset::new("u2ad prepare (synthetic test cohort)".into());
    let subject = SubjectMeta {
        subject: "sub-synthetic".into(),
        image_path: PathBuf::from("sub-synthetic_T2w.nii.gz"),
        cord_mask_path: None,
        csf_mask_path: None,
        levels_path: None,
        shape: [256, 256, samples],
        spacing_mm: [1.0, 1.0, 1.0],
        orientation: "RPI".into(),
        csf_derived: false,
        cord_length_mm: 140.0,
        levels_found: Vec::new(),
        levels_source: "none".into(),
        intensity_low: 0.0,
        intensity_high: 1.0,
    };
    ds.push_subject(subject, (0..samples).map(|v| sample(v, v == 1)).collect());
    ds.write(path).unwrap();
}

/// 16 x 16 patches, one narrow block each side: an epoch of 6 slices takes a few tens of ms.
const TINY: &str = "seed = 3
[model]
patch_size = 16
encoder_dim = 16
encoder_depth = 1
encoder_heads = 2
decoder_dim = 8
decoder_depth = 1
decoder_heads = 2
[training]
batch_size = 2
checkpoint_every = 2
[pretraining]
epochs = 2
[adaptation]
eu_epochs = 2
au_epochs = 2
refresh_every = 2
[adaptation.mc]
samples_per_patch = 2
";

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("cohort.u2ds");
    write_dataset(&data, 6);
    let config = dir.join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    (data, config)
}

#[test]
fn pretrain_then_adapt_write_their_run_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = setup(dir.path());
    let pre = dir.path().join("runs/pretrain");
    ok(&u2ad(&["pretrain", s(&data), "--out", s(&pre), "--config", s(&config), "--quiet"]));
    for file in ["model.safetensors", "model.json", "config.toml", "losses.csv", "training.png", "reconstruction.png", "checkpoints/epoch-0002/state.json"] {
        assert!(pre.join(file).is_file(), "{file}");
    }
    let info = u2ad_model::read_model_info(&pre.join("model.safetensors")).unwrap();
    assert_eq!(info.config.patch_size, 16);
    assert_eq!(info.provenance["command"], "pretrain");
    assert_eq!(info.provenance["epochs"], 2);
    assert_eq!(info.provenance["training_samples"], 6);
    assert_eq!(info.provenance["config"]["training"]["batch_size"], 2);
    let losses = std::fs::read_to_string(pre.join("losses.csv")).unwrap();
    assert_eq!(losses.lines().count(), 3, "{losses}");
    assert!(losses.lines().nth(2).unwrap().starts_with("2,pretrain,3e-3,"));
    // The resolved configuration is complete and reads back as the same configuration.
    let resolved = u2ad_model::TrainingConfig::from_toml(&std::fs::read_to_string(pre.join("config.toml")).unwrap()).unwrap();
    assert_eq!((resolved.seed, resolved.model.encoder_dim, resolved.adaptation.mc.samples_per_patch), (3, 16, 2));
    assert_eq!(resolved.optimizer.beta_2, 0.95);

    let adapt = dir.path().join("runs/adapt");
    let model = pre.join("model.safetensors");
    ok(&u2ad(&["adapt", s(&data), "--model", s(&model), "--out", s(&adapt), "--config", s(&config), "--au-epochs", "1", "--quiet"]));
    for file in ["model.safetensors", "config.toml", "losses.csv", "uncertainty.csv", "training.png", "uncertainty.png", "reconstruction.png"] {
        assert!(adapt.join(file).is_file(), "{file}");
    }
    let info = u2ad_model::read_model_info(&adapt.join("model.safetensors")).unwrap();
    assert_eq!(info.provenance["command"], "adapt");
    assert_eq!(info.provenance["epochs"], 3);
    assert_eq!(info.provenance["pretrained_epochs"], 2);
    let uncertainty = std::fs::read_to_string(adapt.join("uncertainty.csv")).unwrap();
    let epochs: Vec<&str> = uncertainty.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(epochs, vec!["0", "2", "3"], "refreshes before epochs 0 and 2, and after the last");
    let stages: Vec<&str> = std::fs::read_to_string(adapt.join("losses.csv")).unwrap().lines().skip(1).map(|l| l.split(',').nth(1).unwrap().to_string()).map(|s| if s == "eu_guided" { "eu" } else { "au" }).collect();
    assert_eq!(stages, vec!["eu", "eu", "au"]);
}

#[test]
fn bad_input_gives_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = setup(dir.path());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[training]\nbatchsize = 4\n").unwrap();
    let out = dir.path().join("run");
    let line = stderr_line(&u2ad(&["pretrain", s(&data), "--out", s(&out), "--config", s(&bad)]));
    assert!(line.contains("bad.toml") && line.contains("batchsize"), "{line}");
    assert!(!out.exists(), "nothing written");

    let line = stderr_line(&u2ad(&["pretrain", s(&dir.path().join("missing.u2ds")), "--out", s(&out), "--epochs", "1"]));
    assert!(line.contains("missing.u2ds"), "{line}");

    let line = stderr_line(&u2ad(&["pretrain", s(&data), "--out", s(&out), "--batch-size", "0"]));
    assert!(line.contains("training.batch_size is 0"), "{line}");

    let line = stderr_line(&u2ad(&["adapt", s(&data), "--model", s(&data), "--out", s(&out)]));
    assert!(line.contains("cohort.u2ds") && line.contains("not a u2ad model file") || line.contains("no model configuration"), "{line}");

    if !cfg!(feature = "cuda") {
        let line = stderr_line(&u2ad(&["pretrain", s(&data), "--out", s(&out), "--device", "cuda"]));
        assert!(line.contains("without CUDA support"), "{line}");
    }
}

#[test]
fn the_old_data_flag_still_names_the_dataset() {
    // `--data DATA`, the spelling before the dataset became the first argument, stays (hidden)
    // for one release: it reaches the same dataset; both spellings at once, or neither, are refused.
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = setup(dir.path());
    let missing = dir.path().join("missing.u2ds");
    let out = dir.path().join("run");
    let model = common::tiny_model(dir.path());
    for args in [
        vec!["pretrain", "--data", s(&missing), "--out", s(&out), "--epochs", "1"],
        vec!["adapt", "--data", s(&missing), "--model", s(&model), "--out", s(&out)],
    ] {
        let line = stderr_line(&u2ad(&args));
        assert!(line.contains("missing.u2ds"), "{args:?}: {line}");
        let mut positional = args.clone();
        positional.remove(1);
        assert_eq!(stderr_line(&u2ad(&positional)), line, "the first argument reads the same");
    }
    let both = u2ad(&["pretrain", s(&data), "--data", s(&data), "--out", s(&out)]);
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let neither = u2ad(&["adapt", "--model", s(&model), "--out", s(&out)]);
    assert!(!neither.status.success() && String::from_utf8_lossy(&neither.stderr).contains("required"));
    assert!(!out.exists(), "nothing written");
}

/// Tensors of a model file by name, as raw bytes.
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(name, view)| (name, view.data().to_vec())).collect();
    out.sort();
    out
}

/// Starts `args`, kills it with SIGKILL as soon as a checkpoint folder appears, and returns the
/// epochs done by that checkpoint.
fn kill_after_first_checkpoint(args: &[&str], out: &Path) -> usize {
    let mut child = Command::new(env!("CARGO_BIN_EXE_u2ad")).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let checkpoints = out.join("checkpoints");
    let epochs = loop {
        let found = std::fs::read_dir(&checkpoints).ok().and_then(|entries| {
            entries.filter_map(|e| e.ok()).find_map(|e| e.file_name().to_string_lossy().strip_prefix("epoch-").and_then(|n| n.parse::<usize>().ok()))
        });
        if let Some(epochs) = found {
            break epochs;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run was killed, not finished");
    assert!(!out.join("model.safetensors").exists(), "killed before the end");
    epochs
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = setup(dir.path());
    // More epochs than the other tests, one checkpoint every 2: the kill lands mid-run.
    let config = dir.path().join("resume.toml");
    std::fs::write(&config, TINY.replace("epochs = 2\n[adaptation]", "epochs = 12\n[adaptation]").replace("eu_epochs = 2\nau_epochs = 2", "eu_epochs = 5\nau_epochs = 5")).unwrap();
    let (data, config) = (s(&data).to_string(), s(&config).to_string());
    let run = |command: &str, out: &Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> =
            [command, &data, "--out", s(out), "--config", &config, "--quiet"].iter().map(|a| a.to_string()).collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };

    // Pretraining: uninterrupted, then killed and resumed.
    let whole = dir.path().join("pretrain-whole");
    ok(&u2ad(&refs(&run("pretrain", &whole, &[]))));
    let killed = dir.path().join("pretrain-killed");
    let at = kill_after_first_checkpoint(&refs(&run("pretrain", &killed, &[])), &killed);
    assert!(at < 12, "killed after epoch {at}");
    // Starting over a killed run without --resume is refused.
    let line = stderr_line(&u2ad(&refs(&run("pretrain", &killed, &[]))));
    assert!(line.contains("--resume"), "{line}");
    ok(&u2ad(&refs(&run("pretrain", &killed, &["--resume"]))));
    assert_eq!(tensors(&killed.join("model.safetensors")), tensors(&whole.join("model.safetensors")));
    let losses = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("losses.csv")).unwrap().lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(losses(&killed), losses(&whole), "same loss rows (wall time aside)");

    // Adaptation (maps refreshed every 2 epochs, stage switch at 5): the same.
    let model = whole.join("model.safetensors");
    let model = s(&model).to_string();
    let whole_adapt = dir.path().join("adapt-whole");
    ok(&u2ad(&refs(&run("adapt", &whole_adapt, &["--model", &model]))));
    let killed_adapt = dir.path().join("adapt-killed");
    let at = kill_after_first_checkpoint(&refs(&run("adapt", &killed_adapt, &["--model", &model])), &killed_adapt);
    assert!(at < 10, "killed after epoch {at}");
    ok(&u2ad(&refs(&run("adapt", &killed_adapt, &["--model", &model, "--resume"]))));
    assert_eq!(tensors(&killed_adapt.join("model.safetensors")), tensors(&whole_adapt.join("model.safetensors")));
    assert_eq!(losses(&killed_adapt), losses(&whole_adapt));
    let uncertainty = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("uncertainty.csv")).unwrap().lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(uncertainty(&killed_adapt), uncertainty(&whole_adapt));

    // Resuming a finished run trains nothing and leaves its model file and sidecar byte for
    // byte as they were (the file's hash names the model in detection's sidecars and caches),
    // though the command line recorded in the provenance would differ.
    let finished = |d: &Path| [std::fs::read(d.join("model.safetensors")).unwrap(), std::fs::read(d.join("model.json")).unwrap()];
    let before = finished(&whole_adapt);
    ok(&u2ad(&refs(&run("adapt", &whole_adapt, &["--model", &model, "--resume"]))));
    assert_eq!(finished(&whole_adapt), before);
    // A lost sidecar is written again, the model file still left as it was.
    std::fs::remove_file(whole_adapt.join("model.json")).unwrap();
    ok(&u2ad(&refs(&run("adapt", &whole_adapt, &["--model", &model, "--resume"]))));
    assert_eq!(finished(&whole_adapt)[0], before[0]);
    let sidecar: serde_json::Value = serde_json::from_slice(&finished(&whole_adapt)[1]).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&before[1]).unwrap();
    assert_eq!(sidecar["Provenance"], original["Provenance"], "the provenance of the model file kept");
    // A different model in its place (the pretrained one) is replaced, and so is its sidecar.
    let other = killed.join("model.safetensors");
    assert_ne!(tensors(&other), tensors(&killed_adapt.join("model.safetensors")));
    std::fs::copy(&other, whole_adapt.join("model.safetensors")).unwrap();
    std::fs::copy(killed.join("model.json"), whole_adapt.join("model.json")).unwrap();
    ok(&u2ad(&refs(&run("adapt", &whole_adapt, &["--model", &model, "--resume"]))));
    assert_eq!(tensors(&whole_adapt.join("model.safetensors")), tensors(&killed_adapt.join("model.safetensors")));
    let sidecar: serde_json::Value = serde_json::from_slice(&finished(&whole_adapt)[1]).unwrap();
    assert_eq!(sidecar["Provenance"]["command"], "adapt");
    // So is a damaged copy of the same model (one weight byte flipped; its header still says the same).
    let path = whole_adapt.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    ok(&u2ad(&refs(&run("adapt", &whole_adapt, &["--model", &model, "--resume"]))));
    assert_eq!(tensors(&path), tensors(&killed_adapt.join("model.safetensors")));
}
