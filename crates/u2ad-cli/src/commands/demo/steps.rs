//! What the demo runs each verb with: the verb's own settings (its constructor gives the
//! defaults of its command line), then the demo's choices; and the target cohort's synthesis and
//! the ablations' training configurations.

use std::path::Path;

use u2ad_eval::synth::{SynthConfig, ValueRange};
use u2ad_model::train::TrainingConfig;
use u2ad_model::MaskingStrategy;

use super::{DemoArgs, PRETRAIN_SUBJECTS};
use crate::commands::adapt::AdaptArgs;
use crate::commands::baseline::{BaselineArgs, BaselineMethod};
use crate::commands::call_args::{CallArgs, PoolingArg};
use crate::commands::detect::DetectArgs;
use crate::commands::prepare::PrepareArgs;
use crate::commands::pretrain::PretrainArgs;
use crate::device::DeviceChoice;

/// The target cohort's lesions and scan variations (module docs, step 3): a third of the lesions
/// touch the cord's edge.
pub(super) fn target_synth_config(args: &DemoArgs) -> SynthConfig {
    SynthConfig {
        contrast_ratio: args.contrast,
        length_mm: args.length_mm,
        bias_field: 0.15,
        intensity_scale: ValueRange::new(0.8, 1.25),
        edge_fraction: 1.0 / 3.0,
        ..SynthConfig::default()
    }
}

/// A training configuration with other adaptation masking (the ablations).
pub(super) fn ablation_config(base: &TrainingConfig, eu: MaskingStrategy, au: MaskingStrategy) -> TrainingConfig {
    let mut config = base.clone();
    config.adaptation.eu_masking = eu;
    config.adaptation.au_masking = au;
    config
}

/// The same calls for every method: pooled thresholds (a cohort too small to calibrate each
/// level on its own).
fn demo_calls(calls: &mut CallArgs) {
    calls.pooling = PoolingArg::Pooled;
    calls.min_reference = 10;
}

/// The demo's choices for every verb it runs: one seed, one device (already resolved).
pub(super) struct Verbs {
    pub seed: u64,
    pub device: DeviceChoice,
}

impl Verbs {
    /// `prepare` of the healthy subjects the model is pretrained on.
    pub fn prepare_healthy(&self, spine: &Path, out: &Path) -> PrepareArgs {
        let mut args = PrepareArgs::new(spine.to_path_buf(), out.to_path_buf());
        args.scans.subjects.include = PRETRAIN_SUBJECTS.map(String::from).to_vec();
        args
    }

    /// `prepare` of a whole cohort.
    pub fn prepare(&self, input: &Path, out: &Path) -> PrepareArgs {
        PrepareArgs::new(input.to_path_buf(), out.to_path_buf())
    }

    pub fn pretrain(&self, data: &Path, out: &Path, config: &Path) -> PretrainArgs {
        let mut args = PretrainArgs::new(data.to_path_buf(), out.to_path_buf());
        args.training.config = Some(config.to_path_buf());
        args.training.seed = Some(self.seed);
        args.training.device.choice = self.device;
        args
    }

    pub fn adapt(&self, data: &Path, model: &Path, out: &Path, config: &Path) -> AdaptArgs {
        let mut args = AdaptArgs::new(data.to_path_buf(), model.to_path_buf(), out.to_path_buf());
        args.training.config = Some(config.to_path_buf());
        args.training.seed = Some(self.seed);
        args.training.device.choice = self.device;
        args
    }

    pub fn detect(&self, data: &Path, model: &Path, out: &Path) -> DetectArgs {
        let mut args = DetectArgs::new(data.to_path_buf(), model.to_path_buf(), out.to_path_buf());
        args.seed = self.seed;
        args.device.choice = self.device;
        demo_calls(&mut args.scoring.calls);
        args
    }

