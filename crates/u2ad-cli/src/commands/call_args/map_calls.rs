//! The flags around the call flags for U2AD's maps: which sagittal slices make the anomaly curve
//! (shared with `u2ad baseline`), its row statistic and the EU gate (`u2ad detect`, `u2ad
//! calibrate`).

use clap::{Args, ValueEnum};
use u2ad_core::detect_outputs::MapScoring;
use u2ad_core::level_scores::LevelScoreConfig;
use u2ad_core::scoring::{CallConfig, RowStatistic, SliceSelection, UncertaintyGate};

use super::CallArgs;

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
