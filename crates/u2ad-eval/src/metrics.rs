//! Evaluation metrics: pixel-level AUROC, AUPRC and Dice inside a mask, confusion-matrix metrics
//! at segment and patient level, and bootstrap percentile intervals.
//!
//! # Pixel level
//!
//! [`LabelledScores`] collects (score, truth) pairs, for pixels only inside a mask (the eroded
//! cord), pooled over any number of samples. Non-finite scores are skipped and counted.
//!
//! * **AUROC** = the Mann-Whitney statistic: rank all scores ascending, tied scores sharing the
//!   average of their ranks; AUROC = (Σ ranks of positives - P(P + 1)/2) / (P N), for P positives
//!   and N negatives. Equals sklearn's `roc_auc_score`. `None` when P = 0 or N = 0.
//! * **AUPRC** = average precision, as sklearn's `average_precision_score` (step-wise, no
//!   interpolation): sort by score descending; at each distinct score value k (tied scores enter
//!   together), precision P_k and recall R_k of "score >= value"; AP = Σ_k (R_k - R_{k-1}) P_k with
//!   R_0 = 0. `None` when P = 0; 1 when N = 0 (as sklearn).
//! * **Dice at a threshold**: predicted positive iff score >= threshold; Dice = 2TP / (2TP + FP +
//!   FN); `None` when the denominator is 0 (no truth and no prediction).
//! * **Best Dice** (an oracle: the threshold is chosen on the truth): Dice at every distinct score
//!   value as threshold, which is exact (every partition a grid of thresholds could make is one of
//!   these), computed from cumulative counts in one sorted pass. Ties: the highest threshold.
//!   `None` when P = 0.
//!
//! # Confusion counts (segment and patient level)
//!
//! precision = TP / (TP + FP), recall = TP / (TP + FN), specificity = TN / (TN + FP),
//! F1 = 2TP / (2TP + FP + FN) (equal to 2PR / (P + R) wherever that is defined, and 0 when
//! TP = 0 < FP + FN). Each is `None` when its denominator is 0 (0/0: e.g. precision with no
//! positive call, recall with no positive truth, F1 with neither).
//!
//! # Bootstrap
//!
//! The resampling unit is the subject: segment-level counts are summed per subject, patient-level
//! counts are one patient per unit. [`bootstrap_confusion`] draws `resamples` (default 1000)
//! samples of units with replacement (ChaCha8 seeded by `seed`), sums their counts and computes
//! each metric; the 95 % interval is the 2.5th and 97.5th percentile (numpy's linear method) of
//! the resamples where the metric is defined, whose number is reported.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use u2ad_core::stats::percentile_of_sorted;

// ---------------------------------------------------------------------------------------------
// Pixel level
// ---------------------------------------------------------------------------------------------

/// Scores with their binary truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledScores {
    scores: Vec<f64>,
    truth: Vec<bool>,
    skipped_non_finite: usize,
}

/// The best Dice over thresholds, and the threshold giving it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BestDice {
    pub dice: f64,
    /// Predicted positive iff score >= this.
    pub threshold: f64,
}

/// One group of tied scores, in descending score order.
struct TieGroup {
    score: f64,
    positives: u64,
    count: u64,
}

impl LabelledScores {
    pub fn new() -> Self {
        Self::default()
    }

