//! The training loop: sample selection, pretraining, adaptation with its refreshes, checkpoints
//! and resuming. Tiny model (256 x 256 input, 32 x 32 patches, widths 16 and 8) on synthetic
//! slices, so each run takes a fraction of a second.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use u2ad_core::scoring::Polarity;
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SampleMeta, SubjectMeta, SAMPLE_PIXELS, SAMPLE_SIZE};
use u2ad_model::checkpoint::{list_checkpoints, read_checkpoint_state};
use u2ad_model::records::{EpochRecord, Stage};
use u2ad_model::train::{RunOptions, Silent, TrainingObserver};
use u2ad_model::{adapt, pretrain, ModelConfig, TrainError, TrainingConfig, TrainingSet};

type B = Autodiff<Flex>;

fn tiny_model() -> ModelConfig {
    ModelConfig {
        image_size: 256,
        patch_size: 32,
        encoder_dim: 16,
        encoder_depth: 1,
        encoder_heads: 2,
        decoder_dim: 8,
        decoder_depth: 1,
        decoder_heads: 2,
        ..ModelConfig::default()
    }
}

fn tiny_config() -> TrainingConfig {
    let mut c = TrainingConfig { seed: 5, model: tiny_model(), ..TrainingConfig::default() };
    c.training.batch_size = 2;
    c.training.checkpoint_every = 2;
    c.pretraining.epochs = 3;
    c.adaptation.eu_epochs = 2;
    c.adaptation.au_epochs = 2;
    c.adaptation.refresh_every = 2;
    c.adaptation.mc.samples_per_patch = 3;
    c
}

/// A sagittal-looking slice: cord (columns 120..136, rows 40..220) at 0.35, CSF on both sides at
/// 0.9, background 0.2 with a gentle texture; `lesion` puts a bright spot in the cord.
/// `roi_rows` limits the cord and CSF to fewer rows (a slice at the edge of the cord).
fn sample(variant: usize, roi_rows: std::ops::Range<usize>, lesion: bool) -> PreparedSample {
    let n = SAMPLE_SIZE;
    let mut image = vec![0f32; SAMPLE_PIXELS];
    let (mut cord, mut csf, mut roi) = (vec![0u8; SAMPLE_PIXELS], vec![0u8; SAMPLE_PIXELS], vec![0u8; SAMPLE_PIXELS]);
    for r in 0..n {
        for c in 0..n {
            let j = r * n + c;
            image[j] = 0.2 + 0.05 * (((r + 3 * variant) as f32) / 9.0).sin() * ((c as f32) / 13.0).cos();
            if roi_rows.contains(&r) {
                if (120..136).contains(&c) {
                    cord[j] = 1;
                    image[j] = 0.35 + 0.02 * ((r as f32) / 7.0).sin();
                } else if (112..120).contains(&c) || (136..144).contains(&c) {
                    csf[j] = 1;
                    image[j] = 0.9;
                }
            }
            if lesion && (120..200).contains(&r) && (124..132).contains(&c) && r < 128 {
                image[j] = 0.7;
            }
        }
    }
    for r in 0..n {
        for c in 0..n {
            let near = (r.saturating_sub(1)..(r + 2).min(n)).any(|rr| (c.saturating_sub(1)..(c + 2).min(n)).any(|cc| cord[rr * n + cc] + csf[rr * n + cc] > 0));
            roi[r * n + c] = u8::from(near);
        }
    }
    PreparedSample {
        meta: SampleMeta {
            subject_index: 0,
            native_slice: variant,
            pixel_to_native: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, variant as f64]],
            pixel_mm: 0.78125,
            offset_from_mid_mm: variant as f64 - 2.0,
        },
        image,
        roi,
        cord,
        csf,
        row_segment: vec![0; n],
    }
}

fn subject() -> SubjectMeta {
    SubjectMeta {
        subject: "sub-synthetic".into(),
        image_path: PathBuf::from("sub-synthetic_T2w.nii.gz"),
        cord_mask_path: None,
        csf_mask_path: None,
        levels_path: None,
        shape: [256, 256, 8],
        spacing_mm: [1.0, 1.0, 1.0],
        orientation: "RPI".into(),
        csf_derived: false,
        cord_length_mm: 140.0,
        levels_found: Vec::new(),
        levels_source: "none".into(),
        intensity_low: 0.0,
        intensity_high: 1.0,
    }
}

