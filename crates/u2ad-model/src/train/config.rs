//! Every hyperparameter of `u2ad pretrain` and `u2ad adapt`, in one TOML document. Every table
//! and field has the reference's value as its default (`docs/reference-notes.md` 1.3–1.8 and
//! recommended answers 8, 9, 12, 16), so a file names only what it changes; unknown keys are
//! errors.
//!
//! ```toml
//! seed = 0
//! [model]         # ModelConfig: encoder_dim, encoder_depth, …
//! [optimizer]     # Adam(β1, β2, ε), lr, step decay
//! [loss]          # weights of the two terms, structure-weight schedule
//! [training]      # batch size, mask ratio, ROI minimum, checkpoint interval
//! [augmentation]  # brightness, contrast, noise
//! [pretraining]   # epochs
//! [adaptation]    # EU and AU epochs, refresh interval, masking, MC, anomaly candidates
//! ```

use serde::{Deserialize, Serialize};
use u2ad_core::scoring::{CandidateFilter, Polarity};

use crate::augment::AugmentationConfig;
use crate::config::ModelConfig;
use crate::loss::LossConfig;
use crate::masking::MaskingStrategy;
use crate::mc::McConfig;
use crate::schedule::{StepDecay, StructureSchedule};

/// The whole training configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Seeds the initial weights, the sample order, augmentation, masks and MC schedules.
    pub seed: u64,
    /// Model sizes (pretraining; adaptation takes them from the pretrained model file).
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub loss: LossSettings,
    pub training: TrainingSettings,
    pub augmentation: AugmentationConfig,
    pub pretraining: PretrainingConfig,
    pub adaptation: AdaptationConfig,
}

/// Adam and its learning-rate schedule (reference: Adam(0.9, 0.95), no weight decay, lr 3e-3,
/// × 0.1 every 50 epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    /// PyTorch's default 1e-8 (burn's own default is 1e-5).
    pub epsilon: f64,
    /// The learning rate is multiplied by `decay_factor` every this many epochs (0: never).
    pub decay_every_epochs: usize,
    pub decay_factor: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            learning_rate: 3e-3,
            beta_1: 0.9,
            beta_2: 0.95,
            epsilon: 1e-8,
            decay_every_epochs: 50,
            decay_factor: 0.1,
        }
    }
}

impl OptimizerConfig {
    pub fn schedule(&self) -> StepDecay {
        StepDecay {
            learning_rate: self.learning_rate,
            decay_every_epochs: self.decay_every_epochs,
            decay_factor: self.decay_factor,
        }
    }
}

/// `image_weight · L_image + edge_weight · L_edge`, and which structure weight each epoch uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSettings {
    pub image_weight: f64,
    pub edge_weight: f64,
    /// `reference` (2 − a at a command's first epoch only, bug B1), `one_plus_masked_neighbourhood`
    /// or `switch_at_half` (`docs/reference-notes.md`, recommended answer 8).
    pub structure: StructureSchedule,
}

impl Default for LossSettings {
    fn default() -> Self {
        LossSettings { image_weight: 10.0, edge_weight: 1.0, structure: StructureSchedule::Reference }
    }
}

impl LossSettings {
    /// The loss of (0-based) `epoch` out of `total`.
    pub fn at(&self, epoch: usize, total: usize) -> LossConfig {
        LossConfig { image_weight: self.image_weight, edge_weight: self.edge_weight, structure: self.structure.at(epoch, total) }
    }
}

/// Batching and masking of both commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingSettings {
    pub batch_size: usize,
    /// Fraction of each image's ROI patches masked.
    pub mask_ratio: f64,
    /// Samples whose ROI touches fewer patches are left out (`docs/reference-notes.md`,
    /// recommended answer 9).
    pub min_roi_patches: usize,
    /// A checkpoint is written every this many epochs, and after the last one.
    pub checkpoint_every: usize,
}

impl Default for TrainingSettings {
    fn default() -> Self {
        TrainingSettings { batch_size: 10, mask_ratio: 0.75, min_roi_patches: 3, checkpoint_every: 10 }
    }
}

/// `u2ad pretrain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainingConfig {
    pub epochs: usize,
    /// Run MC inference every this many epochs to record the cohort's mean EU and AU (the
    /// reference does it every 10 epochs for its logs; it does not change training). 0: never.
    pub monitor_every: usize,
}

impl Default for PretrainingConfig {
    fn default() -> Self {
        PretrainingConfig { epochs: 200, monitor_every: 0 }
    }
}

