//! The plan of a synthetic cohort: the options ([`CohortOptions`]), the copies of each source
//! with their names and random streams, and which of them are lesion-free ([`plan_cohort`]).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use u2ad_io::cohort::SubjectFiles;

use super::config::SynthConfig;
use u2ad_core::error::Result;
use u2ad_core::levels::LevelConvention;

/// How a synthetic cohort is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortOptions {
    pub subjects_per_source: usize,
    /// Fraction of the synthetic subjects left without lesion (rounded to a count).
    pub lesion_free_fraction: f64,
    pub seed: u64,
    pub synth: SynthConfig,
    pub level_convention: Option<LevelConvention>,
}

impl Default for CohortOptions {
    fn default() -> Self {
        CohortOptions {
            subjects_per_source: 1,
            lesion_free_fraction: 0.3,
            seed: 0,
            synth: SynthConfig::default(),
            level_convention: None,
        }
    }
}

/// One synthetic subject to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedSubject {
    /// `sub-<source label>syn<NN>`.
    pub subject: String,
    /// Index into the sources.
    pub source: usize,
    pub lesion_free: bool,
    /// The ChaCha8 stream of the subject's random numbers.
    pub stream: u64,
}

/// The RNG of subject stream `stream` of a cohort seeded with `seed`.
pub fn subject_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Stream of the cohort plan (which subjects are lesion-free).
const PLAN_STREAM: u64 = u64::MAX;

/// The BIDS label of a source id (`sub-01_ses-02` → `01ses02`): its letters and digits.
fn source_label(subject: &str) -> String {
    subject.strip_prefix("sub-").unwrap_or(subject).chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// The synthetic subjects of a cohort: `subjects_per_source` copies of each source, named
/// `sub-<label>syn01` …; `round(lesion_free_fraction × total)` of them, drawn with the seed,
/// are lesion-free.
pub fn plan_cohort(sources: &[SubjectFiles], options: &CohortOptions) -> Result<Vec<PlannedSubject>, String> {
    if options.subjects_per_source == 0 {
        return Err("--subjects-per-source must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&options.lesion_free_fraction) {
        return Err(format!("--lesion-free-fraction {} is outside 0:1", options.lesion_free_fraction));
    }
    let mut planned = Vec::new();
    let mut names = BTreeMap::new();
    for (source, files) in sources.iter().enumerate() {
        let label = source_label(&files.subject);
        if label.is_empty() {
            return Err(format!("{}: subject '{}' has no usable BIDS label", files.image.display(), files.subject));
        }
        if let Some(other) = names.insert(label.clone(), files.subject.clone()) {
            return Err(format!("subjects '{other}' and '{}' give the same synthetic name sub-{label}", files.subject));
        }
        for copy in 0..options.subjects_per_source {
            let stream = planned.len() as u64;
            planned.push(PlannedSubject {
                subject: format!("sub-{label}syn{:02}", copy + 1),
                source,
                lesion_free: false,
                stream,
            });
        }
    }
    let lesion_free = (options.lesion_free_fraction * planned.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.shuffle(&mut subject_rng(options.seed, PLAN_STREAM));
    for &index in order.iter().take(lesion_free) {
        planned[index].lesion_free = true;
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_plan_names_subjects_and_draws_the_lesion_free_ones() {
        let files = |s: &str| SubjectFiles {
            subject: s.into(),
            image: PathBuf::from(format!("{s}_T2w.nii.gz")),
            cord_mask: None,
            csf_mask: None,
            levels: None,
        };
        let sources = [files("sub-01"), files("sub-02_ses-1")];
        let options = CohortOptions { subjects_per_source: 5, lesion_free_fraction: 0.3, ..Default::default() };
        let plan = plan_cohort(&sources, &options).unwrap();
        assert_eq!(plan.len(), 10);
        assert_eq!(plan[0].subject, "sub-01syn01");
        assert_eq!(plan[9].subject, "sub-02ses1syn05");
        assert_eq!(plan.iter().filter(|p| p.lesion_free).count(), 3);
        assert_eq!(plan, plan_cohort(&sources, &options).unwrap());
        let other = plan_cohort(&sources, &CohortOptions { seed: 1, ..options.clone() }).unwrap();
        assert_ne!(
            plan.iter().map(|p| p.lesion_free).collect::<Vec<_>>(),
            other.iter().map(|p| p.lesion_free).collect::<Vec<_>>()
        );
        let clash = [files("sub-a-1"), files("sub-a1")];
        assert!(plan_cohort(&clash, &options).unwrap_err().contains("same synthetic name"));
    }
}
