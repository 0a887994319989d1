//! Masks, derived CSF, centreline and vertebral levels on the real sample data.
//!
//! Every expected number was computed independently in Python (nibabel
//! `as_closest_canonical` for the canonical arrays, numpy, scipy.ndimage: `binary_dilation`,
//! `binary_erosion`, `label`, `distance_transform_edt(sampling=spacing)`,
//! `uniform_filter1d(mode="nearest")`, `np.interp`) following the documented definitions, and
//! is written here as a literal with a tolerance.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Axis};
use u2ad_core::anatomy::{
    connected_components_2d, cord_mask, csf_mask, derive_csf, derive_csf_with, dice, CsfDerivation, dilate_2d, dilate_3d, dilate_ball_mm, erode_2d,
    erode_3d, load_cord_mask, load_csf_mask, Centreline, Neighbourhood2d, Neighbourhood3d,
};
use u2ad_core::levels::{
    load_levels, load_levels_report, pam50_vertebra_depth_mm, place_vertebrae, DiscLevel, Landmark, LevelConvention,
    LevelMap, PAM50_DISC_DEPTH_MM, PAM50_VERTEBRA_DEPTH_MM,
};
use u2ad_data::sample_file;
use u2ad_core::CoreError;
use u2ad_io::error::FileError;
use u2ad_io::volume::{Volume, VoxelType};

fn image_path(subject: &str) -> PathBuf {
    sample_file(format!("spine-t2/sub-{subject}/anat/sub-{subject}_T2w.nii.gz"))
}

fn label_path(subject: &str, suffix: &str) -> PathBuf {
    sample_file(format!("spine-t2/derivatives/labels/sub-{subject}/anat/sub-{subject}_T2w_{suffix}.nii.gz"))
}

fn canonical_spacing(volume: &Volume) -> [f64; 3] {
    volume.reorientation().canonical_affine(&volume.affine).spacing_mm()
}

struct Subject {
    image: Volume,
    cord: Array3<bool>,
    spacing_mm: [f64; 3],
    centreline: Centreline,
}

fn subject(name: &str) -> Subject {
    let image = Volume::read(image_path(name)).unwrap();
    let cord = load_cord_mask(&label_path(name, "label-SC_seg"), &image).unwrap();
    let spacing_mm = canonical_spacing(&image);
    let centreline = Centreline::from_cord(cord.view(), spacing_mm).unwrap();
    Subject { image, cord, spacing_mm, centreline }
}

fn count(mask: impl IntoIterator<Item = bool>) -> usize {
    mask.into_iter().filter(|&v| v).count()
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!((actual - expected).abs() <= tolerance, "{what}: {actual} differs from {expected} by more than {tolerance}");
}

// ---------------------------------------------------------------------------------------------
// Masks and morphology.

#[test]
fn morphology_2d_matches_scipy_on_a_cord_slice() {
    // sub-errsm11, canonical sagittal plane x = 29 of the cord mask (1532 pixels).
    let s = subject("errsm11");
    let plane = s.cord.index_axis(Axis(0), 29);
    assert_eq!(count(plane.iter().copied()), 1532);
    assert_eq!(count(dilate_2d(plane, Neighbourhood2d::Cross, 2)), 2412);
    assert_eq!(count(dilate_2d(plane, Neighbourhood2d::Square, 1)), 2128);
    assert_eq!(count(erode_2d(plane, Neighbourhood2d::Cross, 1)), 1076);
    assert_eq!(count(erode_2d(plane, Neighbourhood2d::Square, 2)), 360);
}

#[test]
fn components_match_scipy_on_bright_t2_pixels() {
    // Same plane of the image, pixels > 600: scipy.ndimage.label with a 3 x 3 square.
    let s = subject("errsm11");
    let canonical = s.image.reorientation().to_canonical(s.image.data.view());
    let bright = canonical.index_axis(Axis(0), 29).mapv(|v| v > 600.0);
    assert_eq!(count(bright.iter().copied()), 996);
    let components = connected_components_2d(bright.view());
    assert_eq!(components.count(), 13);
    assert_eq!(&components.sizes_px[..5], &[2, 1, 2, 2, 2]);
    assert_eq!(components.largest(), Some(9));
    assert_eq!(components.sizes_px[8], 583);
    assert_eq!(components.labels[[117, 95]], 2);
}