    /// From (score, truth) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (f64, bool)>) -> Self {
        let mut set = Self::new();
        for (score, truth) in pairs {
            set.push(score, truth);
        }
        set
    }

    /// Adds one pair (a non-finite score is skipped and counted).
    pub fn push(&mut self, score: f64, truth: bool) {
        if score.is_finite() {
            self.scores.push(score);
            self.truth.push(truth);
        } else {
            self.skipped_non_finite += 1;
        }
    }

    /// Adds the pixels of one map that are inside `within` (nonzero); `truth` nonzero = lesion.
    pub fn push_pixels(&mut self, scores: &[f32], truth: &[u8], within: &[u8]) {
        assert_eq!(scores.len(), truth.len(), "score map and truth map differ in size");
        assert_eq!(scores.len(), within.len(), "score map and mask differ in size");
        for ((&score, &t), &inside) in scores.iter().zip(truth).zip(within) {
            if inside != 0 {
                self.push(f64::from(score), t != 0);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn positives(&self) -> usize {
        self.truth.iter().filter(|&&t| t).count()
    }

    pub fn negatives(&self) -> usize {
        self.len() - self.positives()
    }

    pub fn skipped_non_finite(&self) -> usize {
        self.skipped_non_finite
    }

    /// Tie groups in descending score order.
    fn descending_groups(&self) -> Vec<TieGroup> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by(|&a, &b| self.scores[b].total_cmp(&self.scores[a]));
        let mut groups: Vec<TieGroup> = Vec::new();
        for i in order {
            let (score, positive) = (self.scores[i], u64::from(self.truth[i]));
            match groups.last_mut() {
                Some(group) if group.score == score => {
                    group.positives += positive;
                    group.count += 1;
                }
                _ => groups.push(TieGroup { score, positives: positive, count: 1 }),
            }
        }
        groups
    }

    /// Area under the ROC curve (Mann-Whitney, average ranks for ties). `None` without both
    /// classes.
    pub fn auroc(&self) -> Option<f64> {
        let (positives, negatives) = (self.positives() as f64, self.negatives() as f64);
        if positives == 0.0 || negatives == 0.0 {
            return None;
        }
        // Ascending ranks, 1-based: walk the descending groups from the end.
        let mut rank_sum_positives = 0.0;
        let mut ranked = 0u64;
        for group in self.descending_groups().iter().rev() {
            let average_rank = ranked as f64 + (group.count as f64 + 1.0) / 2.0;
            rank_sum_positives += average_rank * group.positives as f64;
            ranked += group.count;
        }
        Some((rank_sum_positives - positives * (positives + 1.0) / 2.0) / (positives * negatives))
    }

    /// Average precision (sklearn's `average_precision_score`). `None` without positives.
    pub fn average_precision(&self) -> Option<f64> {
        let positives = self.positives() as f64;
        if positives == 0.0 {
            return None;
        }
        let (mut true_positives, mut predicted, mut previous_recall, mut ap) = (0u64, 0u64, 0.0, 0.0);
        for group in self.descending_groups() {
            true_positives += group.positives;
            predicted += group.count;
            let recall = true_positives as f64 / positives;
            let precision = true_positives as f64 / predicted as f64;
            ap += (recall - previous_recall) * precision;
            previous_recall = recall;
        }
        Some(ap)
    }

    /// Confusion counts of "score >= threshold".
    pub fn confusion_at(&self, threshold: f64) -> ConfusionCounts {
        let mut counts = ConfusionCounts::default();
        for (&score, &truth) in self.scores.iter().zip(&self.truth) {
            counts.add(score >= threshold, truth);
        }
        counts
    }

    /// Dice of "score >= threshold"; `None` when there is neither truth nor prediction.
    pub fn dice_at(&self, threshold: f64) -> Option<f64> {
        self.confusion_at(threshold).dice()
    }

    /// The best Dice over every distinct score value as threshold (an oracle). `None` without
    /// positives.
    pub fn best_dice(&self) -> Option<BestDice> {
        let positives = self.positives() as u64;
        if positives == 0 {
            return None;
        }
        let (mut true_positives, mut predicted) = (0u64, 0u64);
        let mut best: Option<BestDice> = None;
        for group in self.descending_groups() {
            true_positives += group.positives;
            predicted += group.count;
            let dice = 2.0 * true_positives as f64 / (predicted + positives) as f64;
            if best.is_none_or(|b| dice > b.dice) {
                best = Some(BestDice { dice, threshold: group.score });
            }
        }
        best
    }
}

// ---------------------------------------------------------------------------------------------
// Confusion counts
// ---------------------------------------------------------------------------------------------

/// A 2 x 2 confusion matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionCounts {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

impl ConfusionCounts {
    /// From (predicted, actual) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut counts = Self::default();
        for (predicted, actual) in pairs {
            counts.add(predicted, actual);
        }
        counts
    }

    pub fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
            (false, true) => self.false_negatives += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    /// TP / (TP + FP); `None` with no positive call.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    /// TP / (TP + FN) (sensitivity); `None` with no positive truth.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }

    /// TN / (TN + FP); `None` with no negative truth.
    pub fn specificity(&self) -> Option<f64> {
        ratio(self.true_negatives, self.true_negatives + self.false_positives)
    }

    /// 2TP / (2TP + FP + FN); `None` with neither positive truth nor positive call.
    pub fn f1(&self) -> Option<f64> {
        ratio(2 * self.true_positives, 2 * self.true_positives + self.false_positives + self.false_negatives)
    }

    /// Dice: the same formula as F1, on pixels.
    pub fn dice(&self) -> Option<f64> {
        self.f1()
    }
}

