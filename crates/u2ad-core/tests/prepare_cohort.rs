//! Preprocessing of the shared healthy cohort, end to end: what `u2ad prepare` keeps, and that
//! every sample pixel maps back onto the native voxel it came from.

use std::path::Path;

use ndarray::Array3;
use u2ad_core::dataset::{SAMPLE_PIXELS, SAMPLE_SIZE};
use u2ad_data::sample_file;
use u2ad_core::prepare::{prepare_subject, PrepareOptions, PreparedSubject};
use u2ad_core::sample::project_to_native;
use u2ad_io::cohort::{discover_bids, DiscoveryOptions, SubjectFiles};
use u2ad_io::volume::{Volume, VoxelType};

fn subject(name: &str) -> SubjectFiles {
    discover_bids(&sample_file("spine-t2"), &DiscoveryOptions::default())
        .unwrap()
        .into_iter()
        .find(|s| s.subject == name)
        .unwrap()
}

fn mid_sample(p: &PreparedSubject) -> usize {
    (0..p.samples.len())
        .min_by(|&a, &b| {
            p.samples[a].meta.offset_from_mid_mm.abs().total_cmp(&p.samples[b].meta.offset_from_mid_mm.abs())
        })
        .unwrap()
}

#[test]
fn errsm11_keeps_its_cord_slices_and_all_cervical_levels() {
    let p = prepare_subject(&subject("sub-errsm11"), &PrepareOptions::default()).unwrap();
    // numpy: foreground = voxels != first voxel (0); percentiles 0.2 / 99.8 = 1 and 914.
    assert_eq!(p.meta.intensity_low, 1.0);
    assert_eq!(p.meta.intensity_high, 914.0);
    assert_eq!(p.samples.len(), 17, "sagittal slices with cord");
    assert!((p.meta.cord_length_mm - 234.4).abs() < 0.5, "{}", p.meta.cord_length_mm);
    assert_eq!(p.meta.levels_found, ["C2/C3", "C3/C4", "C4/C5", "C5/C6", "C6/C7", "C7/T1"]);
    assert!(p.meta.csf_derived);
    let s = &p.samples[mid_sample(&p)];
    assert!(s.image.iter().all(|v| (0.0..=1.0).contains(v)));
    // The ROI holds the cord and the CSF, and is larger than both together by the dilation.
    let count = |m: &[u8]| m.iter().filter(|&&v| v == 1).count();
    let (roi, cord, csf) = (count(&s.roi), count(&s.cord), count(&s.csf));
    assert!(cord > 2000 && csf > 500, "cord {cord} csf {csf}");
    assert!(roi > cord + csf, "roi {roi}");
    assert!(s.cord.iter().zip(&s.roi).all(|(&c, &r)| c == 0 || r == 1));
    // On T2 the CSF is brighter than the cord.
    let mean_in = |m: &[u8]| {
        s.image.iter().zip(m).filter(|(_, &v)| v == 1).map(|(&x, _)| x as f64).sum::<f64>() / count(m) as f64
    };
    assert!(mean_in(&s.csf) > 1.3 * mean_in(&s.cord), "csf {} cord {}", mean_in(&s.csf), mean_in(&s.cord));
    // Segments run top to bottom in order, each 10-30 mm long.
    let codes: Vec<u8> = s.row_segment.iter().copied().filter(|&c| c > 0).collect();
    assert!(codes.windows(2).all(|w| w[0] <= w[1]));
    for code in 1..=6u8 {
        let rows = s.row_segment.iter().filter(|&&c| c == code).count() as f64 * s.meta.pixel_mm;
        assert!((10.0..30.0).contains(&rows), "segment {code}: {rows} mm");
    }
}

#[test]
fn sample_pixels_map_back_onto_their_native_voxels() {
    let files = subject("sub-errsm11");
    let p = prepare_subject(&files, &PrepareOptions::default()).unwrap();
    let image = Volume::read(&files.image).unwrap();
    let index = mid_sample(&p);
    let s = &p.samples[index];
    let mut back = Array3::<f32>::from_elem(image.data.dim(), -1.0);
    project_to_native(&s.meta, &s.image, &mut back);
    let cord = Volume::read(files.cord_mask.as_ref().unwrap()).unwrap();
    let (low, high) = (p.meta.intensity_low as f32, p.meta.intensity_high as f32);
    let mut errors = Vec::new();
    for ((i, j, k), &v) in back.indexed_iter() {
        if v >= 0.0 && cord.data[[i, j, k]] > 0.5 {
            let native = ((image.data[[i, j, k]].clamp(low, high) - low) / (high - low)).clamp(0.0, 1.0);
            errors.push((v - native).abs());
        }
    }
    // The projected slice is the native slice the sample came from (axis 2 of a PSR file).
    assert!(back.index_axis(ndarray::Axis(2), s.meta.native_slice).iter().any(|&v| v >= 0.0));
    assert!(errors.len() > 1000, "{} cord voxels compared", errors.len());
    let mean: f32 = errors.iter().sum::<f32>() / errors.len() as f32;
    // Down (1 mm -> 0.78 mm, cubic) then back (bilinear): a small interpolation error.
    assert!(mean < 0.03, "mean abs error {mean}");
}