#[test]
fn morphology_3d_and_ball_match_scipy() {
    let s = subject("errsm30");
    assert_eq!(count(s.cord.iter().copied()), 4275);
    assert_eq!(count(dilate_3d(s.cord.view(), Neighbourhood3d::Cross, 1)), 6005);
    // The cord reaches the first and last slices: outside counts as background there.
    assert_eq!(count(erode_3d(s.cord.view(), Neighbourhood3d::Cube, 1)), 2099);
    assert_eq!(count(erode_3d(s.cord.view(), Neighbourhood3d::Cross, 2)), 1395);
    // distance_transform_edt(~cord, sampling) <= radius.
    assert_eq!(count(dilate_ball_mm(s.cord.view(), [1.0, 1.0, 1.0], 4.0)), 13372);
    assert_eq!(count(dilate_ball_mm(s.cord.view(), [3.0, 1.0, 1.0], 4.0)), 10628);
    assert_eq!(count(dilate_ball_mm(s.cord.view(), [1.0, 1.0, 2.0], 2.5)), 8920);
}

/// Writes `data` (native order) on the grid of `like` into a temporary file.
fn write_temp(like: &Volume, data: ndarray::ArrayView3<'_, f32>, name: &str, dir: &Path) -> PathBuf {
    let path = dir.join(name);
    like.write_like(data, VoxelType::Int16, &path).unwrap();
    path
}

#[test]
fn empty_cord_and_bad_grids_are_errors_naming_the_file() {
    let s = subject("errsm30");
    let dir = tempfile::tempdir().unwrap();
    let zeros = Array3::<f32>::zeros(s.image.data.dim());
    let empty = write_temp(&s.image, zeros.view(), "sub-x_T2w_label-SC_seg.nii.gz", dir.path());
    let err = load_cord_mask(&empty, &s.image).unwrap_err();
    assert!(matches!(err, CoreError::EmptyMask { .. }), "{err}");
    assert!(err.to_string().contains("sub-x_T2w_label-SC_seg.nii.gz"), "{err}");
    // A volume read directly: same rule.
    assert!(matches!(cord_mask(&Volume::read(&empty).unwrap()), Err(CoreError::EmptyMask { .. })));
    // A mask on another grid.
    let err = load_cord_mask(&label_path("errsm11", "label-SC_seg"), &s.image).unwrap_err();
    assert!(matches!(err, CoreError::File(FileError::GridMismatch { .. })), "{err}");
    assert!(err.to_string().contains("sub-errsm11_T2w_label-SC_seg.nii.gz"), "{err}");
}

#[test]
fn csf_probability_map_is_thresholded_at_one_half() {
    let s = subject("errsm30");
    let csf = load_csf_mask(&label_path("errsm30", "label-CSF_probseg"), &s.image).unwrap();
    assert_eq!(count(csf.iter().copied()), 7788);
    // Canonical masks come in standard layout (the file is PSR: the view is permuted).
    assert!(csf.is_standard_layout() && s.cord.is_standard_layout());
    assert_eq!(csf.dim(), (52, 60, 55));
    let same = csf_mask(&Volume::read(label_path("errsm30", "label-CSF_probseg")).unwrap());
    assert_eq!(same, csf);
}

#[test]
fn derived_csf_against_the_template_csf_of_errsm30() {
    // Ring of 4 mm around the cord, outside it, T2 > 1.2 x the cord median (279.0).
    // Reference: sub-errsm30's CSF probability (warped from a template, not manual) > 0.5,
    // 7788 voxels, of which 1283 overlap the manual cord mask, so a CSF that excludes the
    // cord can reach at most Dice 0.910 against it.
    let s = subject("errsm30");
    let image = s.image.reorientation().to_canonical(s.image.data.view());
    let derived = derive_csf(image, s.cord.view(), s.spacing_mm);
    assert_eq!(count(derived.iter().copied()), 5653);
    let reference = load_csf_mask(&label_path("errsm30", "label-CSF_probseg"), &s.image).unwrap();
    let overlap = dice(derived.view(), reference.view());
    assert_close(overlap, 0.744290, 5e-4, "Dice of the derived CSF");
    // Never inside the cord.
    assert_eq!(count(ndarray::Zip::from(&derived).and(&s.cord).map_collect(|&d, &c| d && c)), 0);

    // The same rule on a whole-neck scan (sub-errsm11, cord median 258.0).
    let s = subject("errsm11");
    let image = s.image.reorientation().to_canonical(s.image.data.view());
    assert_eq!(count(derive_csf(image, s.cord.view(), s.spacing_mm)), 21845);
}

