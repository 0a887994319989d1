//! u2ad-eval: the evaluation side of u2ad, which detection never depends on.
//!
//! Synthetic T2 hyperintensities in real healthy cords with their ground truth ([`synth`]), the
//! evaluation of detection folders against that truth ([`evaluate`]), the metrics it reports
//! ([`metrics`]: AUROC, AUPRC, Dice, F1 with bootstrap intervals) and the intensity recipe
//! baseline that every evaluation carries beside U2AD ([`baseline`]). Built on u2ad-core; no
//! deep-learning dependency.

pub mod baseline;
pub mod evaluate;
pub mod metrics;
pub mod synth;