impl std::ops::Add for ConfusionCounts {
    type Output = ConfusionCounts;
    fn add(self, other: ConfusionCounts) -> ConfusionCounts {
        ConfusionCounts {
            true_positives: self.true_positives + other.true_positives,
            false_positives: self.false_positives + other.false_positives,
            true_negatives: self.true_negatives + other.true_negatives,
            false_negatives: self.false_negatives + other.false_negatives,
        }
    }
}

impl std::iter::Sum for ConfusionCounts {
    fn sum<I: Iterator<Item = ConfusionCounts>>(iter: I) -> Self {
        iter.fold(ConfusionCounts::default(), |a, b| a + b)
    }
}

// ---------------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------------

/// Settings of the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    pub resamples: usize,
    pub seed: u64,
    /// Coverage of the interval, e.g. 0.95.
    pub confidence: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig { resamples: 1000, seed: 0, confidence: 0.95 }
    }
}

/// A percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// A metric on the whole set and its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: Option<f64>,
    pub interval: Option<Interval>,
    /// Resamples where the metric was defined (the interval uses only these).
    pub defined_resamples: usize,
}

/// Confusion counts with precision, recall, specificity and F1, each with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConfusionSummary {
    pub counts: ConfusionCounts,
    pub precision: Estimate,
    pub recall: Estimate,
    pub specificity: Estimate,
    pub f1: Estimate,
    pub resamples: usize,
    pub confidence: f64,
}

fn estimate(value: Option<f64>, mut resampled: Vec<f64>, confidence: f64) -> Estimate {
    resampled.sort_by(f64::total_cmp);
    let tail_percent = (1.0 - confidence) / 2.0 * 100.0;
    let interval = percentile_of_sorted(&resampled, tail_percent)
        .zip(percentile_of_sorted(&resampled, 100.0 - tail_percent))
        .map(|(low, high)| Interval { low, high });
    Estimate { value, interval, defined_resamples: resampled.len() }
}

/// Bootstrap percentile intervals over resampling units (subjects or patients), each unit given
/// by its own confusion counts. Deterministic for a given seed.
pub fn bootstrap_confusion(units: &[ConfusionCounts], config: &BootstrapConfig) -> ConfusionSummary {
    assert!(config.confidence > 0.0 && config.confidence < 1.0, "confidence {} is not in (0, 1)", config.confidence);
    let counts: ConfusionCounts = units.iter().copied().sum();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let metrics: [fn(&ConfusionCounts) -> Option<f64>; 4] =
        [ConfusionCounts::precision, ConfusionCounts::recall, ConfusionCounts::specificity, ConfusionCounts::f1];
    let mut resampled: [Vec<f64>; 4] = Default::default();
    if !units.is_empty() {
        for _ in 0..config.resamples {
            let sample: ConfusionCounts = (0..units.len()).map(|_| units[rng.random_range(0..units.len())]).sum();
            for (metric, values) in metrics.iter().zip(resampled.iter_mut()) {
                values.extend(metric(&sample));
            }
        }
    }
    let [precision, recall, specificity, f1] = resampled;
    ConfusionSummary {
        counts,
        precision: estimate(counts.precision(), precision, config.confidence),
        recall: estimate(counts.recall(), recall, config.confidence),
        specificity: estimate(counts.specificity(), specificity, config.confidence),
        f1: estimate(counts.f1(), f1, config.confidence),
        resamples: config.resamples,
        confidence: config.confidence,
    }
}

