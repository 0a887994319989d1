//! Step 1 of detection (module docs, section 1): the anomaly map of a sample ([`Polarity`]) and
//! its candidates, the reference's `process_error`.

use serde::{Deserialize, Serialize};

use crate::plane::{gaussian_smooth, label_components_8, ComponentLabels, PlaneShape};
use crate::stats::percentile;

/// Which deviations from the reconstruction make the anomaly map that detection scores.
///
/// The paper's aleatoric uncertainty is `AU = |image − mean reconstruction|`: it is as large
/// where the reconstruction is too bright as where the image is. A T2 hyperintensity is by
/// definition brighter than the expected cord, and an imperfect model's commonest error (the
/// dark cord reconstructed a little too bright, towards the surrounding CSF) has the other sign,
/// so u2ad scores the hyperintense side only by default (a departure from the paper):
/// `anomaly = AU` where `image > mean`, else 0. [`Polarity::Both`] is the paper's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// Only pixels brighter than their reconstruction (T2 hyperintensities).
    #[default]
    Hyperintense,
    /// Both signs: the paper's `|image − mean reconstruction|`.
    Both,
}

impl Polarity {
    /// The anomaly map from the image, the mean reconstruction and `AU = |image − mean|`.
    pub fn anomaly(self, image: &[f32], mean: &[f32], au: &[f32]) -> Vec<f32> {
        match self {
            Polarity::Both => au.to_vec(),
            Polarity::Hyperintense => image.iter().zip(mean).zip(au).map(|((&x, &m), &a)| if x > m { a } else { 0.0 }).collect(),
        }
    }
}

/// The anomaly map of a sample: `polarity`'s side of the difference between the image and its
/// mean reconstruction smoothed in-plane by a Gaussian of `smoothing_px` (why:
/// [`smoothed_reconstruction`]); with `smoothing_px` 0 the Monte-Carlo `au` (the paper's map).
pub fn anomaly_map(polarity: Polarity, image: &[f32], mean: &[f32], au: &[f32], shape: PlaneShape, smoothing_px: f64) -> Vec<f32> {
    if !(smoothing_px > 0.0) {
        return polarity.anomaly(image, mean, au);
    }
    let expected = smoothed_reconstruction(mean, shape, smoothing_px);
    let deviation: Vec<f32> = image.iter().zip(&expected).map(|(x, m)| (x - m).abs()).collect();
    polarity.anomaly(image, &expected, &deviation)
}

/// The reconstruction the anomaly map compares the image with: the Monte-Carlo mean smoothed by
/// a Gaussian of `sigma_px`. The mean of K masked predictions carries pixel-scale noise and the
/// seams of the model's 8-pixel patches, while the healthy cord's signal is smooth at that scale
/// and a lesion (15 voxels and more) is larger; smoothing the expected image (not the image)
/// takes the noise out of the comparison without blurring the lesion itself. A departure from
/// the paper, whose map compares with the raw mean.
pub fn smoothed_reconstruction(mean: &[f32], shape: PlaneShape, sigma_px: f64) -> Vec<f32> {
    gaussian_smooth(mean, shape, sigma_px)
}

/// Settings of [`anomaly_candidates`]; the defaults are the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateFilter {
    /// Percentile (0-100) of the nonzero cord AU above which pixels are kept.
    pub percentile: f64,
    /// Components with fewer pixels are dropped.
    pub min_area_px: usize,
    /// Number of best components kept.
    pub top_components: usize,
}

impl Default for CandidateFilter {
    fn default() -> Self {
        CandidateFilter { percentile: 90.0, min_area_px: 2, top_components: 3 }
    }
}

/// One kept component of the filtered map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateComponent {
    pub area_px: usize,
    pub mean_au: f64,
    pub sum_au: f64,
    /// mean_au x sum_au.
    pub score: f64,
    /// Most superior and most inferior rows of the component.
    pub first_row_px: usize,
    pub last_row_px: usize,
}

/// The filtered AU map of one sample and what was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateMap {
    /// AU on the kept components' pixels, 0 elsewhere.
    pub filtered_au: Vec<f32>,
    /// The percentile threshold t (`None` when the cord AU has no nonzero value).
    pub threshold_au: Option<f64>,
    /// Kept components, best first.
    pub components: Vec<CandidateComponent>,
}

impl CandidateMap {
    /// Whether pixel `index` belongs to a kept component.
    pub fn is_candidate(&self, index: usize) -> bool {
        self.filtered_au[index] != 0.0
    }
}