/// Writes `volume` in canonical RAS+ voxel order with the matching sform (and no qform).
fn write_ras_copy(volume: &Volume, path: &Path) {
    let reorientation = volume.reorientation();
    let data = reorientation.to_canonical(volume.data.view()).as_standard_layout().to_owned();
    let affine = reorientation.canonical_affine(&volume.affine).to_rows();
    let mut header = volume.header.clone();
    let shape = data.shape();
    header.dim = [3, shape[0] as u16, shape[1] as u16, shape[2] as u16, 1, 1, 1, 1];
    let spacing = reorientation.canonical_affine(&volume.affine).spacing_mm();
    header.pixdim = [1.0, spacing[0] as f32, spacing[1] as f32, spacing[2] as f32, 1.0, 1.0, 1.0, 1.0];
    header.sform_code = 1;
    header.qform_code = 0;
    header.srow_x = affine[0].map(|v| v as f32);
    header.srow_y = affine[1].map(|v| v as f32);
    header.srow_z = affine[2].map(|v| v as f32);
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    nifti::writer::WriterOptions::new(path).reference_header(&header).write_nifti(&data).unwrap();
}

#[test]
fn the_same_anatomy_gives_the_same_samples_whatever_the_file_orientation() {
    let files = subject("sub-errsm30");
    let dir = tempfile::tempdir().unwrap();
    let copy = |path: &Path, name: &str| {
        let out = dir.path().join(name);
        write_ras_copy(&Volume::read(path).unwrap(), &out);
        out
    };
    let ras = SubjectFiles {
        subject: "sub-ras".into(),
        image: copy(&files.image, "img.nii.gz"),
        cord_mask: Some(copy(files.cord_mask.as_ref().unwrap(), "cord.nii.gz")),
        csf_mask: Some(copy(files.csf_mask.as_ref().unwrap(), "csf.nii.gz")),
        levels: Some(copy(files.levels.as_ref().unwrap(), "levels_label-vertebrae_dlabel.nii.gz")),
    };
    assert_eq!(Volume::read(&ras.image).unwrap().orientation().to_string(), "RAS");
    let native = prepare_subject(&files, &PrepareOptions::default()).unwrap();
    let reoriented = prepare_subject(&ras, &PrepareOptions::default()).unwrap();
    assert_eq!(native.samples.len(), reoriented.samples.len());
    assert_eq!(native.meta.levels_found, reoriented.meta.levels_found);
    for (a, b) in native.samples.iter().zip(&reoriented.samples) {
        assert_eq!(a.cord, b.cord);
        assert_eq!(a.roi, b.roi);
        assert_eq!(a.row_segment, b.row_segment);
        let max_diff = a.image.iter().zip(&b.image).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-6, "{max_diff}");
    }
    assert_eq!(native.samples[0].image.len(), SAMPLE_PIXELS);
    assert_eq!(native.samples[0].row_segment.len(), SAMPLE_SIZE);
}

const ERRSM30_CORD: &str = "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz";

/// A constant T2 image (all zero, or any one value) has nothing to detect: prepare refuses it,
/// with one line naming the file.
#[test]
fn constant_image_is_refused_by_prepare() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::read(sample_file("spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz")).unwrap();
    for value in [0.0f32, 812.5] {
        let path = dir.path().join(format!("sub-flat{value}_T2w.nii.gz"));
        v.write_like(Array3::from_elem(v.data.raw_dim(), value).view(), VoxelType::Float32, &path).unwrap();
        let files = SubjectFiles {
            subject: "sub-flat".into(),
            image: path.clone(),
            cord_mask: Some(sample_file(ERRSM30_CORD)),
            csf_mask: None,
            levels: None,
        };
        let msg = prepare_subject(&files, &PrepareOptions::default()).unwrap_err().to_string();
        assert!(msg.contains(&*path.file_name().unwrap().to_string_lossy()) && !msg.contains('\n'), "{msg}");
        assert!(msg.ends_with(&format!("the image is constant (every voxel is {value}): nothing to detect")), "{msg}");
    }
}
