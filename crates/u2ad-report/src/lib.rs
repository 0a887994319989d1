//! u2ad-report: the pictures and the page a reader of `u2ad detect` looks at.
//!
//! * [`figures::maps_figure`]: one sagittal slice in four panels (the image with the cord
//!   outline, the mean reconstruction, the epistemic uncertainty (EU) over the image, the
//!   aleatoric uncertainty (AU, the anomaly map) over the image with the anomaly candidates
//!   outlined), with the vertebral-centre lines that bound the disc levels;
//! * [`figures::curve_figure`]: the anomaly curve along the cord with the level boundaries, each
//!   level's threshold and its peak coloured by its call;
//! * [`html::render_report`]: one HTML QC page for a cohort (by default the figures are the PNG
//!   files beside it, loaded lazily; [`html::FigureMode::Embedded`], `--self-contained-report`,
//!   puts them inside as base64 data URIs), one subject at a time, the arrow keys moving
//!   between subjects as in the Spinal Cord Toolbox's QC report;
//! * [`training_figures`]: the figures of `u2ad pretrain` and `u2ad adapt` (`training.png`, the
//!   loss and uncertainty curves; `reconstruction.png`; `uncertainty.png`);
//! * [`colour`]: the colour maps of all of them.
//!
//! The crate knows nothing of NIfTI or models: it draws plain arrays and tables, so that it can be
//! tested on its own. Text is drawn with DejaVu Sans embedded in the binary (no system fonts),
//! registered once for every figure.

pub mod colour;
pub mod demo_page;
pub mod figures;
pub mod html;
pub mod training_figures;

/// A figure that could not be drawn or encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw figure '{figure}': {detail}")]
pub struct FigureError {
    pub figure: String,
    pub detail: String,
}