/// The reference's `process_error` (module docs, section 1): the AU of the eroded cord above its
/// percentile, in the best `top_components` 8-connected components of at least `min_area_px`.
pub fn anomaly_candidates(au: &[f32], cord_eroded: &[u8], shape: PlaneShape, filter: &CandidateFilter) -> CandidateMap {
    shape.check(au.len(), "AU map");
    shape.check(cord_eroded.len(), "eroded cord mask");
    let cord_au: Vec<f64> =
        au.iter().zip(cord_eroded).map(|(&v, &m)| if m != 0 { f64::from(v) } else { 0.0 }).collect();
    let nonzero: Vec<f64> = cord_au.iter().copied().filter(|&v| v != 0.0).collect();
    let Some(threshold_au) = percentile(&nonzero, filter.percentile) else {
        return CandidateMap { filtered_au: vec![0.0; au.len()], threshold_au: None, components: Vec::new() };
    };
    let above: Vec<bool> = cord_au.iter().map(|&v| v > threshold_au).collect();
    let ComponentLabels { labels, count } = label_components_8(&above, shape);

    struct Accumulator {
        area_px: usize,
        sum_au: f64,
        first_row_px: usize,
        last_row_px: usize,
    }
    let mut accumulators: Vec<Accumulator> =
        (0..count).map(|_| Accumulator { area_px: 0, sum_au: 0.0, first_row_px: usize::MAX, last_row_px: 0 }).collect();
    for (index, &label) in labels.iter().enumerate() {
        if label == 0 {
            continue;
        }
        let acc = &mut accumulators[label as usize - 1];
        let row = index / shape.cols;
        acc.area_px += 1;
        acc.sum_au += cord_au[index];
        acc.first_row_px = acc.first_row_px.min(row);
        acc.last_row_px = acc.last_row_px.max(row);
    }
    let mut ranked: Vec<(u32, CandidateComponent)> = accumulators
        .iter()
        .enumerate()
        .filter(|(_, acc)| acc.area_px >= filter.min_area_px)
        .map(|(i, acc)| {
            let mean_au = acc.sum_au / acc.area_px as f64;
            let component = CandidateComponent {
                area_px: acc.area_px,
                mean_au,
                sum_au: acc.sum_au,
                score: mean_au * acc.sum_au,
                first_row_px: acc.first_row_px,
                last_row_px: acc.last_row_px,
            };
            (i as u32 + 1, component)
        })
        .collect();
    // Stable: equal scores keep raster order.
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    ranked.truncate(filter.top_components);

    let mut filtered_au = vec![0.0f32; au.len()];
    for (index, &label) in labels.iter().enumerate() {
        if label != 0 && ranked.iter().any(|(kept, _)| *kept == label) {
            filtered_au[index] = cord_au[index] as f32;
        }
    }
    CandidateMap {
        filtered_au,
        threshold_au: Some(threshold_au),
        components: ranked.into_iter().map(|(_, component)| component).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::test_fixtures::close;

    #[test]
    fn the_anomaly_map_compares_the_image_with_the_smoothed_reconstruction() {
        let shape = PlaneShape { rows: 9, cols: 9 };
        let image = vec![0.5f32; shape.pixels()];
        // A reconstruction of 0.5 with one pixel of seam noise at 0.3: the raw map makes a 0.2
        // spot of it; against the smoothed reconstruction it is spread thin and mostly gone.
        let mut mean = image.clone();
        mean[4 * 9 + 4] = 0.3;
        let au: Vec<f32> = image.iter().zip(&mean).map(|(x, m)| (x - m).abs()).collect();
        let raw = anomaly_map(Polarity::Hyperintense, &image, &mean, &au, shape, 0.0);
        assert_eq!(raw, Polarity::Hyperintense.anomaly(&image, &mean, &au));
        close(f64::from(raw[4 * 9 + 4]), 0.2, 1e-6);
        let smooth = anomaly_map(Polarity::Hyperintense, &image, &mean, &au, shape, 1.5);
        let expected = gaussian_smooth(&mean, shape, 1.5);
        close(f64::from(smooth[4 * 9 + 4]), f64::from(0.5 - expected[4 * 9 + 4]), 1e-6);
        assert!(smooth[4 * 9 + 4] < 0.2 * 0.1, "{}", smooth[4 * 9 + 4]);
        // A flat reconstruction brighter than the image: smoothing leaves it, the both-sided map keeps it.
        let both = anomaly_map(Polarity::Both, &image, &vec![0.6; shape.pixels()], &[0.1; 81], shape, 1.5);
        assert!(both.iter().all(|&v| (v - 0.1).abs() < 1e-6));
    }

    #[test]
    fn hyperintense_polarity_keeps_only_pixels_brighter_than_the_reconstruction() {
        let (image, mean) = ([0.5f32, 0.2, 0.7, 0.4], [0.3f32, 0.6, 0.7, 0.1]);
        let au: Vec<f32> = image.iter().zip(&mean).map(|(x, m)| (x - m).abs()).collect();
        let hyper = Polarity::Hyperintense.anomaly(&image, &mean, &au);
        assert_eq!(hyper, vec![au[0], 0.0, 0.0, au[3]]);
        assert_eq!(Polarity::Both.anomaly(&image, &mean, &au), au);
        assert_eq!(Polarity::default(), Polarity::Hyperintense);
    }

    /// The 8 x 10 AU map of the candidate tests: a low background 0.010-0.016 with ties, five
    /// blobs inside the cord (columns 1-8) and two bright pixels outside it.
    fn candidate_fixture() -> (Vec<f32>, Vec<u8>, PlaneShape) {
        let shape = PlaneShape { rows: 8, cols: 10 };
        let mut au = vec![0.0f32; shape.pixels()];
        for row in 0..shape.rows {
            for col in 0..shape.cols {
                au[row * shape.cols + col] = (0.01 + ((row * 8 + col) % 7) as f64 * 0.001) as f32;
            }
        }
        let blobs = [
            ((1, 2), 0.20), // A: two pixels joined diagonally
            ((2, 3), 0.18),
            ((1, 6), 0.15), // B: one pixel
            ((4, 5), 0.12), // C: three pixels
            ((4, 6), 0.11),
            ((5, 5), 0.13),
            ((6, 1), 0.09), // D: two pixels
            ((7, 1), 0.095),
            ((6, 7), 0.10), // E: two pixels
            ((6, 8), 0.10),
            ((3, 0), 0.5), // outside the cord
            ((2, 9), 0.5),
        ];
        for ((row, col), value) in blobs {
            au[row * shape.cols + col] = value as f32;
        }
        let cord: Vec<u8> = (0..shape.pixels()).map(|i| u8::from((1..9).contains(&(i % shape.cols)))).collect();
        (au, cord, shape)
    }

    fn kept_pixels(map: &CandidateMap, shape: PlaneShape) -> Vec<(usize, usize)> {
        (0..shape.pixels()).filter(|&i| map.is_candidate(i)).map(|i| (i / shape.cols, i % shape.cols)).collect()
    }

    #[test]
    fn candidates_match_process_error_at_the_90th_percentile() {
        let (au, cord, shape) = candidate_fixture();
        let map = anomaly_candidates(&au, &cord, shape, &CandidateFilter::default());
        // t is the f32 0.1 itself: the 0.10 pixels of blob E are not above it (strict >); B has
        // one pixel and is dropped.
        close(map.threshold_au.unwrap(), 0.10000000149011612, 1e-12);
        assert_eq!(kept_pixels(&map, shape), vec![(1, 2), (2, 3), (4, 5), (4, 6), (5, 5)]);
        assert_eq!(map.components.len(), 2);
        close(map.components[0].score, 0.0722000038504601, 1e-12);
        close(map.components[0].mean_au, 0.1900000050663948, 1e-12);
        close(map.components[0].sum_au, 0.3800000101327896, 1e-12);
        assert_eq!(
            (map.components[0].area_px, map.components[0].first_row_px, map.components[0].last_row_px),
            (2, 1, 2)
        );
        close(map.components[1].score, 0.04319999806880953, 1e-12);
        assert_eq!(map.components[1].area_px, 3);
        assert_eq!(map.filtered_au[2 * 10 + 3], 0.18f32);
    }

    #[test]
    fn candidates_keep_the_top_components() {
        let (au, cord, shape) = candidate_fixture();
        let filter = CandidateFilter { percentile: 80.0, ..CandidateFilter::default() };
        let map = anomaly_candidates(&au, &cord, shape, &filter);
        close(map.threshold_au.unwrap(), 0.01600000075995922, 1e-12);
        // Four components of >= 2 px; D (score 0.0171) is the fourth and is dropped.
        assert_eq!(kept_pixels(&map, shape), vec![(1, 2), (2, 3), (4, 5), (4, 6), (5, 5), (6, 7), (6, 8)]);
        let scores: Vec<f64> = map.components.iter().map(|c| c.score).collect();
        assert_eq!(scores.len(), 3);
        close(scores[2], 0.020000000596046452, 1e-12);
        // Keeping one-pixel components lets B (0.0225) in above E.
        let filter = CandidateFilter { percentile: 80.0, min_area_px: 1, top_components: 4 };
        let map = anomaly_candidates(&au, &cord, shape, &filter);
        assert!(map.is_candidate(16) && !map.is_candidate(6 * 10 + 1));
        close(map.components[2].score, 0.15f32 as f64 * 0.15f32 as f64, 1e-15);
    }

    #[test]
    fn candidates_of_an_empty_cord_are_empty() {
        let (au, _, shape) = candidate_fixture();
        let map = anomaly_candidates(&au, &vec![0; shape.pixels()], shape, &CandidateFilter::default());
        assert_eq!(map.threshold_au, None);
        assert!(map.components.is_empty() && map.filtered_au.iter().all(|&v| v == 0.0));
    }
}