#[cfg(test)]
mod tests {
    //! Reference values: sklearn 1.8 `roc_auc_score` and `average_precision_score`, Dice by brute
    //! force over every distinct threshold in numpy, binomial quantiles from scipy.stats.binom.

    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{actual} != {expected} (tolerance {tolerance})");
    }

    /// Ten scores with two tied pairs across classes (0.35 and 0.5) and one within a class (0.1).
    fn small() -> LabelledScores {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.35, 0.1, 0.9, 0.5, 0.5, 0.2];
        let truth = [0, 0, 1, 1, 0, 1, 1, 0, 1, 0];
        LabelledScores::from_pairs(scores.into_iter().zip(truth.map(|t| t == 1)))
    }

    /// Thirty scores rounded to 0.1 (many ties), numpy default_rng(7).
    fn tied() -> LabelledScores {
        let scores = [
            0.6, 0.9, 0.8, 0.2, 0.3, 0.9, 0.0, 0.8, 0.8, 0.5, 0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 1.0, 0.8, 0.6, 1.0, 0.2,
            0.2, 0.6, 0.0, 0.0, 0.5, 0.5, 0.9, 0.6, 0.5,
        ];
        let truth = [0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0];
        LabelledScores::from_pairs(scores.into_iter().zip(truth.map(|t| t == 1)))
    }

    #[test]
    fn auroc_and_average_precision_match_sklearn() {
        let set = small();
        close(set.auroc().unwrap(), 0.7, 1e-12);
        close(set.average_precision().unwrap(), 0.7642857142857142, 1e-12);
        let set = tied();
        close(set.auroc().unwrap(), 0.48444444444444446, 1e-12);
        close(set.average_precision().unwrap(), 0.5657504873294347, 1e-12);
        // All scores tied.
        let set = LabelledScores::from_pairs([(0.5, false), (0.5, true), (0.5, false), (0.5, true)]);
        close(set.auroc().unwrap(), 0.5, 1e-12);
        close(set.average_precision().unwrap(), 0.5, 1e-12);
    }

    #[test]
    fn dice_at_a_threshold_and_the_best_dice() {
        let set = small();
        close(set.dice_at(0.35).unwrap(), 2.0 / 3.0, 1e-12);
        close(set.dice_at(0.5).unwrap(), 2.0 / 3.0, 1e-12);
        // 0.35 and 0.5 tie at 2/3: the higher threshold is reported.
        let best = set.best_dice().unwrap();
        close(best.dice, 0.6666666666666666, 1e-12);
        close(best.threshold, 0.5, 0.0);
        let set = tied();
        close(set.dice_at(0.8).unwrap(), 0.5, 1e-12);
        let best = set.best_dice().unwrap();
        close(best.dice, 0.6666666666666666, 1e-12);
        close(best.threshold, 0.0, 0.0);
        // Nothing predicted and no truth: 0/0.
        let set = LabelledScores::from_pairs([(0.1, false), (0.2, false)]);
        assert_eq!(set.dice_at(0.5), None);
        close(set.dice_at(0.15).unwrap(), 0.0, 0.0);
    }

    #[test]
    fn pixels_outside_the_mask_are_ignored() {
        // The small set, plus a high-scoring negative and a low-scoring positive outside the mask.
        let scores: Vec<f32> = vec![0.1, 0.4, 0.35, 0.8, 0.35, 0.1, 0.9, 0.5, 0.5, 0.2, 0.95, 0.0];
        let truth: Vec<u8> = vec![0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1];
        let within: Vec<u8> = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
        let mut set = LabelledScores::new();
        set.push_pixels(&scores, &truth, &within);
        assert_eq!((set.len(), set.positives(), set.negatives()), (10, 5, 5));
        // f32 scores: same ranks as the f64 fixture.
        close(set.auroc().unwrap(), 0.7, 1e-12);
        close(set.average_precision().unwrap(), 0.7642857142857142, 1e-12);
        close(set.best_dice().unwrap().dice, 2.0 / 3.0, 1e-12);
    }

    #[test]
    fn one_class_sets_give_none_not_a_panic() {
        let negatives = LabelledScores::from_pairs([(0.2, false), (0.7, false), (0.7, false)]);
        assert_eq!(negatives.auroc(), None);
        assert_eq!(negatives.average_precision(), None);
        assert_eq!(negatives.best_dice(), None);
        let positives = LabelledScores::from_pairs([(0.2, true), (0.5, true), (0.5, true)]);
        assert_eq!(positives.auroc(), None);
        // sklearn: average_precision_score([1, 1, 1], [0.2, 0.5, 0.5]) = 1.0.
        assert_eq!(positives.average_precision(), Some(1.0));
        let empty = LabelledScores::new();
        assert_eq!(
            (empty.auroc(), empty.average_precision(), empty.best_dice(), empty.dice_at(0.0)),
            (None, None, None, None)
        );
        let mut with_nan = LabelledScores::new();
        with_nan.push(f64::NAN, true);
        with_nan.push(0.3, false);
        assert_eq!((with_nan.len(), with_nan.skipped_non_finite()), (1, 1));
    }

    #[test]
    fn confusion_metrics_and_their_zero_denominators() {
        let counts = ConfusionCounts { true_positives: 3, false_positives: 1, true_negatives: 4, false_negatives: 2 };
        close(counts.precision().unwrap(), 0.75, 1e-15);
        close(counts.recall().unwrap(), 0.6, 1e-15);
        close(counts.specificity().unwrap(), 0.8, 1e-15);
        close(counts.f1().unwrap(), 2.0 / 3.0, 1e-15);
        assert_eq!(counts.total(), 10);
        let pairs = [
            (true, true),
            (true, true),
            (true, true),
            (true, false),
            (false, false),
            (false, false),
            (false, false),
            (false, false),
            (false, true),
            (false, true),
        ];
        assert_eq!(ConfusionCounts::from_pairs(pairs), counts);

        // Only true negatives: precision, recall and F1 are 0/0.
        let all_negative = ConfusionCounts { true_negatives: 5, ..ConfusionCounts::default() };
        assert_eq!((all_negative.precision(), all_negative.recall(), all_negative.f1()), (None, None, None));
        assert_eq!(all_negative.specificity(), Some(1.0));
        // Missed positives only: precision is 0/0, recall and F1 are 0.
        let missed = ConfusionCounts { false_negatives: 2, ..ConfusionCounts::default() };
        assert_eq!(
            (missed.precision(), missed.recall(), missed.f1(), missed.specificity()),
            (None, Some(0.0), Some(0.0), None)
        );
        assert_eq!(ConfusionCounts::default().f1(), None);
    }

    #[test]
    fn bootstrap_of_identical_units_has_a_degenerate_interval() {
        let unit = ConfusionCounts { true_positives: 1, false_positives: 1, true_negatives: 3, false_negatives: 0 };
        let summary =
            bootstrap_confusion(&[unit; 7], &BootstrapConfig { resamples: 200, ..BootstrapConfig::default() });
        assert_eq!(summary.counts.true_negatives, 21);
        assert_eq!(summary.precision.interval, Some(Interval { low: 0.5, high: 0.5 }));
        assert_eq!(summary.specificity.interval, Some(Interval { low: 0.75, high: 0.75 }));
        assert_eq!(summary.recall.interval, Some(Interval { low: 1.0, high: 1.0 }));
        assert_eq!(summary.f1.value, Some(2.0 / 3.0));
        assert_eq!(summary.precision.defined_resamples, 200);
    }

    #[test]
    fn bootstrap_recall_interval_matches_the_binomial() {
        // 100 patients, 50 detected and 50 missed: resampled recall ~ Binomial(100, 0.5) / 100,
        // whose 2.5 % and 97.5 % quantiles are 40 and 60 (scipy.stats.binom.ppf).
        let detected = ConfusionCounts { true_positives: 1, ..ConfusionCounts::default() };
        let missed = ConfusionCounts { false_negatives: 1, ..ConfusionCounts::default() };
        let units: Vec<ConfusionCounts> = (0..100).map(|i| if i % 2 == 0 { detected } else { missed }).collect();
        let config = BootstrapConfig { resamples: 4000, seed: 11, confidence: 0.95 };
        let summary = bootstrap_confusion(&units, &config);
        assert_eq!(summary.recall.value, Some(0.5));
        let interval = summary.recall.interval.unwrap();
        close(interval.low, 0.40, 0.021);
        close(interval.high, 0.60, 0.021);
        // No negatives: specificity is undefined in every resample.
        assert_eq!(
            (summary.specificity.value, summary.specificity.interval, summary.specificity.defined_resamples),
            (None, None, 0)
        );
        // The same seed gives the same interval; another seed agrees with the binomial too.
        assert_eq!(bootstrap_confusion(&units, &config), summary);
        let other = bootstrap_confusion(&units, &BootstrapConfig { seed: 12, ..config }).recall.interval.unwrap();
        close(other.low, 0.40, 0.021);
        close(other.high, 0.60, 0.021);
    }

    #[test]
    fn bootstrap_of_no_units_is_empty() {
        let summary = bootstrap_confusion(&[], &BootstrapConfig::default());
        assert_eq!(summary.counts, ConfusionCounts::default());
        assert_eq!((summary.f1.value, summary.f1.interval, summary.f1.defined_resamples), (None, None, 0));
    }
}
