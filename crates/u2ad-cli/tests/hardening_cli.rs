//! Hostile and damaged input, as a user (or an attacker's folder) meets u2ad: names that would
//! write outside `--out`, a scan changed in place, damaged models and checkpoints, a full disk,
//! spreadsheet formulas and terminal escapes. Each ends in one clear line and nothing
//! half-written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use u2ad_data::sample_file;
use u2ad_io::volume::{Volume, VoxelType};

mod common;
use common::{errsm30, s, text, tiny_model, u2ad};

/// The one `u2ad: error:` line of a failed run (and that there is exactly one).
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "should fail: {}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("u2ad: error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

fn files_under(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

fn detect_args(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["detect", "--model", s(model), "--out", s(out), "--threshold", "0.001", "--quiet"].map(String::from).to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn run(args: &[String]) -> Output {
    u2ad(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn names_that_would_leave_the_output_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let work = dir.path().join("d");
    std::fs::create_dir_all(&work).unwrap();
    let out = work.join("out");
    for subject in ["../../x", "/tmp/u2ad-hardening-absolute", "sub-=1+1", "sub-a\nb"] {
        let mut args = detect_args(&model, &out, &["--subject", subject]);
        args.extend(errsm30());
        let line = error_line(&run(&args));
        assert!(line.contains("--subject") && line.contains("subject name"), "{line}");
        assert!(!line.contains('\u{1b}'));
    }
    assert!(!out.exists() && !dir.path().join("x").exists() && !Path::new("/tmp/u2ad-hardening-absolute").exists());

    let dataset = dir.path().join("bad.u2ds");
    let mut prepare: Vec<String> = ["prepare", "-o", s(&dataset), "--quiet", "--subject", "../../x"].map(String::from).to_vec();
    prepare.extend(errsm30());
    let line = error_line(&run(&prepare));
    assert!(line.contains("--subject"), "{line}");
    assert!(!dataset.exists());

    // A .u2ds written by an older u2ad that stored any name: refused when read, naming the file.
    let good = dir.path().join("good.u2ds");
    let mut prepare: Vec<String> = ["prepare", "-o", s(&good), "--quiet"].map(String::from).to_vec();
    prepare.extend(errsm30());
    assert!(run(&prepare).status.success());
    let bytes = std::fs::read(&good).unwrap();
    let old = dir.path().join("old.u2ds");
    // The replacement has the same length, so the tensor offsets stay.
    let mut patched = bytes.clone();
    // The metadata is JSON inside a JSON string: its quotes are escaped.
    let needle = br#"\"subject\":\"sub-errsm30\""#;
    let at = patched.windows(needle.len()).position(|w| w == needle).unwrap();
    patched[at..at + needle.len()].copy_from_slice(br#"\"subject\":\"../../xxxxx\""#);
    std::fs::write(&old, &patched).unwrap();
    let mut args = detect_args(&model, &out, &[]);
    args.insert(1, s(&old).to_string());
    let line = error_line(&run(&args));
    assert!(line.contains("old.u2ds") && line.contains("subject name '../../xxxxx'"), "{line}");
    assert!(!out.exists());

    // A symbolic link inside --out that leads out of it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("sub-errsm30")).unwrap();
    let mut args = detect_args(&model, &out, &[]);
    args.extend(errsm30());
    let output = run(&args);
    let stderr = text(&output.stderr);
    assert!(!output.status.success() && stderr.contains("outside the output folder"), "{stderr}");
    assert!(files_under(&elsewhere).is_empty(), "{:?}", files_under(&elsewhere));
}

#[test]
fn a_scan_changed_in_place_is_recomputed_and_formulas_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let source = sample_file("spine-t2");
    let root = dir.path().join("bids");
    let anat = root.join("sub-a/anat");
    let labels = root.join("derivatives/labels/sub-a/anat");
    std::fs::create_dir_all(&anat).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    let image = anat.join("sub-a_T2w.nii.gz");
    std::fs::copy(source.join("sub-errsm30/anat/sub-errsm30_T2w.nii.gz"), &image).unwrap();
    for suffix in ["_label-SC_seg", "_label-vertebrae_dlabel"] {
        std::fs::copy(
            source.join(format!("derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w{suffix}.nii.gz")),
            labels.join(format!("sub-a_T2w{suffix}.nii.gz")),
        )
        .unwrap();
    }
    // A participants.tsv whose source participant is a spreadsheet formula.
    std::fs::write(root.join("participants.tsv"), "participant_id\tsource_participant\nsub-a\t=HYPERLINK(\"x\")\n").unwrap();
    let out = dir.path().join("out");
    let mut args = detect_args(&model, &out, &[]);
    args.insert(1, s(&root).to_string());
    args.retain(|a| a != "--quiet");
    let first = run(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let reconstruction = out.join("sub-a/anat/sub-a_T2w_desc-reconstruction.nii.gz");
    let before = Volume::read(&reconstruction).unwrap();
    let levels = std::fs::read_to_string(out.join("levels.csv")).unwrap();
    assert!(levels.contains("'=HYPERLINK(\"\"x\"\")"), "{levels}");
    assert!(!levels.contains(",=HYPERLINK"), "{levels}");

    // Unchanged: reused.
    let again = run(&args);
    assert!(text(&again.stderr).contains("(1 reused)"), "{}", text(&again.stderr));
    // Intensities doubled and a third of the volume zeroed, at the same path: recomputed.
    let mut changed = Volume::read(&image).unwrap();
    let third = changed.data.len_of(ndarray::Axis(2)) / 3;
    changed.data.mapv_inplace(|v| v * 2.0);
    changed.data.slice_mut(ndarray::s![.., .., ..third]).fill(0.0);
    changed.write_like(changed.data.view(), VoxelType::Float32, &image).unwrap();
    let after_change = run(&args);
    assert!(after_change.status.success(), "{}", text(&after_change.stderr));
    assert!(text(&after_change.stderr).contains("(0 reused)"), "{}", text(&after_change.stderr));
    assert_ne!(Volume::read(&reconstruction).unwrap().data, before.data);
    // --force recomputes whatever matches.
    args.push("--force".into());
    assert!(text(&run(&args).stderr).contains("(0 reused)"));
}

/// Rewrites a model file's tensors through `edit` and seals it again as u2ad does (the hash of
/// the configuration and the tensor bytes), so that only the weights' values are wrong.
fn resealed_model(path: &Path, edit: impl Fn(&mut [u8])) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut tensors = bytes[8 + n..].to_vec();
    edit(&mut tensors);
    let config = header["__metadata__"]["u2ad_model_config"].as_str().unwrap().to_string();
    let mut hasher = Sha256::new();
    hasher.update(config.as_bytes());
    hasher.update([0u8]);
    hasher.update(&tensors);
    let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    header["__metadata__"]["u2ad_tensor_sha256"] = serde_json::Value::String(hash);
    let mut header = serde_json::to_vec(&header).unwrap();
    header.resize(header.len().div_ceil(8) * 8, b' ');
    std::fs::write(path, [&(header.len() as u64).to_le_bytes()[..], &header, &tensors].concat()).unwrap();
}

#[test]
fn damaged_models_are_refused_and_never_make_a_silent_zero_map() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut args = detect_args(&dir.path().join("tiny.safetensors"), &out, &[]);
    args.extend(errsm30());

    let model = tiny_model(dir.path());
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&model, &bytes).unwrap();
    let line = error_line(&run(&args));
    assert!(line.contains("tiny.safetensors") && line.contains("damaged"), "{line}");
    assert!(!out.exists());

    let model = tiny_model(dir.path());
    resealed_model(&model, |t| t[..4].copy_from_slice(&f32::NAN.to_le_bytes()));
    let line = error_line(&run(&args));
    assert!(line.contains("tiny.safetensors") && line.contains("NaN or infinite"), "{line}");
    assert!(!out.exists());

    // Finite weights so large that the reconstruction overflows: the subject fails, by name, with
    // no map written.
    let model = tiny_model(dir.path());
    resealed_model(&model, |t| t.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&3.0e37f32.to_le_bytes())));
    let output = run(&args);
    let stderr = text(&output.stderr);
    assert!(!output.status.success() && stderr.contains("reconstruction") && stderr.contains("NaN or infinite"), "{stderr}");
    assert!(stderr.contains("sub-errsm30_T2w.nii.gz"), "{stderr}");
    assert!(files_under(&out).is_empty(), "{:?}", files_under(&out));
}