/// Five slices: four with a full cord (one with a lesion), one whose ROI covers a single
/// 32 x 32 patch row pair only (rows 70..80: 2 patches, left out).
fn dataset() -> PreparedDataset {
    let mut ds = PreparedDataset::new("test".into());
    let samples = vec![
        sample(0, 40..220, false),
        sample(1, 40..220, true),
        sample(2, 40..220, false),
        sample(3, 70..80, false),
        sample(4, 40..220, false),
    ];
    ds.push_subject(subject(), samples);
    ds
}

fn run(dir: &Path, resume: bool) -> RunOptions {
    RunOptions::new(dir.to_path_buf(), "synthetic".into(), resume)
}

fn weights(model: &u2ad_model::MaskedAutoencoder<B>) -> Vec<Vec<f32>> {
    let record = model.clone().into_record();
    let mut out = Vec::new();
    let mut collect = |t: burn::tensor::Tensor<B, 2>| out.push(t.into_data().to_vec::<f32>().unwrap());
    collect(record.decoder_embedding.weight.val());
    collect(record.image_head.projection.weight.val());
    collect(record.edge_head.projection.weight.val());
    collect(record.encoder_blocks[0].attention.qkv.weight.val());
    collect(record.decoder_blocks[0].mlp.hidden.weight.val());
    out.push(record.patch_embedding.weight.val().into_data().to_vec::<f32>().unwrap());
    out
}

#[test]
fn samples_with_too_small_an_roi_are_left_out() {
    let set = TrainingSet::new(&dataset(), &tiny_config()).unwrap();
    // Sample 3's ROI (rows 69..81, columns 111..145) touches patch rows 2 and columns 3, 4: 2
    // patches < 3.
    assert_eq!(set.samples, vec![0, 1, 2, 4]);
    assert_eq!(set.skipped, vec![3]);
    assert_eq!(set.steps_per_epoch(2), 2);
    assert_eq!(set.steps_per_epoch(3), 2);
    let image = set.image(0);
    let (lo, hi) = image.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((lo, hi), (0.0, 1.0), "images are min–max normalised per slice");
    let mut bigger = tiny_config();
    bigger.training.min_roi_patches = 100;
    let e = TrainingSet::new(&dataset(), &bigger).unwrap_err();
    assert_eq!(e.to_string(), "no sample has an ROI on 100 or more patches (5 samples)");
}

#[derive(Default)]
struct Recorder {
    epochs: Vec<EpochRecord>,
    steps: usize,
    /// (epoch, step, loss) of every step, as reported.
    step_losses: Vec<(usize, usize, f64)>,
    checkpoints: Vec<PathBuf>,
    copy_at: Option<(usize, PathBuf)>,
}