/// Where the adaptation's learning-rate schedule starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearningRateStart {
    /// At epoch 0 again: the full `learning_rate` (the reference, bug B17 in
    /// `docs/reference-notes.md`).
    #[default]
    Restart,
    /// Where pretraining left it (epoch = the pretrained model's epochs + adaptation epoch).
    Continue,
}

/// Which pixels Monte-Carlo inference samples (its ROI) during adaptation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McRegion {
    /// Cord ∪ CSF, not dilated (the reference's labels {3, 4, 6}).
    #[default]
    CordAndCsf,
    /// The training ROI of the dataset (cord ∪ CSF dilated by one pixel).
    Roi,
}

/// Anomaly candidates of the AU-guided stage: the reference's `process_error` on the anomaly
/// map inside the (eroded) cord. By default that map is the two-sided AU, as in the reference;
/// `polarity = "hyperintense"` keeps only pixels brighter than their reconstruction, as
/// `u2ad detect` scores them. Measured on `u2ad demo` (BENCHMARKS.md), the hyperintense side
/// made adaptation worse (segment F1 0.47 against 0.71), so it is an option, not the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidateConfig {
    /// Percentile (0–100) of the nonzero cord AU above which pixels are kept.
    pub percentile: f64,
    /// Components with fewer pixels are dropped.
    pub min_area_px: usize,
    /// Number of best components (mean × sum of AU) kept per sample.
    pub top_components: usize,
    /// Erode the cord mask by a 3 × 3 square first.
    pub erode_cord: bool,
    /// Which side of `image − mean reconstruction` counts (see the struct documentation).
    pub polarity: Polarity,
}

impl Default for CandidateConfig {
    fn default() -> Self {
        CandidateConfig { percentile: 90.0, min_area_px: 2, top_components: 3, erode_cord: true, polarity: Polarity::Both }
    }
}

impl CandidateConfig {
    pub fn filter(&self) -> CandidateFilter {
        CandidateFilter { percentile: self.percentile, min_area_px: self.min_area_px, top_components: self.top_components }
    }
}

/// `u2ad adapt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptationConfig {
    /// Epochs of the EU-guided stage (reference: 150).
    pub eu_epochs: usize,
    /// Epochs of the AU-guided stage that follows (reference: 50).
    pub au_epochs: usize,
    /// MC inference refreshes the EU and AU maps with the current weights every this many epochs
    /// (and before the first).
    pub refresh_every: usize,
    /// Refresh the maps once more after the last epoch (recorded; the final checkpoint keeps them).
    pub final_refresh: bool,
    pub learning_rate_start: LearningRateStart,
    pub mc_region: McRegion,
    /// Masking of the EU stage: `eu_guided` (default), `reference_eu` or `random` (baseline).
    pub eu_masking: MaskingStrategy,
    /// Masking of the AU stage: `au_guided` (default), or any other strategy for ablations.
    pub au_masking: MaskingStrategy,
    pub mc: McConfig,
    pub candidates: CandidateConfig,
}

impl Default for AdaptationConfig {
    fn default() -> Self {
        AdaptationConfig {
            eu_epochs: 150,
            au_epochs: 50,
            refresh_every: 10,
            final_refresh: true,
            learning_rate_start: LearningRateStart::Restart,
            mc_region: McRegion::CordAndCsf,
            eu_masking: MaskingStrategy::eu_guided(),
            au_masking: MaskingStrategy::au_guided(),
            mc: McConfig::default(),
            candidates: CandidateConfig::default(),
        }
    }
}

/// A configuration that cannot be trained with, or a TOML document that is not one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TrainingConfigError(pub String);