#[test]
fn control_characters_in_names_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    let anat = root.join("sub-a\u{1b}[31m/anat");
    std::fs::create_dir_all(&anat).unwrap();
    std::fs::copy(sample_file("spine-t2").join("sub-errsm30/anat/sub-errsm30_T2w.nii.gz"), anat.join("sub-a\u{1b}[31m_T2w.nii.gz")).unwrap();
    let out = dir.path().join("x.u2ds");
    let output = u2ad(&["prepare", s(&root), "-o", s(&out)]);
    let line = error_line(&output);
    assert!(!text(&output.stderr).contains('\u{1b}'), "raw escape on the terminal");
    assert!(line.contains("\\u{1b}") && line.contains("letters and digits"), "{line}");
    assert!(!out.exists());
}

/// Runs u2ad with a fresh tmpfs of `size` mounted at `mount` (a full disk), in a user and mount
/// namespace, and lists the files left on it; `None` when this machine does not allow such a
/// namespace (the test then says SKIPPED).
fn on_full_disk(mount: &Path, size: &str, args: &[String]) -> Option<(Output, String)> {
    std::fs::create_dir_all(mount).unwrap();
    if !Command::new("unshare").args(["-rm", "true"]).output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: no user/mount namespace here to simulate a full disk");
        return None;
    }
    let listing = mount.with_extension("listing");
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs '{m}' || exit 99; \"$0\" \"$@\"; status=$?; find '{m}' -type f > '{l}'; exit $status",
        m = mount.display(),
        l = listing.display()
    );
    let output = Command::new("unshare").args(["-rm", "sh", "-c", &script, env!("CARGO_BIN_EXE_u2ad")]).args(args).output().unwrap();
    assert_ne!(output.status.code(), Some(99), "tmpfs: {}", text(&output.stderr));
    Some((output, std::fs::read_to_string(&listing).unwrap()))
}

