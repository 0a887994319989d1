//! The training set: the samples a run trains on (those whose ROI touches enough patches) and
//! their per-slice arrays (normalised image, training ROI, Monte-Carlo ROI, candidate cord).

use u2ad_core::dataset::PreparedDataset;
use u2ad_core::scoring::{erode_3x3, PlaneShape};

use super::{McRegion, TrainError, TrainingConfig};
use crate::augment::min_max_normalise;

/// The samples a run trains on, with the per-slice arrays it needs, in training-set order.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// Dataset index of each training sample.
    pub samples: Vec<usize>,
    /// Dataset indices left out (ROI on fewer than `min_roi_patches` patches).
    pub skipped: Vec<usize>,
    pub side: usize,
    /// Min–max normalised images.
    images: Vec<f32>,
    /// Training ROI (the dataset's `roi`).
    roi: Vec<u8>,
    /// ROI of the Monte-Carlo inference.
    mc_roi: Vec<u8>,
    /// Cord mask of the anomaly candidates (eroded when configured).
    cord: Vec<u8>,
}

impl TrainingSet {
    /// Selects the training samples of `dataset` and prepares their arrays.
    pub fn new(dataset: &PreparedDataset, config: &TrainingConfig) -> Result<TrainingSet, TrainError> {
        let grid = config.model.grid();
        let side = grid.image_size;
        if side != u2ad_core::dataset::SAMPLE_SIZE {
            return Err(TrainError::Data(format!(
                "model.image_size = {side}, but prepared samples are {} x {}",
                u2ad_core::dataset::SAMPLE_SIZE,
                u2ad_core::dataset::SAMPLE_SIZE
            )));
        }
        let shape = PlaneShape { rows: side, cols: side };
        let mut set = TrainingSet {
            samples: Vec::new(),
            skipped: Vec::new(),
            side,
            images: Vec::new(),
            roi: Vec::new(),
            mc_roi: Vec::new(),
            cord: Vec::new(),
        };
        for index in 0..dataset.len() {
            let s = dataset.sample(index);
            let roi_patches = grid.patches_touching(s.roi).iter().filter(|&&t| t).count();
            if roi_patches < config.training.min_roi_patches.max(1) {
                set.skipped.push(index);
                continue;
            }
            set.samples.push(index);
            let mut image = s.image.to_vec();
            min_max_normalise(&mut image);
            set.images.extend_from_slice(&image);
            set.roi.extend_from_slice(s.roi);
            match config.adaptation.mc_region {
                McRegion::CordAndCsf => set.mc_roi.extend(s.cord.iter().zip(s.csf).map(|(&c, &f)| u8::from(c != 0 || f != 0))),
                McRegion::Roi => set.mc_roi.extend_from_slice(s.roi),
            }
            if config.adaptation.candidates.erode_cord {
                set.cord.extend(erode_3x3(s.cord, shape));
            } else {
                set.cord.extend(s.cord.iter().map(|&c| u8::from(c != 0)));
            }
        }
        if set.samples.is_empty() {
            return Err(TrainError::Data(format!(
                "no sample has an ROI on {} or more patches ({} samples)",
                config.training.min_roi_patches,
                dataset.len()
            )));
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub(super) fn pixels(&self) -> usize {
        self.side * self.side
    }

    fn span(&self, k: usize) -> std::ops::Range<usize> {
        k * self.pixels()..(k + 1) * self.pixels()
    }

    /// Min–max normalised image of training sample `k`.
    pub fn image(&self, k: usize) -> &[f32] {
        &self.images[self.span(k)]
    }

    /// Training ROI of sample `k`.
    pub fn roi(&self, k: usize) -> &[u8] {
        &self.roi[self.span(k)]
    }

    /// MC-inference ROI of sample `k`.
    pub fn mc_roi(&self, k: usize) -> &[u8] {
        &self.mc_roi[self.span(k)]
    }

    /// Cord mask of the anomaly candidates of sample `k`.
    pub fn candidate_cord(&self, k: usize) -> &[u8] {
        &self.cord[self.span(k)]
    }

    /// Steps (batches) per epoch.
    pub fn steps_per_epoch(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size.max(1))
    }
}