impl TrainingConfig {
    /// Parses a TOML document (missing keys take their defaults, unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<TrainingConfig, TrainingConfigError> {
        let config: TrainingConfig = toml::from_str(text).map_err(|e| TrainingConfigError(e.to_string().trim().replace('\n', " ")))?;
        Ok(config)
    }

    /// The resolved configuration as TOML (every key written).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the training configuration serialises to TOML")
    }

    /// Checks every value the two commands use.
    pub fn validate(&self) -> Result<(), TrainingConfigError> {
        let err = |m: String| Err(TrainingConfigError(m));
        self.model.validate().map_err(|e| TrainingConfigError(format!("model: {}", e.0)))?;
        let o = &self.optimizer;
        if !(o.learning_rate > 0.0 && o.learning_rate.is_finite()) {
            return err(format!("optimizer.learning_rate = {} is not positive", o.learning_rate));
        }
        for (name, beta) in [("beta_1", o.beta_1), ("beta_2", o.beta_2)] {
            if !(0.0..1.0).contains(&beta) {
                return err(format!("optimizer.{name} = {beta} is not in [0, 1)"));
            }
        }
        if !(o.epsilon > 0.0) || !(o.decay_factor > 0.0) {
            return err("optimizer.epsilon and optimizer.decay_factor must be positive".into());
        }
        if !(self.loss.image_weight >= 0.0 && self.loss.edge_weight >= 0.0) {
            return err("loss.image_weight and loss.edge_weight must not be negative".into());
        }
        let t = &self.training;
        if t.batch_size == 0 {
            return err("training.batch_size is 0".into());
        }
        if !(t.mask_ratio > 0.0 && t.mask_ratio < 1.0) {
            return err(format!("training.mask_ratio = {} is not in (0, 1)", t.mask_ratio));
        }
        if t.checkpoint_every == 0 {
            return err("training.checkpoint_every is 0".into());
        }
        self.augmentation.validate().map_err(TrainingConfigError)?;
        let a = &self.adaptation;
        if a.eu_epochs + a.au_epochs == 0 {
            return err("adaptation.eu_epochs + adaptation.au_epochs is 0".into());
        }
        if a.refresh_every == 0 {
            return err("adaptation.refresh_every is 0".into());
        }
        if a.mc.samples_per_patch < 2 {
            return err(format!("adaptation.mc.samples_per_patch = {}: the variance needs at least 2", a.mc.samples_per_patch));
        }
        if !(a.mc.mask_ratio > 0.0 && a.mc.mask_ratio < 1.0) {
            return err(format!("adaptation.mc.mask_ratio = {} is not in (0, 1)", a.mc.mask_ratio));
        }
        if !(0.0..=100.0).contains(&a.candidates.percentile) {
            return err(format!("adaptation.candidates.percentile = {} is not in [0, 100]", a.candidates.percentile));
        }
        for (name, strategy) in [("eu_masking", &a.eu_masking), ("au_masking", &a.au_masking)] {
            if let MaskingStrategy::EuGuided { temperature, uniform_mix } | MaskingStrategy::AuGuided { temperature, uniform_mix } = strategy {
                if !(*temperature > 0.0) || !(0.0..=1.0).contains(uniform_mix) {
                    return err(format!("adaptation.{name}: temperature must be positive and uniform_mix in [0, 1]"));
                }
            }
            if let MaskingStrategy::ReferenceEu { temperature } = strategy {
                if !(*temperature > 0.0) {
                    return err(format!("adaptation.{name}: temperature must be positive"));
                }
            }
        }
        if matches!(a.eu_masking, MaskingStrategy::AuGuided { .. }) {
            return err("adaptation.eu_masking cannot be au_guided: the anomaly candidates come from the AU stage".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_and_round_trip_through_toml() {
        let c = TrainingConfig::default();
        assert_eq!(c.optimizer.learning_rate, 3e-3);
        assert_eq!((c.optimizer.beta_1, c.optimizer.beta_2), (0.9, 0.95));
        assert_eq!((c.adaptation.eu_epochs, c.adaptation.au_epochs, c.adaptation.refresh_every), (150, 50, 10));
        assert_eq!(c.adaptation.mc.samples_per_patch, 10);
        assert_eq!(c.pretraining.epochs, 200);
        assert_eq!(c.training.batch_size, 10);
        assert!(c.validate().is_ok());
        let text = c.to_toml();
        assert_eq!(TrainingConfig::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn partial_tables_keep_the_other_defaults() {
        let c = TrainingConfig::from_toml(
            "seed = 4\n[model]\nencoder_depth = 4\n[adaptation]\neu_epochs = 6\n[adaptation.eu_masking]\nkind = \"random\"\n",
        )
        .unwrap();
        assert_eq!(c.seed, 4);
        assert_eq!(c.model.encoder_depth, 4);
        assert_eq!(c.model.encoder_dim, 128);
        assert_eq!(c.adaptation.eu_epochs, 6);
        assert_eq!(c.adaptation.au_epochs, 50);
        assert_eq!(c.adaptation.eu_masking, MaskingStrategy::Random);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = TrainingConfig::from_toml("[training]\nbatchsize = 3\n").unwrap_err();
        assert!(e.0.contains("batchsize"), "{e}");
        let c = TrainingConfig { training: TrainingSettings { mask_ratio: 1.5, ..Default::default() }, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().0, "training.mask_ratio = 1.5 is not in (0, 1)");
    }
}
