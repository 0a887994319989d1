//! The flags that decide how scores become calls, shared by `u2ad detect`, `u2ad calibrate` and
//! `u2ad baseline` (one definition, one help heading).
//!
//! Files: `mod.rs` (the call flags: thresholds, rates, level scores), `map_calls.rs` (the anomaly
//! curve's slices and statistic and the EU gate around them, for U2AD's maps).

use clap::{Args, ValueEnum};
use u2ad_core::level_scores::{LevelScoreConfig, LevelStatistic};
use u2ad_core::scoring::{
    call_cohort, CallConfig, FalsePositiveScope, LevelPooling, ReferenceScores, Threshold, UncertaintyGate,
};

mod map_calls;

pub use map_calls::{MapCallArgs, SliceArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// Each level's threshold from the same level of the other participants.
    PerLevel,
    /// Every level's threshold from every level of the other participants.
    Pooled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// The rate holds per patient: each level is tested at rate / scored levels (Bonferroni).
    Patient,
    /// The rate holds per level.
    Level,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReferenceScoresArg {
    /// The reference scores the same rule would call negative (other patients' lesions set aside).
    Negative,
    /// Every reference score, other patients' lesions included (a higher threshold).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LevelScoreArg {
    /// Each level's map over the cord eroded in 3-D (the method's default statistic).
    Cord3d,
    /// The peak of the per-row anomaly curve (the reference's rule).
    CurvePeak,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CsfArg {
    /// Leave out cord-mask voxels as bright as CSF and connected to it.
    Exclude,
    /// Score every voxel of the eroded cord.
    Keep,
}

/// How scores become calls.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Scores and calls")]
pub struct CallArgs {
    /// A fixed score threshold (learnt on a labelled set) instead of the cohort calibration.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Target false-positive rate of the cohort-calibrated thresholds (see --fpr-scope).
    #[arg(long, default_value_t = CallArgs::TARGET_FPR)]
    pub target_fpr: f64,
    /// What the target false-positive rate holds for.
    #[arg(long, value_enum, default_value_t = CallArgs::FPR_SCOPE)]
    pub fpr_scope: ScopeArg,
    /// Reference scores of a level's cohort threshold (never another scan of the same participant:
    /// the `source_participant` column of participants.tsv, else the sub- label).
    #[arg(long, value_enum, default_value_t = CallArgs::POOLING)]
    pub pooling: PoolingArg,
    /// Fewest reference scores to calibrate a threshold (else the level is indeterminate).
    #[arg(long, default_value_t = CallArgs::MIN_REFERENCE)]
    pub min_reference: usize,
    /// Which reference scores set a level's median and spread: the other patients' lesions would
    /// otherwise raise every threshold (the cord outside the levels always uses all of them).
    #[arg(long, value_enum, default_value_t = CallArgs::REFERENCE_SCORES)]
    pub reference_scores: ReferenceScoresArg,
    /// How a level's score is taken from the map.
    #[arg(long, value_enum, default_value_t = CallArgs::LEVEL_SCORE)]
    pub level_score: LevelScoreArg,
    /// CSF partial volume inside the cord mask (default: the method's own setting, `exclude` for
    /// U2AD, `keep` for the intensity recipe). With --level-score cord3d only.
    #[arg(long, value_enum)]
    pub csf_partial_volume: Option<CsfArg>,
    /// Erode the cord mask by this many mm in 3-D before scoring (default: U2AD measures the depth
    /// on each subject, below the mask's partial volume with the CSF and 0.5 mm more; the intensity
    /// recipe erodes 2 mm). With --level-score cord3d only.
    #[arg(long)]
    pub cord_erosion_mm: Option<f64>,
    /// Put the figures inside qc_report.html (one self-contained file, for small cohorts) instead
    /// of linking their PNG files beside it (loaded when shown: the page stays small at any size).
    #[arg(long, help_heading = "Outputs")]
    pub self_contained_report: bool,
}

impl CallArgs {
    /// The flags' defaults (clap's and [`Default`]'s).
    pub const TARGET_FPR: f64 = 0.05;
    pub const FPR_SCOPE: ScopeArg = ScopeArg::Patient;
    pub const POOLING: PoolingArg = PoolingArg::PerLevel;
    pub const MIN_REFERENCE: usize = 10;
    pub const REFERENCE_SCORES: ReferenceScoresArg = ReferenceScoresArg::Negative;
    pub const LEVEL_SCORE: LevelScoreArg = LevelScoreArg::Cord3d;

    /// How the QC report holds its figures.
    pub fn figure_mode(&self) -> u2ad_report::html::FigureMode {
        if self.self_contained_report {
            u2ad_report::html::FigureMode::Embedded
        } else {
            u2ad_report::html::FigureMode::Linked
        }
    }

    /// The call settings with this EU gate; a bad threshold or rate is an error now, before any
    /// inference.
    pub fn call_config(&self, uncertainty_gate: UncertaintyGate) -> anyhow::Result<CallConfig> {
        if let Some(mm) = self.cord_erosion_mm {
            if !(0.0..=10.0).contains(&mm) {
                anyhow::bail!("--cord-erosion-mm {mm} is outside 0:10");
            }
        }
        let calls = CallConfig {
            threshold: match self.threshold {
                Some(t) => Threshold::Fixed(t),
                None => Threshold::Cohort { target_false_positive_rate: self.target_fpr },
            },
            pooling: match self.pooling {
                PoolingArg::PerLevel => LevelPooling::PerLevel,
                PoolingArg::Pooled => LevelPooling::Pooled,
            },
            min_reference_values: self.min_reference.max(1),
            uncertainty_gate,
            scope: match self.fpr_scope {
                ScopeArg::Patient => FalsePositiveScope::Patient,
                ScopeArg::Level => FalsePositiveScope::Level,
            },
            reference_scores: match self.reference_scores {
                ReferenceScoresArg::Negative => ReferenceScores::Negative,
                ReferenceScoresArg::All => ReferenceScores::All,
            },
        };
        call_cohort(&[], &calls).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(calls)
    }

    /// The level scores: `cord3d` keeps the method's own setting, `curve-peak` the reference's.
    pub fn level_scores(&self, cord3d: LevelScoreConfig) -> LevelScoreConfig {
        match self.level_score {
            LevelScoreArg::Cord3d => {
                let chosen = LevelScoreConfig {
                    exclude_csf_partial_volume: self
                        .csf_partial_volume
                        .map_or(cord3d.exclude_csf_partial_volume, |c| c == CsfArg::Exclude),
                    ..cord3d
                };
                self.cord_erosion_mm.map_or(chosen, |mm| chosen.with_fixed_erosion_mm(mm))
            }
            LevelScoreArg::CurvePeak => LevelScoreConfig { statistic: LevelStatistic::CurvePeak, ..LevelScoreConfig::CURVE_PEAK },
        }
    }
}

/// What clap gives when none of the flags is given.
impl Default for CallArgs {
    fn default() -> Self {
        CallArgs {
            threshold: None,
            target_fpr: Self::TARGET_FPR,
            fpr_scope: Self::FPR_SCOPE,
            pooling: Self::POOLING,
            min_reference: Self::MIN_REFERENCE,
            reference_scores: Self::REFERENCE_SCORES,
            level_score: Self::LEVEL_SCORE,
            csf_partial_volume: None,
            cord_erosion_mm: None,
            self_contained_report: false,
        }
    }
}