#[test]
fn the_roi_csf_reaches_as_far_with_a_cord_mask_one_voxel_small() {
    // sub-errsm11 (whole neck, no CSF mask: prepare derives it). With the cord mask eroded by one
    // voxel, the default ring stops one voxel short of the CSF the mask as given reaches; the
    // ring of prepare's ROI (CsfDerivation::MASK_TOLERANT) starts from the cord's dark surface
    // and reaches nearly all of it again, without growing a mask one voxel too large.
    let s = subject("errsm11");
    let image = s.image.reorientation().to_canonical(s.image.data.view());
    let given = derive_csf(image, s.cord.view(), s.spacing_mm);
    let small = erode_3d(s.cord.view(), Neighbourhood3d::Cross, 1);
    let large = dilate_3d(s.cord.view(), Neighbourhood3d::Cross, 1);
    let reached = |csf: &ndarray::Array3<bool>| count(ndarray::Zip::from(csf).and(&given).map_collect(|&c, &g| c && g));
    let plain = derive_csf(image, small.view(), s.spacing_mm);
    let tolerant = derive_csf_with(image, small.view(), s.spacing_mm, &CsfDerivation::MASK_TOLERANT);
    let (n_given, n_plain, n_tolerant) = (count(given.iter().copied()), reached(&plain), reached(&tolerant));
    // Of the 21845 CSF voxels the mask as given reaches, the small mask's plain ring reaches 76 %,
    // the tolerant ring 88 %.
    assert_eq!((n_given, n_plain, n_tolerant), (21845, 16506, 19265), "given / plain / tolerant");
    // With the mask as given the tolerant ring adds 1.6 % (where the cord borders dark tissue, not
    // CSF); with a mask one voxel large, whose shell is mostly bright CSF, 0.6 %.
    let as_given = derive_csf_with(image, s.cord.view(), s.spacing_mm, &CsfDerivation::MASK_TOLERANT);
    let large_plain = derive_csf(image, large.view(), s.spacing_mm);
    let large_tolerant = derive_csf_with(image, large.view(), s.spacing_mm, &CsfDerivation::MASK_TOLERANT);
    let counts = (count(as_given.iter().copied()), count(large_plain.iter().copied()), count(large_tolerant.iter().copied()));
    assert_eq!(counts, (22201, 20496, 20615), "as given tolerant / large plain / large tolerant");
}

// ---------------------------------------------------------------------------------------------
// Centreline.

#[test]
fn centreline_and_cord_length() {
    let s = subject("errsm11");
    let line = &s.centreline;
    assert_eq!(line.points.len(), 216);
    assert_eq!((line.first_k(), line.last_k()), (0, 215));
    let centre = line.centre_at_k(100).unwrap();
    assert_close(centre[0], 31.6029, 1e-3, "centre x at k = 100");
    assert_close(centre[1], 171.2941, 1e-3, "centre y at k = 100");
    // Arc length of the centre smoothed over ±2 mm.
    assert_close(line.cord_length_mm(), 234.3813, 0.01, "errsm11 cord length");
    for (name, length_mm) in
        [("errsm18", 221.0134), ("errsm21", 223.7083), ("errsm23", 225.1584), ("errsm30", 54.1827)]
    {
        assert_close(subject(name).centreline.cord_length_mm(), length_mm, 0.01, name);
    }
}

// ---------------------------------------------------------------------------------------------
// PAM50 proportions.