const TINY_TRAINING: &str = "[model]\npatch_size = 16\nencoder_dim = 16\nencoder_depth = 1\nencoder_heads = 2\ndecoder_dim = 8\ndecoder_depth = 1\ndecoder_heads = 2\n[training]\nbatch_size = 2\ncheckpoint_every = 1\n[pretraining]\nepochs = 1\n";

/// A prepared one-subject dataset and a tiny training configuration.
fn training_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("one.u2ds");
    let mut prepare: Vec<String> = ["prepare", "-o", s(&data), "--quiet"].map(String::from).to_vec();
    prepare.extend(errsm30());
    assert!(run(&prepare).status.success());
    let config = dir.join("tiny.toml");
    std::fs::write(&config, TINY_TRAINING).unwrap();
    (data, config)
}

#[test]
fn a_full_disk_is_named_and_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mount = dir.path().join("disk");
    // 200 KiB: the first maps fit, not all of them.
    let mut args = detect_args(&model, &mount.join("out"), &[]);
    args.extend(errsm30());
    let Some((output, files)) = on_full_disk(&mount, "200k", &args) else { return };
    let line = error_line(&output);
    assert!(line.contains("No space left on device") && line.contains("/disk/out/"), "{line}");
    assert_eq!(files, "", "nothing half-written");

    // Pretraining: the checkpoint does not fit; the error names the file and the cause.
    let (data, config) = training_inputs(dir.path());
    let args: Vec<String> = ["pretrain", s(&data), "--out", s(&mount.join("run")), "--config", s(&config), "--quiet"].map(String::from).to_vec();
    let Some((output, _)) = on_full_disk(&mount, "24k", &args) else { return };
    let line = error_line(&output);
    assert!(line.contains("No space left on device") && line.contains("/disk/run/"), "{line}");
}

#[test]
fn a_truncated_checkpoint_is_one_line_and_keeps_the_run_config() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = training_inputs(dir.path());
    let out = dir.path().join("run");
    let output = u2ad(&["pretrain", s(&data), "--out", s(&out), "--config", s(&config), "--quiet"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let saved = std::fs::read(out.join("config.toml")).unwrap();
    let checkpoint = out.join("checkpoints/epoch-0001");
    let model = checkpoint.join("model.mpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let line = error_line(&u2ad(&["pretrain", s(&data), "--out", s(&out), "--resume", "--quiet"]));
    assert!(line.contains("model.mpk") && line.contains("damaged or truncated"), "{line}");
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), saved, "config.toml untouched");
    // A checkpoint of an older u2ad (no SHA256SUMS) with an empty file: still one line.
    std::fs::remove_file(checkpoint.join("SHA256SUMS")).unwrap();
    std::fs::write(&model, b"").unwrap();
    let line = error_line(&u2ad(&["pretrain", s(&data), "--out", s(&out), "--resume", "--quiet"]));
    assert!(line.contains("model.mpk") && line.contains("cannot decode the checkpoint file"), "{line}");

    // A run that fails its checks leaves no config.toml in a new folder.
    let fresh = dir.path().join("fresh");
    let line = error_line(&u2ad(&["pretrain", s(&data), "--out", s(&fresh), "--config", s(&config), "--resume", "--quiet"]));
    assert!(line.contains("no checkpoint to resume from"), "{line}");
    assert!(!fresh.join("config.toml").exists());
    let truncated = dir.path().join("truncated.u2ds");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let never = dir.path().join("never");
    let line = error_line(&u2ad(&["pretrain", s(&truncated), "--out", s(&never), "--config", s(&config), "--quiet"]));
    assert!(line.contains("truncated.u2ds"), "{line}");
    assert!(!never.exists(), "no run folder for a run that never started");
}

#[test]
fn the_device_flag_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("out");
    let mut args = detect_args(&model, &out, &["--device", "gpu"]);
    args.extend(errsm30());
    let output = run(&args);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("'gpu' is not auto, cpu, cuda or cuda:N"), "{}", text(&output.stderr));
    let mut args = detect_args(&model, &out, &["--device", "cuda"]);
    args.extend(errsm30());
    let line = error_line(&run(&args));
    if !cfg!(feature = "cuda") {
        assert!(line.contains("built without CUDA support") && line.contains("--features cuda"), "{line}");
    } else if !Path::new("/dev/nvidiactl").exists() {
        // A CUDA build on a machine without a driver: one line, no panic, no backtrace.
        assert!(line.contains("libcuda.so.1") && line.contains("--device cpu"), "{line}");
    }
    assert!(!out.exists(), "nothing written");
}