    /// The intensity baseline, with U2AD's calls.
    pub fn baseline(&self, data: &Path, out: &Path) -> BaselineArgs {
        let mut args = BaselineArgs::new(data.to_path_buf(), out.to_path_buf());
        args.method = BaselineMethod::Intensity;
        demo_calls(&mut args.calls);
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{assert_same, parse_command};
    use crate::Command;

    #[test]
    fn the_compiled_in_configurations_parse() {
        let base = TrainingConfig::from_toml(super::super::DEMO_CONFIG).unwrap();
        base.validate().unwrap();
        let random = ablation_config(&base, MaskingStrategy::Random, MaskingStrategy::Random);
        assert_eq!(random.adaptation.eu_masking, MaskingStrategy::Random);
        assert_eq!(random.adaptation.au_epochs, base.adaptation.au_epochs);
        // The ablation files of configs/ parse and differ from the defaults only in masking.
        for (text, eu) in [
            (include_str!("../../../../../configs/ablation-random.toml"), MaskingStrategy::Random),
            (include_str!("../../../../../configs/ablation-eu.toml"), MaskingStrategy::eu_guided()),
        ] {
            let config = TrainingConfig::from_toml(text).unwrap();
            assert_eq!((config.adaptation.eu_masking.clone(), config.adaptation.au_masking.clone()), (eu.clone(), eu));
            let mut reset = config.clone();
            reset.adaptation.eu_masking = MaskingStrategy::eu_guided();
            reset.adaptation.au_masking = MaskingStrategy::au_guided();
            assert_eq!(reset, TrainingConfig::default());
        }
    }

    /// Each verb gets what the command line the demo used to pass it gives.
    #[test]
    fn the_verbs_get_what_their_command_lines_give() {
        for (verbs, device) in [(Verbs { seed: 0, device: DeviceChoice::Cpu }, "cpu"), (Verbs { seed: 7, device: DeviceChoice::Cuda(1) }, "cuda:1")] {
            let seed = verbs.seed.to_string();
            let (spine, target, model, config) = (Path::new("data/spine-t2"), Path::new("w/target.u2ds"), Path::new("w/m.safetensors"), Path::new("w/demo.toml"));
            let Command::Prepare(parsed) = parse_command(&["prepare", "data/spine-t2", "--out", "w/healthy.u2ds", "--include", "sub-errsm11", "--include", "sub-errsm18"]) else { unreachable!() };
            assert_same(&verbs.prepare_healthy(spine, Path::new("w/healthy.u2ds")), &parsed);
            let Command::Prepare(parsed) = parse_command(&["prepare", "w/synth", "--out", "w/target.u2ds"]) else { unreachable!() };
            assert_same(&verbs.prepare(Path::new("w/synth"), target), &parsed);
            let Command::Pretrain(parsed) = parse_command(&["pretrain", "w/healthy.u2ds", "--out", "w/runs/pretrain", "--config", "w/demo.toml", "--seed", &seed, "--device", device]) else { unreachable!() };
            assert_same(&verbs.pretrain(Path::new("w/healthy.u2ds"), Path::new("w/runs/pretrain"), config), &parsed);
            let Command::Adapt(parsed) = parse_command(&["adapt", "w/target.u2ds", "--model", "w/m.safetensors", "--out", "w/runs/adapt", "--config", "w/demo.toml", "--seed", &seed, "--device", device]) else { unreachable!() };
            assert_same(&verbs.adapt(target, model, Path::new("w/runs/adapt"), config), &parsed);
            let calls = ["--pooling", "pooled", "--min-reference", "10"];
            let argv = [&["detect", "w/target.u2ds", "--model", "w/m.safetensors", "--out", "w/detect/u2ad", "--seed", &seed, "--device", device][..], &calls].concat();
            let Command::Detect(parsed) = parse_command(&argv) else { unreachable!() };
            assert_same(&verbs.detect(target, model, Path::new("w/detect/u2ad")), &parsed);
            let argv = [&["baseline", "w/target.u2ds", "--method", "intensity", "--out", "w/detect/intensity"][..], &calls].concat();
            let Command::Baseline(parsed) = parse_command(&argv) else { unreachable!() };
            assert_same(&verbs.baseline(target, Path::new("w/detect/intensity")), &parsed);
        }
    }
}
