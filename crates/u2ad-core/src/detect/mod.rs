//! Step 5 of the paper, detection from the Monte-Carlo maps: the anomaly map, candidates, curve,
//! segment scores and calls ([`scoring`]), the level scores over the cord eroded in 3-D
//! ([`level_scores`]) with the region they score ([`scoring_region`]) and the depth of the cord's
//! partial-volume shell measured on each subject ([`cord_depth`]). Re-exported at the crate root
//! (`u2ad_core::scoring`, `::level_scores`, `::scoring_region`, `::cord_depth`).

pub mod cord_depth;
pub mod level_scores;
pub mod scoring;
pub mod scoring_region;
