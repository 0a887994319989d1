//! The flags of `u2ad baseline` (`BaselineArgs::new` gives their defaults without parsing) and
//! its methods.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::commands::call_args::{CallArgs, SliceArgs};
use crate::commands::input_args::SubjectArgs;
use crate::commands::run_args::JobsArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineMethod {
    /// Per level, the 99th percentile of the smoothed T2 signal in the cord eroded in 3-D, over the
    /// subject's cord median, robust z-scored against the other participants.
    Intensity,
    /// Each cord voxel's T2 signal (over the cord median) as a robust z-score against the other
    /// subjects' cord at its level, then the curve of `u2ad detect --level-score curve-peak`.
    IntensityVoxelZ,
}

impl BaselineMethod {
    pub fn name(self) -> &'static str {
        match self {
            BaselineMethod::Intensity => "intensity",
            BaselineMethod::IntensityVoxelZ => "intensity-voxel-z",
        }
    }
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
u2ad baseline --method intensity synth-cohort/ --out baseline-intensity/ --pooling pooled\n  \
u2ad evaluate --detections u2ad=detect/ --detections intensity=baseline-intensity/ --truth synth-cohort/\n\n\
The output folder has exactly the layout of `u2ad detect` (maps, tables, figures, qc_report.html); \
the anomaly map is the z-score, the reconstruction the signal the rule expects, the uncertainty map 0.")]
pub struct BaselineArgs {
    /// A BIDS dataset (sub-*/anat/*_T2w.nii.gz with labels under derivatives/labels/), or a
    /// prepared dataset (.u2ds) written by `u2ad prepare`.
    pub input: PathBuf,
    /// Which baseline.
    #[arg(long, value_enum, default_value_t = BaselineArgs::METHOD)]
    pub method: BaselineMethod,
    /// Output folder (the layout of `u2ad detect`).
    #[arg(short, long)]
    pub out: PathBuf,
    // --include and --level-convention (the baseline compares each subject with the others, so
    // at least two are needed).
    #[command(flatten)]
    pub subjects: SubjectArgs,

    #[command(flatten)]
    pub calls: CallArgs,
    #[command(flatten)]
    pub slices: SliceArgs,

    #[command(flatten)]
    pub jobs: JobsArg,
}

impl BaselineArgs {
    /// `--method`'s default (clap's and [`BaselineArgs::new`]'s).
    pub const METHOD: BaselineMethod = BaselineMethod::Intensity;

    /// `u2ad baseline INPUT --out OUT` with every other flag at its default.
    pub fn new(input: PathBuf, out: PathBuf) -> Self {
        BaselineArgs {
            input,
            method: Self::METHOD,
            out,
            subjects: SubjectArgs::default(),
            calls: CallArgs::default(),
            slices: SliceArgs::default(),
            jobs: JobsArg::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_what_clap_gives() {
        let crate::Command::Baseline(parsed) = crate::commands::parse_command(&["baseline", "cohort", "--out", "x"]) else { unreachable!() };
        crate::commands::assert_same(&BaselineArgs::new("cohort".into(), "x".into()), &parsed);
    }
}