#[test]
fn pam50_constants_are_recomputed_from_the_template() {
    let dir = "templates/PAM50_small";
    let levels = Volume::read(sample_file(format!("{dir}/PAM50_small_levels.nii.gz"))).unwrap();
    let discs = Volume::read(sample_file(format!("{dir}/PAM50_small_label_disc.nii.gz"))).unwrap();
    let spacing = canonical_spacing(&levels);
    assert_eq!(spacing, [1.0, 1.0, 2.0]);
    let levels_c = levels.reorientation().to_canonical(levels.data.view());
    let discs_c = discs.reorientation().to_canonical(discs.data.view());
    let line = Centreline::from_cord(levels_c.mapv(|v| v > 0.0).view(), spacing).unwrap();
    // Straight template: the cord length equals its superior-inferior extent within 0.1 mm.
    assert_close(line.cord_length_mm(), (line.last_k() - line.first_k()) as f64 * 2.0, 0.1, "PAM50 straightness");

    let mean_k = |data: &ndarray::ArrayView3<'_, f32>, value: f32| {
        let ks: Vec<f64> = data.indexed_iter().filter(|(_, &v)| v == value).map(|((_, _, k), _)| k as f64).collect();
        assert!(!ks.is_empty(), "value {value} missing");
        ks.iter().sum::<f64>() / ks.len() as f64
    };
    let disc_k: Vec<f64> = (2..=19).map(|n| mean_k(&discs_c, n as f32)).collect();
    let c1_top_k =
        levels_c.indexed_iter().filter(|(_, &v)| v == 1.0).map(|((_, _, k), _)| k).max().unwrap() as f64;
    let origin = line.arc_length_at_k(disc_k[0]);
    let depth = |k: f64| origin - line.arc_length_at_k(k);
    for (index, &expected) in PAM50_DISC_DEPTH_MM.iter().enumerate() {
        assert_close(depth(disc_k[index]), expected, 0.01, &format!("disc {}", index + 2));
    }
    assert_close(depth((disc_k[0] + c1_top_k) / 2.0), PAM50_VERTEBRA_DEPTH_MM[0], 0.01, "C1");
    for n in 2..=18usize {
        let centre_k = (disc_k[n - 2] + disc_k[n - 1]) / 2.0;
        assert_close(depth(centre_k), PAM50_VERTEBRA_DEPTH_MM[n - 1], 0.01, &format!("vertebra {n}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Levels.

fn placed(map: &LevelMap, vertebra: u8) -> f64 {
    map.vertebra_centre_k[&vertebra]
}

#[test]
fn errsm_levels_placed_from_c2_and_t2() {
    // C2 and T2 points (SCT vertebral dlabel); C3 … T1 placed by arc length in PAM50 proportions.
    let expected: [(&str, [f64; 8]); 4] = [
        ("errsm11", [188.0, 171.674, 154.343, 138.094, 123.490, 108.849, 92.806, 76.0]),
        ("errsm18", [188.0, 170.756, 152.546, 135.378, 119.286, 102.297, 82.586, 61.0]),
        ("errsm21", [189.0, 172.331, 154.714, 138.098, 122.403, 106.050, 88.039, 69.0]),
        ("errsm23", [206.0, 190.336, 173.823, 158.186, 143.355, 127.612, 109.196, 89.0]),
    ];
    for (name, centres) in expected {
        let s = subject(name);
        let path = label_path(name, "label-vertebrae_dlabel");
        let report = load_levels_report(&path, None, &s.image, &s.centreline).unwrap();
        assert_eq!(report.convention, LevelConvention::SctVertebraPoints);
        assert_eq!(report.map.given, vec![2, 9]);
        assert_eq!(report.map.vertebra_centre_k.keys().copied().collect::<Vec<_>>(), (2..=9).collect::<Vec<u8>>());
        for (vertebra, &k) in (2u8..=9).zip(centres.iter()) {
            assert_close(placed(&report.map, vertebra), k, 0.01, &format!("{name} vertebra {vertebra}"));
        }
        assert!(report.map.source.contains("placed C3, C4, C5, C6, C7, T1"), "{}", report.map.source);
    }
}

#[test]
fn rows_of_errsm11_by_segment() {
    let s = subject("errsm11");
    let map = load_levels(&label_path("errsm11", "label-vertebrae_dlabel"), None, &s.image, &s.centreline).unwrap();
    let rows = |level: DiscLevel| -> Vec<usize> {
        (0..216).filter(|&k| map.segment_at_k(k as f64) == Some(level)).collect()
    };
    // C5 at k = 138.094, C6 at 123.490: rows 124 … 138 are C5/C6.
    assert_eq!(rows(DiscLevel::C5C6), (124..=138).collect::<Vec<_>>());
    // Every row between T1's centre (92.806) and C2's (188) has a segment, no other row.
    let with_segment: Vec<usize> = (0..216).filter(|&k| map.segment_at_k(k as f64).is_some()).collect();
    assert_eq!(with_segment, (93..=188).collect::<Vec<_>>());
    assert_eq!(map.segment_at_k(188.0), Some(DiscLevel::C2C3));
    assert_eq!(map.segment_at_k(93.0), Some(DiscLevel::C7T1));
}

// sub-errsm30: the two level files disagree by one level.
//
// `_label-vertebrae_dlabel` has points 3, 4, 5 at canonical k = 44, 26, 9; the
// `_label-vertebrae_dseg` labels the cord 2 (k 36-52), 3 (18-35), 4 (3-17), 5 (1-4), so the
// point valued 3 lies in the region labelled 2, and so on. On the T2 image (mid-sagittal
// slices, intensity profile through the vertebral bodies) three discs cross the bodies, at
// k ≈ 52.5, 33.5 and 15.5: bright nucleus with dark endplates on both sides. The body between
// k ≈ 34 and 51 therefore has a disc above it: it is not C2 (C2 has no disc above its body,
// the dens rises into the atlas) but C3, ~16 mm tall. So the dlabel is right (C3 at k = 44,
// C4 at 26, C5 at 9, each at the middle of a body) and the dseg's values are one too low:
// its regions 2, 3, 4, 5 are C3, C4, C5, C6. Note also that the dlabel spacing (18 and 17 mm)
// equals PAM50's C3-C4-C5 spacing to 0.1 mm: the points look template-derived, so the
// placement errors against them below are a consistency check; the dseg centroids (an
// independent, disc-based labelling) give the larger, more honest errors.
#[test]
fn errsm30_label_files_disagree_by_one_level() {
    let s = subject("errsm30");
    let points = load_levels_report(&label_path("errsm30", "label-vertebrae_dlabel"), None, &s.image, &s.centreline)
        .unwrap();
    assert_eq!(points.convention, LevelConvention::SctVertebraPoints);
    assert_eq!(points.map.given, vec![3, 4, 5]);
    let cord = load_levels_report(&label_path("errsm30", "label-vertebrae_dseg"), None, &s.image, &s.centreline)
        .unwrap();
    assert_eq!(cord.convention, LevelConvention::SctVertebraCord);
    // Region 5 (k 1-4) is cut at the inferior end of the cord: not trusted, reported.
    assert_eq!(cord.partial, vec![5]);
    assert_eq!(cord.map.given, vec![2, 3, 4]);
    assert!(cord.map.source.contains("C5 cut by the field of view"), "{}", cord.map.source);
    for (vertebra, centroid_k) in [(2u8, 43.9264), (3, 26.5318), (4, 10.5946)] {
        assert_close(placed(&cord.map, vertebra), centroid_k, 1e-3, "dseg centroid");
        // dseg level n sits where the dlabel has n + 1 (within 1.6 mm), not n (>= 15 mm away).
        let next = placed(&points.map, vertebra + 1);
        assert_close(placed(&cord.map, vertebra), next, 1.6, "dseg n vs dlabel n + 1");
        assert!((placed(&cord.map, vertebra) - placed(&points.map, vertebra)).abs() > 15.0);
    }
}

#[test]
fn errsm30_placement_errors_in_mm() {
    let s = subject("errsm30");
    let path = label_path("errsm30", "label-vertebrae_dlabel");
    let points = load_levels_report(&path, None, &s.image, &s.centreline).unwrap();
    let given = |vertebrae: &[u8]| -> Vec<Landmark> {
        points
            .landmarks
            .iter()
            .copied()
            .filter(|l| matches!(l, Landmark::VertebraCentre { vertebra, .. } if vertebrae.contains(vertebra)))
            .collect()
    };
    let k_mm = s.spacing_mm[2];
    // dseg centroids relabelled one level up (see above): C3 43.9264, C4 26.5318, C5 10.5946.
    let dseg = |vertebra: u8| match vertebra {
        3 => 43.9264,
        4 => 26.5318,
        5 => 10.5946,
        _ => unreachable!(),
    };
    // (landmarks, placed vertebra, error in mm vs the dlabel point, error vs the dseg centroid)
    let cases: [(&[u8], u8, f64, f64); 6] = [
        (&[3, 5], 4, -0.0177, -0.5496),
        (&[3, 4], 5, 0.0343, -1.5603),
        (&[4, 5], 3, 0.0365, 0.1101),
        (&[4], 3, -0.0158, 0.0578),
        (&[4], 5, 0.0492, -1.5454),
        (&[3], 5, 0.0649, -1.5297),
    ];
    for (landmarks, vertebra, error_points_mm, error_dseg_mm) in cases {
        let map = place_vertebrae(&given(landmarks), &s.centreline, &path).unwrap();
        let k = placed(&map, vertebra);
        let label = format!("vertebra {vertebra} from {landmarks:?}");
        assert_close((k - placed(&points.map, vertebra)) * k_mm, error_points_mm, 0.005, &label);
        assert_close((k - dseg(vertebra)) * k_mm, error_dseg_mm, 0.005, &label);
    }
    // With all three points, C2 lies above the field of view (k 0-54), extrapolated with the
    // C3-C4 scale; it still bounds segment C2/C3. C6 … T1 lie below it (C4-C5 scale).
    assert_close(placed(&points.map, 2), 61.0061, 0.01, "C2 placed above the field of view");
    assert_eq!(points.map.segment_at_k(50.0), Some(DiscLevel::C2C3));
    assert_eq!(points.map.segment_at_k(30.0), Some(DiscLevel::C3C4));
    assert_eq!(points.map.segment_at_k(0.0), Some(DiscLevel::C5C6));
    assert_close(placed(&points.map, 6), -6.938, 0.01, "C6 below the field of view");
    assert_close(placed(&points.map, 8), -44.0658, 0.01, "T1 below the field of view");
}

#[test]
fn unknown_values_name_the_file_and_the_values() {
    let s = subject("errsm30");
    let dir = tempfile::tempdir().unwrap();
    let mut data = Array3::<f32>::zeros(s.image.data.dim());
    data[[20, 20, 20]] = 100.0;
    data[[20, 40, 20]] = 150.0;
    let path = write_temp(&s.image, data.view(), "odd_labels.nii.gz", dir.path());
    let err = load_levels(&path, None, &s.image, &s.centreline).unwrap_err();
    assert!(matches!(err, CoreError::UnknownLabels { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("odd_labels.nii.gz") && message.contains("100, 150"), "{message}");
    assert_eq!(message.lines().count(), 1);
    // An explicit convention that does not know the values: the same kind of error.
    let err = load_levels(&path, Some(LevelConvention::SctVertebraPoints), &s.image, &s.centreline).unwrap_err();
    assert!(matches!(err, CoreError::UnknownLabels { .. }) && err.to_string().contains("100, 150"), "{err}");
    // Points without a name saying vertebrae or discs: ask for the convention.
    // (native PSR order: index 1 runs superior.)
    data.fill(0.0);
    data[[20, 40, 20]] = 3.0;
    data[[20, 20, 20]] = 5.0;
    let path = write_temp(&s.image, data.view(), "points.nii.gz", dir.path());
    let err = load_levels(&path, None, &s.image, &s.centreline).unwrap_err();
    assert!(err.to_string().contains("sct-discs"), "{err}");
    let map = load_levels(&path, Some(LevelConvention::SctDiscPoints), &s.image, &s.centreline).unwrap();
    // Disc 4 is missing, so no vertebra lies between two labelled discs: all are placed. C3
    // and C4 fill the 20 mm between discs C2/C3 (k = 40) and C4/C5 (k = 20), whose template
    // distance is 36 mm: C3 at 40 - 9 x 20 / 36, C4 at 40 - 27 x 20 / 36 (straight cord here,
    // cord length 54.18 mm over 54 slices: up to 0.1 slice of curvature).
    assert!(map.given.is_empty());
    let depth = |v: u8| pam50_vertebra_depth_mm(v).unwrap();
    assert_close(placed(&map, 3), 40.0 - (depth(3) - 16.0) * 20.0 / 36.0, 0.15, "C3 between discs");
    assert_close(placed(&map, 4), 40.0 - (depth(4) - 16.0) * 20.0 / 36.0, 0.15, "C4 between discs");
}
