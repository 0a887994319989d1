//! The flags that say where a cohort's scans and labels are and which subjects to take, shared by
//! `u2ad prepare`, `u2ad detect`, `u2ad synth` and `u2ad baseline` (one definition, one help
//! heading).

use std::path::PathBuf;

use clap::Args;
use u2ad_core::levels::LevelConvention;
use u2ad_core::prepare::PrepareOptions;

/// Where the scans and their labels are, beyond the input folder: one image with its masks, or
/// how to find a BIDS dataset's labels (shared by `prepare` and `detect`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Input")]
pub struct ScanInputs {
    /// One T2w image (instead of a BIDS folder).
    #[arg(long, conflicts_with = "input", requires = "cord")]
    pub image: Option<PathBuf>,
    /// Its binary spinal cord mask (SCT's *_seg, TotalSpineSeg's cord).
    #[arg(long)]
    pub cord: Option<PathBuf>,
    /// Its CSF mask (binary, or probability thresholded at 0.5); derived around the cord if absent.
    #[arg(long)]
    pub csf: Option<PathBuf>,
    /// Its level labels: SCT vertebral or disc points, SCT labelled cord, or TotalSpineSeg output.
    #[arg(long)]
    pub levels: Option<PathBuf>,
    /// Subject name for --image (default: the image name without _T2w.nii.gz).
    #[arg(long)]
    pub subject: Option<String>,

    /// Labels folder of a BIDS dataset (default: <input>/derivatives/labels).
    #[arg(long)]
    pub labels_dir: Option<PathBuf>,
    /// Suffix of the cord masks (default: _label-SC_seg); repeat to try several.
    #[arg(long)]
    pub cord_suffix: Vec<String>,
    /// Suffix of the CSF masks (default: _label-CSF_seg, _label-CSF_probseg).
    #[arg(long)]
    pub csf_suffix: Vec<String>,
    /// Suffix of the level files (default: _label-discs_dlabel, _label-vertebrae_dlabel,
    /// _label-vertebrae_dseg, _label-spine_dseg, first found).
    #[arg(long)]
    pub levels_suffix: Vec<String>,
    #[command(flatten)]
    pub subjects: SubjectArgs,
    /// Grow (positive) or shrink (negative) every cord mask by this many voxels in 3-D first: a
    /// check of how much the results depend on the mask.
    #[arg(long, default_value_t = ScanInputs::CORD_OFFSET_VOXELS, allow_negative_numbers = true)]
    pub cord_offset_voxels: i32,
}

/// What clap gives when none of the flags is given.
impl Default for ScanInputs {
    fn default() -> Self {
        ScanInputs {
            image: None,
            cord: None,
            csf: None,
            levels: None,
            subject: None,
            labels_dir: None,
            cord_suffix: Vec::new(),
            csf_suffix: Vec::new(),
            levels_suffix: Vec::new(),
            subjects: SubjectArgs::default(),
            cord_offset_voxels: Self::CORD_OFFSET_VOXELS,
        }
    }
}

/// Which subjects of a cohort, and how their level labels read (shared by `prepare`, `detect`,
/// `synth` and `baseline`).
// The derived `Default` is what clap gives when none of the flags is given.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Input")]
pub struct SubjectArgs {
    /// Level convention, when it cannot be told from the file: sct-vertebrae, sct-discs,
    /// sct-labeled-cord, totalspineseg, totalspineseg-legacy.
    #[arg(long, value_parser = parse_convention)]
    pub level_convention: Option<LevelConvention>,
    /// Only these subjects (sub-XX); repeat for several.
    #[arg(long)]
    pub include: Vec<String>,
}

impl ScanInputs {
    /// `--cord-offset-voxels`'s default (clap's and [`Default`]'s).
    pub const CORD_OFFSET_VOXELS: i32 = 0;

    /// How these inputs are prepared.
    pub fn prepare_options(&self) -> PrepareOptions {
        PrepareOptions {
            level_convention: self.subjects.level_convention,
            cord_offset_voxels: self.cord_offset_voxels,
            ..Default::default()
        }
    }
}

fn parse_convention(name: &str) -> Result<LevelConvention, String> {
    LevelConvention::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = LevelConvention::ALL.iter().map(|c| c.name()).collect();
        format!("unknown level convention '{name}' (one of: {})", names.join(", "))
    })
}