impl TrainingObserver for Recorder {
    fn step_finished(&mut self, epoch: usize, step: usize, loss: f64) {
        assert!(loss.is_finite() && loss > 0.0);
        self.steps += 1;
        self.step_losses.push((epoch, step, loss));
    }
    fn epoch_finished(&mut self, record: &EpochRecord) {
        self.epochs.push(record.clone());
    }
    fn checkpoint_saved(&mut self, path: &Path) {
        self.checkpoints.push(path.to_path_buf());
        if let Some((epoch, target)) = &self.copy_at {
            if path.ends_with(format!("epoch-{epoch:04}")) {
                copy_dir(path, &target.join("checkpoints").join(path.file_name().unwrap()));
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn pretraining_records_each_epoch_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let set = TrainingSet::new(&dataset(), &config).unwrap();
    let mut rec = Recorder::default();
    let outcome = pretrain::<B>(&set, &config, &run(dir.path(), false), &mut rec, &Default::default()).unwrap();
    assert_eq!(rec.steps, 6, "3 epochs of 2 batches");
    let epochs: Vec<usize> = outcome.history.epochs.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    assert!(outcome.history.epochs.iter().all(|r| r.stage == Stage::Pretrain && r.learning_rate == 3e-3 && r.steps == 2));
    let first = &outcome.history.epochs[0];
    assert!((first.loss - (10.0 * first.image_mse + first.edge_mse)).abs() < 1e-6 * first.loss);
    assert!(outcome.history.epochs[2].loss < first.loss, "loss falls: {:?}", outcome.history.epochs);
    // Checkpoints after epochs 2 and 3; only the last is kept.
    assert_eq!(rec.checkpoints.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>(), ["epoch-0002", "epoch-0003"]);
    let kept = list_checkpoints(dir.path());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, 3);
    let state = read_checkpoint_state(&kept[0].1).unwrap();
    assert_eq!((state.epochs_done, state.total_epochs, state.maps_epoch), (3, 3, None));
    assert_eq!(state.samples, vec![0, 1, 2, 4]);
    let csv = std::fs::read_to_string(dir.path().join("losses.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.lines().nth(3).unwrap().starts_with("3,pretrain,3e-3,"));
    assert!(!dir.path().join("uncertainty.csv").exists());

    // The same seed gives the same run; starting again over its checkpoints is refused.
    let again = tempfile::tempdir().unwrap();
    let twin = pretrain::<B>(&set, &config, &run(again.path(), false), &mut Silent, &Default::default()).unwrap();
    assert_eq!(weights(&twin.model), weights(&outcome.model));
    let refused = pretrain::<B>(&set, &config, &run(dir.path(), false), &mut Silent, &Default::default()).err().unwrap();
    assert!(refused.to_string().contains("holds checkpoints of an earlier run"), "{refused}");
    let empty = tempfile::tempdir().unwrap();
    let nothing = pretrain::<B>(&set, &config, &run(empty.path(), true), &mut Silent, &Default::default()).err().unwrap();
    assert!(matches!(nothing, TrainError::Data(ref m) if m.contains("no checkpoint to resume from")), "{nothing}");
}

#[test]
fn adaptation_refreshes_the_maps_and_resumes_exactly() {
    let mut config = tiny_config();
    // Candidates from the hyperintense side only (the option; the default is the reference's |AU|).
    config.adaptation.candidates.polarity = Polarity::Hyperintense;
    let set = TrainingSet::new(&dataset(), &config).unwrap();
    let device = Default::default();
    let pre_dir = tempfile::tempdir().unwrap();
    let pretrained = pretrain::<B>(&set, &config, &run(pre_dir.path(), false), &mut Silent, &device).unwrap().model;

    // Uninterrupted: refreshes before epochs 0 and 2, and after the last (4).
    let full_dir = tempfile::tempdir().unwrap();
    let copy_dir_target = tempfile::tempdir().unwrap();
    let mut rec = Recorder { copy_at: Some((2, copy_dir_target.path().to_path_buf())), ..Recorder::default() };
    let full = adapt::<B>(pretrained.clone(), 3, &set, &config, &run(full_dir.path(), false), &mut rec, &device).unwrap();
    let refreshes: Vec<(usize, Stage)> = full.history.refreshes.iter().map(|r| (r.epoch, r.stage)).collect();
    assert_eq!(refreshes, vec![(0, Stage::EuGuided), (2, Stage::AuGuided), (4, Stage::AuGuided)]);
    let stages: Vec<Stage> = full.history.epochs.iter().map(|r| r.stage).collect();
    assert_eq!(stages, vec![Stage::EuGuided, Stage::EuGuided, Stage::AuGuided, Stage::AuGuided]);
    assert_eq!(full.history.stage_boundaries(), vec![(2, Stage::AuGuided)]);
    for r in &full.history.refreshes {
        assert_eq!(r.samples, 4);
        assert!(r.mean_eu > 0.0 && r.mean_au > 0.0, "{r:?}");
        // Components of at least 2 pixels, from the hyperintense side of the AU only.
        assert!(r.candidate_pixels >= 2, "{r:?}");
    }
    // The restarted schedule: epoch 0 of adaptation has the full learning rate.
    assert_eq!(full.history.epochs[0].learning_rate, 3e-3);
    let maps = full.maps.as_ref().unwrap();
    assert_eq!(maps.epoch, 4);
    assert_eq!(maps.epistemic.len(), 4 * 256 * 256);
    // EU and AU are 0 outside the MC ROI (cord ∪ CSF): pixel (0, 0).
    assert_eq!((maps.epistemic[0], maps.aleatoric[0]), (0.0, 0.0));
    // The candidates' map is the AU of the pixels brighter than their reconstruction: each value is that pixel's AU or 0, and the candidates lie on it.
    assert!(maps.anomaly.iter().zip(&maps.aleatoric).all(|(&a, &au)| a == 0.0 || a == au));
    let (hyper, both) = (maps.anomaly.iter().filter(|&&a| a > 0.0).count(), maps.aleatoric.iter().filter(|&&a| a > 0.0).count());
    assert!(hyper > 0 && hyper < both, "{hyper} of {both} pixels");
    assert!(maps.candidates.iter().zip(&maps.anomaly).all(|(&c, &a)| c == 0.0 || c == a));
    assert!(maps.candidates.iter().any(|&c| c > 0.0));
    let unc = std::fs::read_to_string(full_dir.path().join("uncertainty.csv")).unwrap();
    assert_eq!(unc.lines().count(), 4);
    let state = read_checkpoint_state(&list_checkpoints(full_dir.path())[0].1).unwrap();
    assert_eq!(state.maps_epoch, Some(4));

    // Resumed from the checkpoint after epoch 2 (copied aside when it was written): same weights,
    // same records.
    let kept = list_checkpoints(copy_dir_target.path());
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), vec![2]);
    let mut rec = Recorder::default();
    let resumed = adapt::<B>(pretrained, 3, &set, &config, &run(copy_dir_target.path(), true), &mut rec, &device).unwrap();
    assert_eq!(resumed.resumed_at, 2);
    assert_eq!(rec.epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(weights(&resumed.model), weights(&full.model), "resumed weights equal the uninterrupted run's");
    // The records agree (to the last bit or two: the restored epochs went through JSON).
    assert_eq!(resumed.history.epochs.len(), 4);
    for (a, b) in resumed.history.epochs.iter().zip(&full.history.epochs) {
        assert!((a.loss - b.loss).abs() <= 1e-12 * b.loss && a.stage == b.stage, "{a:?} vs {b:?}");
    }
    assert_eq!(resumed.maps.as_ref().unwrap().candidates, maps.candidates);

    // A different configuration cannot resume that run.
    let mut other = config.clone();
    other.adaptation.au_epochs = 3;
    let e = adapt::<B>(full.model.clone(), 3, &set, &other, &run(full_dir.path(), true), &mut Silent, &device).err().unwrap();
    assert!(e.to_string().contains("another configuration"), "{e}");
}

#[test]
fn the_shipped_configurations_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let read = |name: &str| TrainingConfig::from_toml(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
    assert_eq!(read("paper.toml"), TrainingConfig::default(), "paper.toml writes out the defaults");
    let demo = read("demo.toml");
    demo.validate().unwrap();
    assert_eq!((demo.model.image_size, demo.model.patch_size), (256, 8));
    assert_eq!((demo.model.encoder_dim, demo.model.encoder_depth, demo.model.decoder_dim, demo.model.decoder_depth), (64, 4, 32, 2));
    let paper = TrainingConfig::default();
    assert_eq!((demo.optimizer.learning_rate, demo.optimizer.beta_1, demo.optimizer.beta_2), (3e-3, 0.9, 0.95));
    assert_eq!((demo.loss.clone(), demo.augmentation.clone()), (paper.loss, paper.augmentation));
}

#[test]
fn losses_read_every_few_steps_are_the_losses_of_every_step() {
    // Batches of 1: 4 steps an epoch, read one by one, every 3 steps (3 + 1) or every 16 (at the
    // epoch's end): the same steps, losses, records and weights.
    let mut config = tiny_config();
    config.training.batch_size = 1;
    config.pretraining.epochs = 2;
    let set = TrainingSet::new(&dataset(), &config).unwrap();
    let runs: Vec<(Recorder, Vec<Vec<f32>>, Vec<EpochRecord>)> = [1, 3, 16]
        .into_iter()
        .map(|every| {
            let dir = tempfile::tempdir().unwrap();
            let mut rec = Recorder::default();
            let options = RunOptions { loss_readout_steps: every, ..run(dir.path(), false) };
            let outcome = pretrain::<B>(&set, &config, &options, &mut rec, &Default::default()).unwrap();
            (rec, weights(&outcome.model), outcome.history.epochs)
        })
        .collect();
    let (one, weights_one, epochs_one) = &runs[0];
    let order: Vec<(usize, usize)> = one.step_losses.iter().map(|&(e, s, _)| (e, s)).collect();
    assert_eq!(order, vec![(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]);
    let first_epoch: f64 = one.step_losses[..4].iter().map(|s| s.2).sum::<f64>() / 4.0;
    assert_eq!(epochs_one[0].loss, first_epoch, "the epoch's loss is its steps' mean");
    for (rec, weights, epochs) in &runs[1..] {
        assert_eq!(rec.step_losses, one.step_losses);
        assert_eq!(weights, weights_one);
        let losses = |e: &[EpochRecord]| e.iter().map(|r| (r.loss, r.image_mse, r.edge_mse)).collect::<Vec<_>>();
        assert_eq!(losses(epochs), losses(epochs_one));
    }
}
