//! The flags that decide how scores become calls, shared by `u2ad detect`, `u2ad calibrate` and
//! `u2ad baseline` (one definition, one help heading).

use clap::{Args, ValueEnum};
use u2ad_core::detect_outputs::MapScoring;
use u2ad_core::level_scores::{LevelScoreConfig, LevelStatistic};
use u2ad_core::scoring::{
    call_cohort, CallConfig, FalsePositiveScope, LevelPooling, ReferenceScores, RowStatistic, SliceSelection, Threshold,
    UncertaintyGate,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlicesArg {
    /// Every sagittal sample whose eroded cord has at least 100 pixels (curve = max over them).
    All,
    /// Only the sample with the largest eroded cord (mid-sagittal).
    Mid,
}

/// Which sagittal slices make the anomaly curve (shared by `detect`, `calibrate` and `baseline`).
#[derive(Args, Debug, Clone)]
pub struct SliceArgs {
    /// Which sagittal slices make the anomaly curve (the figures; the level scores too with
    /// --level-score curve-peak).
    #[arg(long, value_enum, default_value_t = SliceArgs::SLICES, help_heading = "Scores and calls")]
    pub slices: SlicesArg,
    /// The old spelling of `--slices mid` (hidden; kept for one release).
    #[arg(long, hide = true, conflicts_with = "slices")]
    pub mid_slice_only: bool,
}

impl SliceArgs {
    /// `--slices`'s default (clap's and [`Default`]'s).
    pub const SLICES: SlicesArg = SlicesArg::All;

    /// The slices of the anomaly curve.
    pub fn selection(&self) -> SliceSelection {
        match (self.slices, self.mid_slice_only) {
            (SlicesArg::Mid, _) | (_, true) => SliceSelection::LargestCord,
            (SlicesArg::All, false) => SliceSelection::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatisticArg {
    Mean,
    Max,
    Sum,
}

/// How U2AD's maps become scores and calls: the call flags, the anomaly curve and the EU gate
/// (shared by `u2ad detect` and `u2ad calibrate`).
#[derive(Args, Debug, Clone)]
pub struct MapCallArgs {
    #[command(flatten)]
    pub slices: SliceArgs,
    /// Row statistic of the anomaly curve (as --slices).
    #[arg(long, value_enum, default_value_t = MapCallArgs::CURVE_STATISTIC, help_heading = "Scores and calls")]
    pub curve_statistic: StatisticArg,

    #[command(flatten)]
    pub calls: CallArgs,
    /// A level's EU is high above median + Z x 1.4826 x MAD of the other participants' EU.
    #[arg(long, default_value_t = MapCallArgs::EU_GATE, help_heading = "Scores and calls")]
    pub eu_gate: f64,
    /// High EU makes a level indeterminate only when its z is within this many robust standard
    /// deviations of the threshold (the call could go either way; never with a fixed
    /// --threshold, which has no z); negative: whenever EU is high.
    #[arg(long, default_value_t = MapCallArgs::EU_GATE_MARGIN, allow_negative_numbers = true, help_heading = "Scores and calls")]
    pub eu_gate_margin: f64,
    /// No indeterminate call for high EU.
    #[arg(long, help_heading = "Scores and calls")]
    pub no_eu_gate: bool,
}

impl MapCallArgs {
    /// The flags' defaults (clap's and [`Default`]'s).
    pub const CURVE_STATISTIC: StatisticArg = StatisticArg::Mean;
    pub const EU_GATE: f64 = 3.0;
    pub const EU_GATE_MARGIN: f64 = 1.0;

    /// The map scoring and the calls; a bad threshold or rate is an error now.
    pub fn settings(&self) -> anyhow::Result<(MapScoring, CallConfig)> {
        let mut scoring = MapScoring::default();
        scoring.scoring.curve.slices = self.slices.selection();
        scoring.scoring.curve.row_statistic = match self.curve_statistic {
            StatisticArg::Mean => RowStatistic::Mean,
            StatisticArg::Max => RowStatistic::Max,
            StatisticArg::Sum => RowStatistic::Sum,
        };
        scoring.levels = self.calls.level_scores(LevelScoreConfig::ANOMALY_MAP);
        let gate = if self.no_eu_gate {
            UncertaintyGate::Off
        } else if self.eu_gate_margin < 0.0 {
            UncertaintyGate::RobustZ { z: self.eu_gate }
        } else {
            UncertaintyGate::NearThreshold { z: self.eu_gate, margin: self.eu_gate_margin }
        };
        Ok((scoring, self.calls.call_config(gate)?))
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

/// What clap gives when none of the flags is given.
impl Default for SliceArgs {
    fn default() -> Self {
        SliceArgs { slices: Self::SLICES, mid_slice_only: false }
    }
}

/// What clap gives when none of the flags is given.
impl Default for MapCallArgs {
    fn default() -> Self {
        MapCallArgs {
            slices: SliceArgs::default(),
            curve_statistic: Self::CURVE_STATISTIC,
            calls: CallArgs::default(),
            eu_gate: Self::EU_GATE,
            eu_gate_margin: Self::EU_GATE_MARGIN,
            no_eu_gate: false,
        }
    }
}
